"""Opening a run directory: the one way from a workdir to a config and a trained model.

The command line (`main`), the study library (`paramrel_jax.study`), the CLI's evaluation and
generation modes and the Python API (`api.load`) all open runs here:

  settle(config, workdir)            the config a run starts or resumes with, and its resolution
  saved_config(workdir)              the config a run was trained with (its config.json)
  saved_schema(workdir)              a table run's schema (its schema.json), or None
  restore(config, workdir, step=)    the model and the EMA parameters of a checkpoint
  open_run(workdir, step=)           saved_config, resolved, then restore

Loading builds no optimiser: only the step and the EMA parameters are read from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from paramrel_jax import data
from paramrel_jax.config import configuration
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.data import tables
from paramrel_jax.methods import registry
from paramrel_jax.methods.interface import Model
from paramrel_jax.training import checkpointing, workdir_utils


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """What sampling, reconstruction and evaluation need from a run directory."""

  model: Model  # ParamReL or a baseline
  params: dict  # the EMA parameters
  step: int
  info: data.DatasetInfo
  workdir: str | None = None  # the run directory it was loaded from


def settle(
  config: ml_collections.ConfigDict, workdir: str
) -> tuple[ml_collections.ConfigDict, ExperimentConfig]:
  """(config, resolved): `config` with the settings that a run already saved in workdir keeps
  (`workdir_utils.with_run_settings`), and its resolution.

  Raises:
    ValueError: the config does not resolve, naming the bad field.
  """
  config = workdir_utils.with_run_settings(config, workdir)
  return config, configuration.resolve(config, saved_schema(workdir))


def saved_schema(workdir: str) -> tables.TableSchema | None:
  """The table schema a run saved in workdir (`tables.SCHEMA_FILE`); None for image runs.

  Raises:
    ValueError: the file is not a readable schema.
  """
  path = os.path.join(workdir, tables.SCHEMA_FILE)
  if not os.path.isfile(path):
    return None
  try:
    return tables.TableSchema.load(workdir)
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise ValueError(f"{path} is not a table schema ({type(error).__name__}: {error}).") from None


def saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The config the run in `workdir` was trained with: its config.json, completed with the
  legacy values of the settings it predates (`workdir_utils.saved_run_settings`).

  Raises:
    ValueError: workdir holds no config.json.
  """
  path = os.path.join(workdir, workdir_utils.CONFIG_FILE)
  if not os.path.isfile(path):
    raise ValueError(
      f"{workdir} holds no run: there is no {workdir_utils.CONFIG_FILE} (train "
      f"one with python -m paramrel_jax.main --config=... --workdir={workdir})."
    )
  with open(path) as f:
    saved = json.load(f)
  for dotted, value in workdir_utils.saved_run_settings(workdir).items():
    section, key = dotted.split(".")  # keys a run written before they existed lacks
    saved[section][key] = value
  return ml_collections.ConfigDict(saved)


def restore(config: ExperimentConfig, workdir: str, *, step: int | None = None) -> TrainedModel:
  """The model of `config` with the EMA parameters of `step` (default: the latest checkpoint).

  Raises:
    checkpointing.CheckpointError: no checkpoint, or one that does not fit this config.
  """
  info = data.dataset_info(config.data)
  model = registry.build_model(config, info.image_shape[-1])
  params = jax.eval_shape(lambda key: model.init(key, (1, *info.image_shape)), jax.random.key(0))
  abstract = {"step": jax.ShapeDtypeStruct((), jnp.int32), "ema_params": params}
  restored = checkpointing.restore_params(workdir, abstract, step=step, partial=True)
  return TrainedModel(
    model=model,
    params=restored["ema_params"],
    step=int(restored["step"]),
    info=info,
    workdir=workdir,
  )


def open_run(workdir: str, *, step: int | None = None) -> tuple[ExperimentConfig, TrainedModel]:
  """(resolved config, trained model) of the run in `workdir`, at `step` (default: latest).

  Raises:
    ValueError: workdir holds no config.json, or its config does not resolve.
    checkpointing.CheckpointError (a ValueError): no checkpoint, or one that does not fit.
  """
  config = configuration.resolve(saved_config(workdir), saved_schema(workdir))
  return config, restore(config, workdir, step=step)
