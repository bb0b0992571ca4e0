"""Orbax checkpoints of the train state and the data-iterator position in `workdir/checkpoints`.

Each step directory holds two items: `state` (the TrainState pytree, restored into the
shardings of a freshly initialised state) and `data` (the grain iterator state as JSON), so a
re-run of the same command resumes at the same step, parameters, EMA, optimiser state, RNG and
data position. A checkpoint that cannot be read is reported, never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging as pylogging
import os
import threading
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

CHECKPOINT_DIR = "checkpoints"
_STATE = "state"  # the TrainState item of a step directory
DRAIN_TIMEOUT = 60.0  # seconds a failed restore waits for its other reads before cancelling them


class CheckpointError(ValueError):
  """A checkpoint exists but cannot be restored into this experiment."""


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (a full disk, say); the complete ones are kept."""


def make_manager(workdir: str, cfg: Any) -> ocp.CheckpointManager:
  """CheckpointManager keeping the last `cfg.keep_checkpoints` step directories."""
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
  options = ocp.CheckpointManagerOptions(
    max_to_keep=cfg.keep_checkpoints, create=True, enable_async_checkpointing=True
  )
  with _without_orbax_logs():  # it reads every step's metadata file, and logs a damaged one
    return ocp.CheckpointManager(directory, options=options, item_names=(_STATE, "data"))


def save(manager: ocp.CheckpointManager, step: int, state: Any, data_state: Any) -> None:
  """Starts an (async) save of the state and the JSON-able data-iterator state at `step`.

  Raises:
    CheckpointWriteError: this or the previous (background) write failed.
  """
  with _reporting_write_errors(manager):
    manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(_jsonable(data_state))
      ),
      force=True,
    )


@contextlib.contextmanager
def writing(manager: ocp.CheckpointManager):
  """The scope of a run's checkpoint writes; on exit waits for the last one and closes `manager`.

  A background write that fails is raised once, by `save` or on exit, as CheckpointWriteError
  naming the directory and the last complete checkpoint; Orbax's own error logs of it (tracebacks
  from its threads) are dropped within the scope. Leaving the scope on another error still waits
  and closes, and that error is the one raised.

  Raises:
    CheckpointWriteError: the last write failed.
  """
  with _without_orbax_logs(pylogging.ERROR):
    try:
      yield
    except BaseException:
      with contextlib.suppress(Exception):
        manager.wait_until_finished()
      with contextlib.suppress(Exception):
        manager.close()
      raise
    try:
      with _reporting_write_errors(manager):
        manager.wait_until_finished()
    finally:
      with contextlib.suppress(Exception):
        manager.close()


@contextlib.contextmanager
def _reporting_write_errors(manager: ocp.CheckpointManager):
  try:
    yield
  except Exception as e:
    _join_orbax_threads()
    directory = str(manager.directory)
    steps = _steps(directory)
    kept = (
      f"the last complete checkpoint, step {max(steps)}, is kept: rerun the same command to "
      "resume from it once the cause is fixed"
      if steps
      else "no checkpoint was complete"
    )
    first = str(e).splitlines()[0][:300] if str(e) else ""
    raise CheckpointWriteError(
      f"could not write a checkpoint in {directory} ({type(e).__name__}: {first}); {kept}."
    ) from e


def _join_orbax_threads(timeout: float = 60.0) -> None:
  """Waits for Orbax's background threads of a failed write, so that none is left to fail (and
  log) while the interpreter shuts down, after the error has been reported."""
  for thread in threading.enumerate():
    if thread is not threading.current_thread() and type(thread).__module__.startswith("orbax"):
      thread.join(timeout)


def restore_latest(manager: ocp.CheckpointManager, state: Any, sharding: Any) -> tuple[Any, Any]:
  """(state, data_state) of the latest checkpoint, or (state, None) when there is none.

  The stored shapes and dtypes are compared with `state` before any array is read.

  Args:
    manager: the run's checkpoint manager.
    state: a freshly initialised state; gives the tree structure, shapes and dtypes.
    sharding: the shardings to restore into (same tree as state).

  Raises:
    CheckpointError: naming the checkpoint, when it does not match this experiment or cannot be
      read (damaged or incomplete).
  """
  with _without_orbax_logs():  # it reads each step's metadata file, and logs a damaged one
    step = manager.latest_step()
  if step is None:
    return state, None
  directory = str(manager.directory)
  _check_stored(directory, step, state)
  abstract = jax.tree.map(
    lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, sharding
  )
  with _reporting_read_errors(directory, step):
    restored = manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()
      ),
    )
  return restored.state, _from_jsonable(restored.data)


