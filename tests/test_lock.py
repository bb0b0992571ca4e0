"""The committed lock (requirements.lock) pins every dependency of pyproject.toml, with hashes."""

import os
import re
import tomllib

from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")


def _lock() -> dict[str, tuple[str, list[str]]]:
  """name -> (pinned version, the entry's lines)."""
  entries, name = {}, None
  for line in open(os.path.join(ROOT, "requirements.lock")).read().splitlines():
    match = _PIN.match(line)
    if match:
      name = canonicalize_name(match.group(1))
      assert name not in entries, f"{name} is pinned twice"
      entries[name] = (match.group(2), [line])
    elif name and line.startswith(" "):
      entries[name][1].append(line)
  return entries


def _declared() -> list[Requirement]:
  project = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["project"]
  extras = [r for group in project["optional-dependencies"].values() for r in group]
  return [Requirement(r) for r in [*project["dependencies"], *extras]]


def test_lock_pins_every_declared_dependency_within_its_bounds():
  lock = _lock()
  for requirement in _declared():
    name = canonicalize_name(requirement.name)
    assert name in lock, f"{requirement} of pyproject.toml is not in requirements.lock"
    version = lock[name][0]
    assert requirement.specifier.contains(version, prereleases=True), (
      f"requirements.lock pins {name}=={version}, outside pyproject.toml's {requirement}")


def test_every_pin_has_a_hash():
  lock = _lock()
  assert len(lock) > len(_declared())  # the transitive packages are pinned too
  for name, (version, lines) in lock.items():
    assert any("--hash=sha256:" in line for line in lines), f"{name}=={version} has no hash"
