"""Faults injected into checkpoint writes of a child process (tests/test_checkpoint_faults.py).

`install(mode, step, marker)` patches the JSON writer of Orbax's checkpoint items, which writes the
data-iterator state of every checkpoint after the training state's arrays: from checkpoint `step`
on it either fails with ENOSPC (a full disk) or writes `marker` and hangs, so that the test can
kill the process in the middle of the write. Installed in the child by
`child_patches.sitecustomize_env`.
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
