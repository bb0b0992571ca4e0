"""Tests of the persistent compilation cache (config key `compile_cache`)."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, use_session_compile_cache

from paramrel_jax.training import compile_cache


@pytest.fixture
def cache_on():
  """JAX's cache switch on for one test, then the session's cache (conftest) restored."""
  jax.config.update("jax_enable_compilation_cache", True)
  yield
  jax.config.update("jax_enable_compilation_cache", False)
  compile_cache.configure("off", "")
  use_session_compile_cache()


def test_cache_dir_settings(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.cache_dir("user", "w") == str(tmp_path / "xdg" / "paramrel_jax" / "xla")
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert compile_cache.cache_dir("user", "w") == os.path.expanduser("~/.cache/paramrel_jax/xla")
  assert compile_cache.cache_dir("workdir", str(tmp_path)) == str(tmp_path / "compile_cache")
  assert compile_cache.cache_dir("off", "w") is None
  assert compile_cache.cache_dir(str(tmp_path / "c"), "w") == str(tmp_path / "c")
  with pytest.raises(ValueError, match="compile_cache"):
    compile_cache.cache_dir("", "w")


def _hits_while(fn) -> int:
  hits = []
  listener = lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None
  jax.monitoring.register_event_listener(listener)
  try:
    fn()
  finally:
    jax.monitoring.unregister_event_listener(listener)
  return len(hits)


def test_a_second_compile_loads_from_the_directory_in_use(tmp_path, cache_on):
  def compile_once(scale):
    jax.clear_caches()  # forget the in-memory executables: only the disk can help
    return np.asarray(jax.jit(lambda: jnp.sin(jnp.arange(3.0)) * scale)())

  first = compile_cache.configure(str(tmp_path / "a"), "")
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # cache even tiny compiles
  assert _hits_while(lambda: compile_once(2.0)) == 0
  assert os.listdir(first), "the compile was not written to the cache"
  assert _hits_while(lambda: compile_once(2.0)) == 1
  assert _hits_while(lambda: compile_once(3.0)) == 0  # another program: another key

  # Switching the directory within a process takes effect: the new one starts empty.
  second = compile_cache.configure(str(tmp_path / "b"), "")
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  assert _hits_while(lambda: compile_once(2.0)) == 0
  assert os.listdir(second)
  compile_cache.configure("off", "")
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  assert _hits_while(lambda: compile_once(2.0)) == 0


def _train(workdir, *overrides):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_ENABLE_COMPILATION_CACHE": "true"}
  args = [
    "--config=configs/default.py:smoke",
    f"--workdir={workdir}",
    "--config.training.num_steps=1",
    "--config.sampling.after_training=False",  # the train step is the cache entry checked
    *overrides,
  ]
  done = subprocess.run(
    [sys.executable, "-m", "paramrel_jax.main", *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert done.returncode == 0, done.stderr


def test_the_cli_writes_the_configured_cache_and_none_when_off(tmp_path):
  _train(tmp_path / "run", "--config.compile_cache=workdir")
  entries = os.listdir(tmp_path / "run" / "compile_cache")
  assert any("train_step" in name for name in entries), entries
  _train(tmp_path / "off", "--config.compile_cache=off")
  assert not (tmp_path / "off" / "compile_cache").exists()


def test_an_empty_setting_is_a_clear_error(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  done = subprocess.run(
    [
      sys.executable,
      "-m",
      "paramrel_jax.main",
      "--config=configs/default.py:smoke",
      f"--workdir={tmp_path}",
      "--config.compile_cache=",
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert done.returncode == 2
  assert done.stderr.strip().splitlines()[-1].startswith("error: compile_cache must be")
