"""A trained model for inference: the model and the EMA parameters of a run directory."""

from __future__ import annotations

import dataclasses

import jax

from paramrel_jax import data
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.methods.interface import Model
from paramrel_jax.training import checkpointing, train


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """What sampling, reconstruction and evaluation need from a run directory."""

  model: Model  # ParamReL or a baseline
  params: dict  # the EMA parameters
  step: int
  info: data.DatasetInfo
  workdir: str | None = None  # the run directory it was loaded from


def load(config: ExperimentConfig, workdir: str, *, step: int | None = None) -> TrainedModel:
  """Restores the EMA parameters of `step` (default: the latest checkpoint) of the run in workdir.

  Raises:
    checkpointing.CheckpointError: no checkpoint, or one that does not fit this config.
  """
  info = data.dataset_info(config.data)
  exp = train.build_experiment(config, info.image_shape[-1])
  init = jax.jit(lambda key: train.init_state(key, exp, (1, *info.image_shape)))
  abstract = jax.eval_shape(init, jax.random.key(0))
  state = checkpointing.restore_params(workdir, abstract, step=step)
  return TrainedModel(
    model=exp.model, params=state.ema_params, step=int(state.step), info=info, workdir=workdir
  )
