"""Faults injected into checkpoint writes of a child process (tests/test_checkpoint_faults.py).

`install(mode, step, marker)` patches the JSON writer of Orbax's checkpoint items, which writes the
data-iterator state of every checkpoint after the training state's arrays: from checkpoint `step`
on it either fails with ENOSPC (a full disk) or writes `marker` and hangs, so that the test can
kill the process in the middle of the write. Installed by a sitecustomize on the child's path.
"""

import asyncio
import errno
import pathlib
import re

from orbax.checkpoint import handlers


def _step(directory) -> int | None:
  """The step of an item directory such as .../checkpoints/4.orbax-checkpoint-tmp/data."""
  match = re.match(r"(\d+)", pathlib.PurePath(str(directory)).parent.name)
  return int(match.group(1)) if match else None


def install(mode: str, step: int, marker: str) -> None:
  original = handlers.JsonCheckpointHandler._save_fn

  async def faulty(self, x, directory):
    current = _step(directory)
    if current is not None and current >= step:
      pathlib.Path(marker).write_text(str(directory))
      if mode == "enospc":
        raise OSError(errno.ENOSPC, "No space left on device", str(directory))
      await asyncio.sleep(600)  # 'hang': the test kills the process meanwhile
    return await original(self, x, directory)

  handlers.JsonCheckpointHandler._save_fn = faulty


def write_sitecustomize(site_dir: pathlib.Path, mode: str, step: int, marker: str) -> dict:
  """The environment of a child process that runs `install(mode, step, marker)` at start."""
  site_dir.mkdir(parents=True, exist_ok=True)
  tests_dir = str(pathlib.Path(__file__).resolve().parent)
  (site_dir / "sitecustomize.py").write_text(
    f"import sys\nsys.path.insert(0, {tests_dir!r})\nimport checkpoint_faults\n"
    f"checkpoint_faults.install({mode!r}, {step}, {marker!r})\n")
  return {"PYTHONPATH": str(site_dir)}