def restore_params(
  workdir: str, abstract_state: Any, *, step: int | None = None, partial: bool = False
) -> Any:
  """Restores the TrainState of `step` (default: latest) onto this process's first device.

  Args:
    workdir: the run directory.
    abstract_state: a state or `jax.eval_shape` of one: the expected structure, shapes, dtypes.
      With `partial`, a dict of some of the state's items, e.g. {'step', 'ema_params'}.
    step: the checkpoint step; None for the latest.
    partial: read only the items of `abstract_state` (no optimiser state is needed to load the
      weights); each of them is still checked array by array.

  Raises:
    CheckpointError: no checkpoint, or one that does not fit the state or cannot be read.
  """
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
  steps = _steps(directory) if os.path.isdir(directory) else []
  if not steps:
    raise CheckpointError(f"no checkpoints in {directory}: train first (--mode=train).")
  step = max(steps) if step is None else step
  if step not in steps:
    raise CheckpointError(f"no checkpoint of step {step} in {directory}; it has {sorted(steps)}.")
  _check_stored(directory, step, abstract_state, partial=partial)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract_state = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract_state
  )
  if partial:
    handler = ocp.PyTreeCheckpointHandler()
    args = ocp.args.PyTreeRestore(
      item=abstract_state,
      restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state),
      partial_restore=True,
    )
  else:
    handler, args = ocp.StandardCheckpointHandler(), ocp.args.StandardRestore(abstract_state)
  with _reporting_read_errors(directory, step), ocp.Checkpointer(handler) as checkpointer:
    return checkpointer.restore(os.path.join(directory, str(step), _STATE), args=args)


def _check_stored(directory: str, step: int, expected: Any, *, partial: bool = False) -> None:
  """Compares every stored array's path, shape and dtype with `expected`, reading no array.

  With `partial`, only the stored arrays under the top-level items of `expected`. Orbax would
  otherwise restore silently into other shapes, or fail half-way through its asynchronous reads.
  """
  path = os.path.join(directory, str(step))
  with _reporting_read_errors(directory, step):  # the metadata of OCDBT arrays is read, too
    stored = ocp.StandardCheckpointHandler().metadata(epath.Path(path) / _STATE).tree
  got = {_keystr(k): leaf for k, leaf in jax.tree_util.tree_leaves_with_path(stored)}
  want = {
    _keystr(k): jax.eval_shape(_stored_form, leaf)
    for k, leaf in jax.tree_util.tree_leaves_with_path(expected)
  }
  if partial:
    items = {name.split("/")[0] for name in want}
    got = {name: leaf for name, leaf in got.items() if name.split("/")[0] in items}
  unmatched = sorted(got.keys() ^ want.keys())
  if unmatched:
    where = "is not in this experiment" if unmatched[0] in got else "is missing"
    raise CheckpointError(
      f"checkpoint {path} does not match this experiment: array "
      f"{unmatched[0]} {where} (a different config?); it was left untouched."
    )
  for name, w in want.items():
    g = got[name]
    if tuple(g.shape) != tuple(w.shape) or g.dtype != w.dtype:
      raise CheckpointError(
        f"checkpoint {path} does not match this experiment at {name}: stored "
        f"{g.dtype}{tuple(g.shape)}, expected {w.dtype}{tuple(w.shape)} (a different config?); "
        "it was left untouched."
      )


def _stored_form(x: Any) -> Any:
  """What Orbax stores for a leaf: the raw uint32 data of a typed PRNG key, else the array."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(x)
  return x


def _keystr(path: tuple) -> str:
  """'opt_state/1/0/mu/...': the same name for Orbax's dict keys and our attribute keys."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _steps(directory: str) -> list[int]:
  with _without_orbax_logs():
    return ocp.utils.checkpoint_steps(directory)


