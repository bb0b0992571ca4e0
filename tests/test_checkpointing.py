"""Checkpoint read failures: the reads Orbax leaves in flight stay silent, others do not."""

import os
import sys
import threading
import types

from paramrel_jax.training import checkpointing


def _raise_in_thread(filename: str, hook) -> None:
  code = compile("raise RuntimeError('Event loop is closed')", filename, "exec")
  thread = threading.Thread(target=exec, args=(code, {}))
  previous, threading.excepthook = threading.excepthook, hook
  try:
    thread.start()
    thread.join()
  finally:
    threading.excepthook = previous


def test_only_errors_of_orbax_threads_are_dropped():
  passed_on = []
  hook = checkpointing._dropping_orbax_errors(passed_on.append)
  _raise_in_thread(os.path.join(os.sep, "site-packages", "orbax", "checkpoint", "fake.py"), hook)
  assert passed_on == []
  _raise_in_thread(os.path.join(os.sep, "somewhere", "else.py"), hook)
  assert [str(args.exc_value) for args in passed_on] == ["Event loop is closed"]


def _closed_loop_error(filename: str) -> tuple:
  """(type, value, traceback) of 'Event loop is closed' raised by code compiled as `filename`."""
  code = compile("raise RuntimeError('Event loop is closed')", filename, "exec")
  try:
    exec(code, {})
  except RuntimeError as e:
    return type(e), e, e.__traceback__.tb_next  # the frames below this test's own
  raise AssertionError("not raised")


def test_closed_loop_errors_of_asyncio_callbacks_are_dropped():
  """A native I/O thread reports the callback of a read still in flight through sys.excepthook;
  only that error, raised in asyncio alone, is dropped."""
  passed_on = []
  hook = checkpointing._dropping_closed_loop_errors(lambda *exc: passed_on.append(exc[1]))
  asyncio_file = os.path.join(os.sep, "lib", "python3.11", "asyncio", "base_events.py")
  hook(*_closed_loop_error(asyncio_file))
  assert passed_on == []
  hook(*_closed_loop_error(os.path.join(os.sep, "somewhere", "else.py")))
  hook(ValueError, ValueError("Event loop is closed"), None)
  assert [type(e).__name__ for e in passed_on] == ["RuntimeError", "ValueError"]


def test_closed_loop_reports_are_dropped_from_the_start_of_a_read(tmp_path, monkeypatch):
  """Reads in flight report into the closed loop (as unraisable, from native threads) even before
  the failure reaches the handler, so the hooks are in place as the read begins."""
  passed_on = []
  monkeypatch.setattr("sys.excepthook", lambda *exc: passed_on.append(exc[1]))
  monkeypatch.setattr("sys.unraisablehook", lambda args: passed_on.append(args.exc_value))

  def report(filename):
    _, value, traceback = _closed_loop_error(filename)
    sys.excepthook(type(value), value, traceback)
    sys.unraisablehook(types.SimpleNamespace(exc_type=type(value), exc_value=value,
                                             exc_traceback=traceback, err_msg=None, object=None))

  with checkpointing._reporting_read_errors(str(tmp_path), 1):
    report(os.path.join(os.sep, "lib", "python3.11", "asyncio", "base_events.py"))
  assert passed_on == []
  report(os.path.join(os.sep, "somewhere", "else.py"))
  assert [str(e) for e in passed_on] == ["Event loop is closed"] * 2
