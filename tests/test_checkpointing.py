"""Checkpoint read failures: the reads Orbax leaves in flight stay silent, others do not."""

import os
import threading

from paramrel_jax import checkpointing


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