def _unreadable(directory: str, step: int, error: Exception) -> str:
  older = [s for s in _steps(directory) if s < step]
  path = os.path.join(directory, str(step))
  how = (
    f"to resume from step {max(older)}, move {path} out of {directory}"
    if older
    else "to start afresh, use a new --workdir"
  )
  first = str(error).splitlines()[0] if str(error) else ""
  return (
    f"checkpoint {path} cannot be read (damaged or incomplete: {type(error).__name__}: "
    f"{first[:300]}); it was left untouched: {how}."
  )


@contextlib.contextmanager
def _reporting_read_errors(directory: str, step: int):
  """Turns a failed read into a CheckpointError, raised once none of its reads is in flight."""
  try:
    with _without_orbax_logs(), _draining_event_loops():
      yield
  except CheckpointError:
    raise
  except Exception as e:
    raise CheckpointError(_unreadable(directory, step, e)) from e


@contextlib.contextmanager
def _draining_event_loops():
  """Within the scope, a closing event loop first awaits its pending tasks (`_DrainingEventLoop`).

  Orbax reads the arrays concurrently (an `asyncio.gather` of TensorStore reads) in an event loop
  that its asyncio_utils.run_sync makes with `asyncio.new_event_loop()` and closes as soon as the
  gather raises, without awaiting or cancelling the other reads; those later fail against the
  closed loop ('Event loop is closed' from TensorStore's threads, 'Task exception was never
  retrieved'). Orbax takes no loop from its caller, so within the scope its loops come from this
  asyncio event-loop policy, and the previous policy is back on exit: no process state changes
  for good. (Called inside a running loop, Orbax makes a uvloop loop instead, out of its reach.)
  """
  previous = asyncio.get_event_loop_policy()
  asyncio.set_event_loop_policy(_DrainingPolicy())
  try:
    yield
  finally:
    asyncio.set_event_loop_policy(previous)


class _DrainingPolicy(asyncio.DefaultEventLoopPolicy):
  def new_event_loop(self) -> asyncio.AbstractEventLoop:
    return _DrainingEventLoop()


class _DrainingEventLoop(asyncio.SelectorEventLoop):
  """An event loop that, on close, first lets its pending tasks end, then ends its executor
  threads: their errors are retrieved, the threads joined.

  The tasks are awaited before any is cancelled: cancelling a TensorStore read that has just
  completed does not stop its done callback, which, on TensorStore's thread, posts the result to
  this loop with `call_soon_threadsafe`; had the loop closed meanwhile, that thread would print
  'Event loop is closed'. Tasks still pending after `DRAIN_TIMEOUT` seconds are cancelled.
  """

  def close(self) -> None:
    try:
      if not self.is_closed() and not self.is_running():
        if tasks := asyncio.all_tasks(self):
          done, _ = self.run_until_complete(asyncio.wait(tasks, timeout=DRAIN_TIMEOUT))
          for task in done:
            if not task.cancelled():
              task.exception()  # retrieved: no 'Task exception was never retrieved'
        while tasks := asyncio.all_tasks(self):
          for task in tasks:
            task.cancel()
          self.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.run_until_complete(self.shutdown_default_executor())
    finally:
      super().close()


class _OrbaxFilter(pylogging.Filter):
  """Drops Orbax's own log lines from `level` up: the failures they describe are raised as
  CheckpointError or CheckpointWriteError."""

  def __init__(self, level: int = pylogging.NOTSET):
    super().__init__()
    self.level = level

  def filter(self, record: pylogging.LogRecord) -> bool:
    return record.levelno < self.level or f"{os.sep}orbax{os.sep}" not in record.pathname


@contextlib.contextmanager
def _without_orbax_logs(level: int = pylogging.NOTSET):
  absl_logger, orbax_filter = pylogging.getLogger("absl"), _OrbaxFilter(level)
  absl_logger.addFilter(orbax_filter)
  try:
    yield
  finally:
    absl_logger.removeFilter(orbax_filter)


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
