"""Orbax checkpoints of the train state and the data-iterator position in `workdir/checkpoints`.

Each step directory holds two items: `state` (the TrainState pytree, restored into the
shardings of a freshly initialised state) and `data` (the grain iterator state as JSON), so a
re-run of the same command resumes at the same step, parameters, EMA, optimiser state, RNG and
data position. A checkpoint that cannot be read is reported, never deleted.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


class CheckpointError(ValueError):
  """A checkpoint exists but cannot be restored into this experiment."""


def make_manager(workdir: str, cfg: Any, *, read_only: bool = False) -> ocp.CheckpointManager:
  """CheckpointManager keeping the last `cfg.keep_checkpoints` step directories."""
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
  options = ocp.CheckpointManagerOptions(
      max_to_keep=cfg.keep_checkpoints, create=not read_only, read_only=read_only,
      enable_async_checkpointing=True)
  return ocp.CheckpointManager(directory, options=options, item_names=("state", "data"))


def save(manager: ocp.CheckpointManager, step: int, state: Any, data_state: Any) -> None:
  """Starts an (async) save of the state and the JSON-able data-iterator state at `step`."""
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=ocp.args.JsonSave(_jsonable(data_state))), force=True)


def restore_latest(manager: ocp.CheckpointManager, state: Any, sharding: Any) -> tuple[Any, Any]:
  """(state, data_state) of the latest checkpoint, or (state, None) when there is none.

  Args:
    manager: the run's checkpoint manager.
    state: a freshly initialised state; gives the tree structure, shapes and dtypes.
    sharding: the shardings to restore into (same tree as state).

  Raises:
    CheckpointError: naming the checkpoint, when it does not match this experiment or is corrupt.
  """
  step = manager.latest_step()
  if step is None:
    return state, None
  abstract = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, sharding)
  path = os.path.join(str(manager.directory), str(step))
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
  except Exception as e:  # Orbax raises many types for missing / mismatched / corrupt files.
    raise CheckpointError(
        f"checkpoint {path} cannot be restored into this experiment (a different config or a "
        f"corrupt/incomplete checkpoint; it was left untouched): {type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else ''}") from e
  _check_compatible(path, state, restored.state)
  return restored.state, _from_jsonable(restored.data)


def restore_params(workdir: str, abstract_state: Any, *, step: int | None = None) -> Any:
  """Restores the TrainState of `step` (default: latest) onto the first device, for inference.

  Args:
    workdir: the run directory.
    abstract_state: a state or `jax.eval_shape` of one: the expected structure, shapes, dtypes.
    step: the checkpoint step; None for the latest.
  """
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract_state = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract_state)
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    raise CheckpointError(f"no checkpoints in {directory}: train first (--mode=train).")
  options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
  with ocp.CheckpointManager(directory, options=options,
                             item_names=("state", "data")) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoints in {directory}: train first (--mode=train).")
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state)))
    except Exception as e:
      raise CheckpointError(
          f"checkpoint {directory}/{step} cannot be restored into this config: "
          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
  _check_compatible(f"{directory}/{step}", abstract_state, restored.state)
  return restored.state


def _check_compatible(path: str, expected: Any, restored: Any) -> None:
  """Orbax may restore silently into other shapes; compare every leaf's shape and dtype."""
  exp_leaves = jax.tree_util.tree_leaves_with_path(expected)
  got_leaves = jax.tree.leaves(restored)
  if len(exp_leaves) != len(got_leaves):
    raise CheckpointError(f"checkpoint {path} has {len(got_leaves)} arrays, this experiment "
                          f"expects {len(exp_leaves)}; it was left untouched.")
  for (key, e), g in zip(exp_leaves, got_leaves, strict=True):
    if tuple(e.shape) != tuple(g.shape) or e.dtype != g.dtype:
      raise CheckpointError(
          f"checkpoint {path} does not match this experiment at {jax.tree_util.keystr(key)}: "
          f"stored {g.dtype}{tuple(g.shape)}, expected {e.dtype}{tuple(e.shape)}; "
          "it was left untouched.")


def _jsonable(data_state: Any) -> Any:
  if isinstance(data_state, bytes):
    return {"bytes": data_state.decode("utf-8")}
  return {"value": data_state}


def _from_jsonable(data: Any) -> Any:
  if data is None:
    return None
  if "bytes" in data:
    return data["bytes"].encode("utf-8")
  return data["value"]


def dump_json(path: str, obj: Any) -> None:
  """Writes obj as indented JSON, atomically (write to a temp file, then rename)."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
