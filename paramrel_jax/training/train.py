"""Train state, the sharded jitted train step, and the training loop.

The step is a module-level pure function compiled with `jax.jit` over a `jax.sharding.Mesh`
with one data-parallel axis: the batch is split over all devices (of all hosts), parameters,
EMA parameters and optimiser state are replicated. RNG is `fold_in(state.rng, state.step)`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from paramrel_jax import data, evaluation
from paramrel_jax.config.configuration import ExperimentConfig, TrainingConfig
from paramrel_jax.methods import registry
from paramrel_jax.methods.interface import Model
from paramrel_jax.training import checkpointing
from paramrel_jax.training.logging_utils import MetricWriter, ProgressBar, save_curves, stage

DATA_AXIS = "data"


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, as one pytree."""

  step: jax.Array  # int32 ()
  params: dict
  ema_params: dict
  opt_state: optax.OptState
  rng: jax.Array  # base PRNG key; the key of step s is fold_in(rng, s)


@dataclasses.dataclass(frozen=True)
class Experiment:
  """The static pieces a step needs: the model, the optimiser and the EMA decay."""

  model: Model
  optimizer: optax.GradientTransformation
  ema_decay: float


def make_mesh() -> Mesh:
  """A 1-D data-parallel mesh over every device of every process."""
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def make_optimizer(cfg: TrainingConfig) -> optax.GradientTransformation:
  """AdamW with linear warm-up, then a constant or cosine schedule, after global-norm clipping."""
  if cfg.lr_schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(
      0.0, cfg.learning_rate, max(cfg.warmup_steps, 1), max(cfg.num_steps, cfg.warmup_steps + 1)
    )
  else:
    schedule = optax.join_schedules(
      [
        optax.linear_schedule(0.0, cfg.learning_rate, max(cfg.warmup_steps, 1)),
        optax.constant_schedule(cfg.learning_rate),
      ],
      [max(cfg.warmup_steps, 1)],
    )
  chain = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip > 0 else []
  chain.append(optax.adamw(schedule, b1=cfg.adam_b1, b2=cfg.adam_b2, weight_decay=cfg.weight_decay))
  return optax.chain(*chain)


def init_state(rng: jax.Array, exp: Experiment, data_shape: tuple[int, ...]) -> TrainState:
  """Initial state for data of shape (B, H, W, C): parameters, EMA copy, optimiser state."""
  init_rng, state_rng = jax.random.split(rng)
  params = exp.model.init(init_rng, data_shape)
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    ema_params=params,
    opt_state=exp.optimizer.init(params),
    rng=state_rng,
  )


def train_step(state: TrainState, batch: dict, exp: Experiment) -> tuple[TrainState, dict]:
  """One optimisation step on a global batch; returns the new state and scalar metrics."""
  key = jax.random.fold_in(state.rng, state.step)
  loss_key, dropout_key = jax.random.split(key)
  loss_fn = functools.partial(exp.model.loss, key=loss_key, batch=batch, dropout_key=dropout_key)
  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = exp.optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema_params = optax.incremental_update(params, state.ema_params, 1.0 - exp.ema_decay)
  metrics = {**metrics, "grad_norm": optax.tree.norm(grads), "param_norm": optax.tree.norm(params)}
  new_state = state.replace(
    step=state.step + 1, params=params, ema_params=ema_params, opt_state=opt_state
  )
  return new_state, metrics


def diagnostics_step(state: TrainState, batch: dict, exp: Experiment) -> dict:
  """The model's diagnostics (e.g. latent usage) on a batch."""
  key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), 1)
  return exp.model.diagnostics(state.params, key, batch)


@dataclasses.dataclass(frozen=True)
class CompiledSteps:
  """The jitted functions of one experiment on one mesh."""

  init: Callable
  train: Callable
  diagnostics: Callable
  state_sharding: Any


def compile_steps(exp: Experiment, mesh: Mesh, data_shape: tuple[int, ...]) -> CompiledSteps:
  """jit the init, train and diagnostics functions with replicated state, batch over 'data'."""
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P(DATA_AXIS))
  init_fn = functools.partial(init_state, exp=exp, data_shape=data_shape)
  abstract = jax.eval_shape(init_fn, jax.random.key(0))
  state_sharding = jax.tree.map(lambda _: replicated, abstract)
  return CompiledSteps(
    init=jax.jit(init_fn, out_shardings=state_sharding),
    train=jax.jit(
      functools.partial(train_step, exp=exp),
      in_shardings=(state_sharding, batch_sharding),
      out_shardings=(state_sharding, replicated),
      donate_argnums=(0,),
    ),
    diagnostics=jax.jit(
      functools.partial(diagnostics_step, exp=exp),
      in_shardings=(state_sharding, batch_sharding),
      out_shardings=replicated,
    ),
    state_sharding=state_sharding,
  )


