"""The run directory: creation, a writability check, and the saved resolved config."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import ml_collections
from absl import logging

CONFIG_FILE = "config.json"
# ParamReL settings that shape the trained model and whose defaults have changed or may change
# (the conditioning and encoder-head study), each with the value of a run whose config.json
# predates the key (None: the key always existed). A run directory keeps the values it was
# trained with, so old runs load (and resume) as they were trained.
RUN_SETTINGS = {
  "model.encoder_input": "theta_t",
  "model.adagn": "paper",
  "model.latent_map": False,
  "model.conditioning": "adagn",
  "model.latent_group_size": 1,
  "model.mask_temperature": 1.0,
  "model.encoder_pool": "mean",
  "model.encoder_coords": False,
  "objective.latent_weighting": "elbo",
  "objective.posterior": "gaussian",
  "objective.mmd_scale": "none",
  "objective.time_power": 1.0,
  "flow.beta1": None,
}


def saved_run_settings(workdir: str) -> dict[str, Any]:
  """RUN_SETTINGS of the ParamReL run saved in workdir/config.json, 'section.key' -> value.

  A config written before a key existed gives that key's legacy value ('theta_t' for
  model.encoder_input, paper Eq. 3). Empty when workdir holds no saved config, or a baseline's.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    saved = json.load(f)
  if saved.get("model", {}).get("kind", "paramrel") != "paramrel":
    return {}
  settings = {}
  for dotted, legacy in RUN_SETTINGS.items():
    section, key = dotted.split(".")
    value = saved.get(section, {}).get(key, legacy)
    if value is not None:
      settings[dotted] = value
  if saved.get("flow", {}).get("data_type") != "discrete":  # beta1 only shapes discrete flows
    settings.pop("flow.beta1", None)
  return settings


def with_run_settings(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """`config` with the RUN_SETTINGS of the run already saved in workdir, if any.

  A run written before model.encoder_input existed thus loads with 'theta_t'. A requested value
  that differs is logged and replaced (train with it in a new workdir).
  """
  changed = {}
  for dotted, value in saved_run_settings(workdir).items():
    section, key = dotted.split(".")
    if config[section][key] != value:
      changed[dotted] = value
  if not changed:
    return config
  logging.warning(
    "--workdir=%s holds a run trained with %s; using those settings (use a new "
    "--workdir to train with others).",
    workdir,
    ", ".join(f"{k}={v!r}" for k, v in changed.items()),
  )
  config = copy.deepcopy(config)
  for dotted, value in changed.items():
    section, key = dotted.split(".")
    config[section][key] = value
  return config


def prepare_workdir(
  workdir: str, config: ml_collections.ConfigDict, *, save_config: bool = True
) -> None:
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
  with open(f"{path}.tmp", "w") as f:  # renamed into place: other processes read config.json
    f.write(text)
  os.replace(f"{path}.tmp", path)
