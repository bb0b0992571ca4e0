"""Checkpoint read failures: a damaged checkpoint raises CheckpointError once none of its reads is
in flight, and leaves the process as it was: no hook, log filter, event-loop policy or thread of
the restore is left behind, and nothing is reported after the error."""

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
import types

import jax
from conftest import ROOT

from paramrel_jax.training import checkpointing

REPEATS = 3  # whether reads are still in flight when one fails depends on timing


def write_damaged(workdir: str) -> dict:
  """Checkpoint 1 of eight arrays, its largest array data file cut in half; returns the state.

  Orbax reads the arrays concurrently, so some are in flight when those in the lost half fail.
  """
  keys = jax.random.split(jax.random.key(0), 8)
  state = {f"w{i}": jax.random.normal(key, (200_000,)) for i, key in enumerate(keys)}
  manager = checkpointing.make_manager(workdir, types.SimpleNamespace(keep_checkpoints=2))
  with checkpointing.writing(manager):
    checkpointing.save(manager, 1, state, 0)
  item = os.path.join(workdir, checkpointing.CHECKPOINT_DIR, "1", "state")
  data = [
    os.path.join(d, name)
    for d, _, names in os.walk(item)
    for name in names
    if os.path.basename(d) == "d"
  ]
  largest = max(data, key=os.path.getsize)
  os.truncate(largest, os.path.getsize(largest) // 2)
  return state


def restore_both_ways(workdir: str, state: dict) -> list[str]:
  """The errors of restore_params and of restore_latest (through a manager), REPEATS times."""
  sharding = jax.tree.map(lambda _: jax.sharding.SingleDeviceSharding(jax.devices()[0]), state)
  errors = []
  for _ in range(REPEATS):
    try:
      checkpointing.restore_params(workdir, state)
    except checkpointing.CheckpointError as e:
      errors.append(str(e))
    manager = checkpointing.make_manager(workdir, types.SimpleNamespace(keep_checkpoints=2))
    try:
      checkpointing.restore_latest(manager, state, sharding)
    except checkpointing.CheckpointError as e:
      errors.append(str(e))
    finally:
      manager.close()
  return errors


def _assert_reported(errors: list[str], workdir: str) -> None:
  step_dir = os.path.join(workdir, checkpointing.CHECKPOINT_DIR, "1")
  assert len(errors) == 2 * REPEATS, errors
  for error in errors:
    assert error.startswith(f"checkpoint {step_dir} cannot be read (damaged or incomplete: "), error
    assert error.endswith("it was left untouched: to start afresh, use a new --workdir."), error


def _process_state() -> tuple:
  return (
    sys.excepthook,
    sys.unraisablehook,
    threading.excepthook,
    list(logging.getLogger("asyncio").filters),
    list(logging.getLogger("absl").filters),
    asyncio.get_event_loop_policy(),
  )


def _lingering_threads() -> set[threading.Thread]:
  """Threads that would hold up the interpreter's exit or belong to Orbax."""
  return {
    t
    for t in threading.enumerate()
    if t is not threading.current_thread()
    and (not t.daemon or type(t).__module__.startswith("orbax"))
  }


def test_a_damaged_checkpoint_raises_and_leaves_the_process_as_it_was(tmp_path):
  workdir = str(tmp_path / "run")
  state = write_damaged(workdir)
  before, threads = _process_state(), _lingering_threads()
  errors = restore_both_ways(workdir, state)
  _assert_reported(errors, workdir)
  assert _process_state() == before
  for thread in _lingering_threads() - threads:  # Orbax's other loops end their executor
    thread.join(timeout=60)  # threads without waiting for them, so those may need a moment
  assert _lingering_threads() <= threads, _lingering_threads() - threads


_CHILD = """
import sys
import test_checkpointing as t
state = t.write_damaged(sys.argv[1])
for error in t.restore_both_ways(sys.argv[1], state):
  print(error)
print("reported", file=sys.stderr, flush=True)
"""


def test_nothing_is_reported_after_the_error_not_even_at_exit(tmp_path):
  """Reads left in flight would fail against a closed event loop, later or at interpreter exit
  ('Task exception was never retrieved', 'Event loop is closed', 'Exception ignored in')."""
  workdir = str(tmp_path / "run")
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.path.join(ROOT, "tests")}
  result = subprocess.run(
    [sys.executable, "-c", _CHILD, workdir],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr
  _assert_reported(result.stdout.splitlines(), workdir)
  for report in ("Traceback", "never retrieved", "Event loop is closed", "Exception ignored"):
    assert report not in result.stderr, result.stderr
  assert result.stderr.endswith("reported\n"), result.stderr


def _fail_like_orbax_run_sync(restore) -> asyncio.AbstractEventLoop:
  """Runs the coroutine `restore`, which fails with OSError, in a fresh loop of the restore's
  event-loop policy and closes it, as Orbax's run_sync does; returns the closed loop."""
  with checkpointing._draining_event_loops():
    loop = asyncio.new_event_loop()
    try:
      loop.run_until_complete(restore)
    except OSError:
      pass
    finally:
      loop.close()
  return loop


def test_a_closing_restore_loop_waits_for_work_that_posts_back_to_it():
  """A read whose completion another thread posts to the loop (as TensorStore's callbacks do) and
  that ends after a sibling failed: closing the loop waits for it instead of cancelling it, so the
  thread never meets a closed loop. (Cancelled, the read's thread posts 0.2 s later and fails.)"""
  failures = []

  async def read_posted_by_a_thread():
    future = asyncio.get_running_loop().create_future()

    def complete():
      time.sleep(0.2)
      try:
        future.get_loop().call_soon_threadsafe(lambda: future.done() or future.set_result("read"))
      except RuntimeError as e:
        failures.append(e)

    thread = threading.Thread(target=complete)
    thread.start()
    threads.append(thread)
    return await future

  async def failing_read():
    raise OSError("damaged")

  async def restore():
    return await asyncio.gather(read_posted_by_a_thread(), failing_read())

  threads = []
  loop = _fail_like_orbax_run_sync(restore())
  for thread in threads:
    thread.join()
  assert len(threads) == 1
  assert failures == []
  assert loop.is_closed() and not asyncio.all_tasks(loop)


def test_a_closing_restore_loop_cancels_what_outlasts_the_drain_timeout(monkeypatch):
  """A read that never ends (a hung remote store) is cancelled after DRAIN_TIMEOUT, not awaited
  for ever."""
  monkeypatch.setattr(checkpointing, "DRAIN_TIMEOUT", 0.1)

  async def hung_read():
    await asyncio.get_running_loop().create_future()  # never set

  async def restore():
    reads.append(asyncio.get_running_loop().create_task(hung_read()))
    await asyncio.sleep(0)
    raise OSError("damaged")

  reads = []
  loop = _fail_like_orbax_run_sync(restore())
  assert loop.is_closed() and reads[0].cancelled()