def build_experiment(config: ExperimentConfig, channels: int) -> Experiment:
  """Model, optimiser and EMA decay from a resolved config, for images of C = `channels`."""
  model = registry.build_model(config, channels)
  return Experiment(
    model=model, optimizer=make_optimizer(config.training), ema_decay=config.training.ema_decay
  )


class NonFiniteError(RuntimeError):
  """Raised when the loss or gradients become non-finite."""


def _checked(step: int, metrics: dict[str, jax.Array]) -> dict[str, float]:
  """The metrics of `step` on the host; raises NonFiniteError if any is non-finite."""
  metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
  bad = [k for k, v in metrics.items() if not np.isfinite(v)]
  if bad:
    raise NonFiniteError(
      f"training became non-finite at step {step} ({', '.join(bad)} = "
      f"{[metrics[k] for k in bad]}); the last good checkpoint is kept."
    )
  return metrics


def train_and_evaluate(config: ExperimentConfig, workdir: str) -> TrainState:
  """Train (or resume) the experiment in `workdir` until `training.num_steps` steps."""
  tcfg = config.training
  mesh = make_mesh()
  if tcfg.batch_size % jax.device_count():
    raise ValueError(
      f"training.batch_size={tcfg.batch_size} is not divisible by the {jax.device_count()} devices."
    )
  info = data.dataset_info(config.data)
  data_shape = (tcfg.batch_size, *info.image_shape)
  exp = build_experiment(config, info.image_shape[-1])
  evaluators = evaluation.build_evaluators(config, exp.model)
  steps = compile_steps(exp, mesh, data_shape)

  manager = checkpointing.make_manager(workdir, tcfg)
  state = steps.init(jax.random.key(config.seed))
  state, data_state = checkpointing.restore_latest(manager, state, steps.state_sharding)
  data_cfg = config.data
  if data_state is not None:  # read as the run started (loader, worker count)
    data_cfg = data.config_for_state(config.data, data_state)
    logging.info(
      "Resuming the data stream with its loader %r (%d workers).",
      data_cfg.loader,
      data_cfg.worker_count() if data_cfg.loader == "grain" else 0,
    )
  train_iter = data.create_train_iterator(
    data_cfg,
    batch_size=tcfg.batch_size,
    seed=config.seed,
    shard_index=jax.process_index(),
    shard_count=jax.process_count(),
  )
  batches = data.DevicePrefetchIterator(train_iter, mesh, size=config.data.prefetch, axis=DATA_AXIS)
  if data_state is not None:
    batches.set_state(data_state)
  start = int(state.step)
  if start >= tcfg.num_steps:
    logging.info(
      "Nothing to do: the checkpoint in %s is at step %d >= num_steps=%d.",
      workdir,
      start,
      tcfg.num_steps,
    )
    manager.close()
    return state

  primary = jax.process_index() == 0
  batch = next(batches)
  # Compiled ahead of the first step, so that the wait has a name (and the persistent cache, when
  # on, makes it short for later runs of the same shapes).
  with stage("compiling the train step (first call; cached afterwards)", enabled=primary):
    train_step = steps.train.lower(state, batch).compile()
  writer = MetricWriter(workdir, enabled=primary)
  progress = ProgressBar(start, tcfg.num_steps, enabled=primary)
  pending: tuple[int, dict] | None = None  # the previous step's metrics, read one step late
  window: list[dict[str, float]] = []
  last_log = time.perf_counter()
  try:
    with checkpointing.writing(manager):
      for step in range(start, tcfg.num_steps):
        if step > start:
          batch = next(batches)
        state, metrics = train_step(state, batch)
        progress.advance(step + 1)
        if pending is not None:  # by now the previous step has finished: reading it costs nothing
          window.append(_checked(*pending))
        pending = (step + 1, metrics)
        log_now = (step + 1) % tcfg.log_every == 0 or step + 1 == tcfg.num_steps
        save_now = (step + 1) % tcfg.checkpoint_every == 0 or step + 1 == tcfg.num_steps
        if log_now or save_now:  # never save or log a state whose step was non-finite
          window.append(_checked(*pending))
          pending = None
        if log_now:
          scalars = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
          scalars["steps_per_sec"] = len(window) / (time.perf_counter() - last_log)
          scalars.update(
            {k: float(v) for k, v in jax.device_get(steps.diagnostics(state, batch)).items()}
          )
          scalars.update(evaluation.run_due(evaluators, step + 1, exp.model, state.ema_params))
          writer.write(step + 1, scalars)
          progress.update(step + 1, scalars)
          window = []
          last_log = time.perf_counter()  # diagnostics and evaluators do not count as steps
        if save_now:
          checkpointing.save(manager, step + 1, state, batches.get_state())
  finally:
    writer.close()
    progress.close()
  if jax.process_index() == 0:
    save_curves(workdir)  # besides TensorBoard: the whole run's curves, resumes included
  return state
