"""The run directory: creation, a writability check, and the saved resolved config."""

from __future__ import annotations

import os

import ml_collections

CONFIG_FILE = "config.json"


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict, *,
                    save_config: bool = True) -> None:
  """Creates `workdir`, checks that it is writable and saves the resolved config as JSON.

  A different config saved by an earlier run is kept as `config.<n>.json`, never overwritten.
  `save_config=False` (the other processes of a multi-host run) only creates and checks.
  """
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f"--workdir={workdir} cannot be created: {e.strerror}.") from e
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise ValueError(f"--workdir={workdir} is not writable.")
  if not save_config:
    return
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
    n = 1
    while os.path.exists(os.path.join(workdir, f"config.{n}.json")):
      n += 1
    os.replace(path, os.path.join(workdir, f"config.{n}.json"))
  with open(path, "w") as f:
    f.write(text)
