"""A trained model for inference: the model and the EMA parameters of a run directory."""

from __future__ import annotations

import dataclasses

import jax

from paramrel_jax import checkpointing, data, paramrel, train
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.configuration import ExperimentConfig
from paramrel_jax.models import ParamReLNet


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """What sampling, reconstruction and evaluation need from a run directory."""

  model: train.Trainable  # ParamReL or a baseline
  params: dict  # the EMA parameters
  step: int
  info: data.DatasetInfo

  @property
  def is_paramrel(self) -> bool:
    return isinstance(self.model, paramrel.ParamReL)

  def _paramrel(self) -> paramrel.ParamReL:
    if not self.is_paramrel:
      raise ValueError(f"this mode needs a ParamReL run; the checkpoint holds a "
                       f"{type(self.model).__name__} baseline.")
    return self.model

  @property
  def flow(self) -> Flow:
    return self._paramrel().flow

  @property
  def net(self) -> ParamReLNet:
    return self._paramrel().net


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
  return TrainedModel(model=exp.model, params=state.ema_params, step=int(state.step), info=info)
