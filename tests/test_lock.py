"""The committed locks pin every dependency of pyproject.toml, with hashes.

requirements.lock is the CPU install; requirements-cuda12.lock and requirements-tpu.lock are the
same pins plus the accelerator's jax plugin; requirements-mutation.lock adds mutmut and
requirements-tables.lock the packages of the real tables (extra `tables`), and
requirements-synth.lock those and the generative baselines (extra `synth`). That they
resolve on PyPI is checked by .ci/run (`pip install --dry-run`, no wheel downloaded).
"""

import os
import re
import tomllib

import pytest
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")


ACCELERATOR_LOCKS = {"cuda12": "requirements-cuda12.lock", "tpu": "requirements-tpu.lock"}


def _lock(filename: str = "requirements.lock") -> dict[str, tuple[str, list[str]]]:
  """name -> (pinned version, the entry's lines)."""
  entries, name = {}, None
  for line in open(os.path.join(ROOT, filename)).read().splitlines():
    match = _PIN.match(line)
    if match:
      name = canonicalize_name(match.group(1))
      assert name not in entries, f"{name} is pinned twice"
      entries[name] = (match.group(2), [line])
    elif name and line.startswith(" "):
      entries[name][1].append(line)
  return entries


def _declared(extras: tuple[str, ...] = ("test",)) -> list[Requirement]:
  project = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["project"]
  groups = project["optional-dependencies"]
  return [
    Requirement(r) for r in [*project["dependencies"], *(r for e in extras for r in groups[e])]
  ]


def test_lock_pins_every_declared_dependency_within_its_bounds():
  lock = _lock()
  for requirement in _declared():
    name = canonicalize_name(requirement.name)
    assert name in lock, f"{requirement} of pyproject.toml is not in requirements.lock"
    version = lock[name][0]
    assert requirement.specifier.contains(version, prereleases=True), (
      f"requirements.lock pins {name}=={version}, outside pyproject.toml's {requirement}"
    )


def test_every_pin_has_a_hash():
  lock = _lock()
  assert len(lock) > len(_declared())  # the transitive packages are pinned too
  for name, (version, lines) in lock.items():
    assert any("--hash=sha256:" in line for line in lines), f"{name}=={version} has no hash"


def test_accelerator_locks_add_the_plugin_of_the_locked_jax_and_change_nothing_else():
  cpu = {name: version for name, (version, _) in _lock().items()}
  for extra, filename in ACCELERATOR_LOCKS.items():
    lock = _lock(filename)
    accelerated = {name: version for name, (version, _) in lock.items()}
    changed = {n: (cpu[n], accelerated.get(n)) for n in cpu if accelerated.get(n) != cpu[n]}
    assert changed == {}, f"{filename} moves packages of requirements.lock: {changed}"
    for requirement in _declared(("test", extra)):
      name = canonicalize_name(requirement.name)
      assert requirement.specifier.contains(accelerated[name], prereleases=True), requirement
    plugin = {"cuda12": "jax-cuda12-plugin", "tpu": "libtpu"}[extra]
    assert plugin in accelerated, f"{filename} lacks {plugin}"
    if extra == "cuda12":  # the plugin is built for one jaxlib: the locked one
      assert accelerated[plugin] == cpu["jaxlib"] == cpu["jax"]
    for name, (_, lines) in lock.items():
      assert any("--hash=sha256:" in line for line in lines), f"{filename}: {name} has no hash"


@pytest.mark.parametrize(
  "extras, filename, moved",
  [
    (("mutation",), "requirements-mutation.lock", set()),
    (("tables",), "requirements-tables.lock", set()),
    # rdt, copulas and sdmetrics require pandas < 3: the synth lock is a study's own environment
    (("tables", "synth"), "requirements-synth.lock", {"pandas"}),
  ],
)
def test_an_extra_lock_adds_its_extra_and_changes_nothing_else(extras, filename, moved):
  cpu = {name: version for name, (version, _) in _lock().items()}
  lock = _lock(filename)
  pinned = {name: version for name, (version, _) in lock.items()}
  changed = {n: (cpu[n], pinned.get(n)) for n in cpu if pinned.get(n) != cpu[n]}
  assert set(changed) == moved, f"{filename} moves packages of requirements.lock: {changed}"
  for requirement in _declared(("test", *extras)):
    assert requirement.specifier.contains(pinned[canonicalize_name(requirement.name)]), requirement
  for name, (_, lines) in lock.items():
    assert any("--hash=sha256:" in line for line in lines), f"{filename}: {name} has no hash"
