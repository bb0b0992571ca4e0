"""Shared fixtures: small configs on the generated datasets, and the repository root."""

import os
import sys

import pytest
from hypothesis import settings

# Property tests (test_flow_hypothesis.py): the same bounded, derandomised examples on every
# machine; HYPOTHESIS_PROFILE=explore draws fresh ones, more of them.
settings.register_profile(
  "repeatable", max_examples=25, deadline=None, derandomize=True, database=None
)
settings.register_profile("explore", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# XLA's CPU backend at optimisation level 0 for every compile of the test session, in-process and
# in the CLI subprocesses (which inherit the variable): the test programs run for milliseconds,
# and LLVM's optimisation passes were much of their compile time (one `:smoke` CLI run, compile
# cache off: 91 s at the default level, 42 s at 0; README, "Tests", for the whole suite). The
# same HLO programs run, unvectorised.
# PARAMREL_TEST_XLA_OPT=default keeps XLA's default level. A test that sets XLA_FLAGS for a
# subprocess adds to them (`xla_flags`).
if os.environ.get("PARAMREL_TEST_XLA_OPT") != "default":
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0"


def xla_flags(*flags: str) -> str:
  """This session's XLA_FLAGS followed by `flags`, for a subprocess's environment."""
  return " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()


# The persistent compilation cache, one per test session: every in-process compile and every CLI
# subprocess (through XDG_CACHE_HOME, which the CLI's default `compile_cache='user'` reads) of
# this session shares one fresh directory, so the many CLI runs of the same smoke shapes compile
# their steps once. An entry is keyed by the compiled program itself (with the compile options,
# backend and JAX version), so a changed program compiles afresh, and nothing outlives the
# session: no test can load what an earlier run of the suite compiled. (An entry half-written
# by one process and read by another fails to decompress: JAX warns and compiles.) Until the
# fixture below sets it up (and with PARAMREL_TEST_COMPILE_CACHE=off, for a run that compiles
# everything), the cache is off, here and in subprocesses; tests/test_compile_cache.py points it
# at its own directories.
os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
if "jax" in sys.modules:  # imported before this file (by a plugin): the variable came too late
  sys.modules["jax"].config.update("jax_enable_compilation_cache", False)


def use_session_compile_cache() -> None:
  """Points this process's compiles, and its future subprocesses', at the session's cache."""
  base = os.environ.get("PARAMREL_SESSION_CACHE_HOME")
  if not base:
    return
  import jax

  from paramrel_jax.training import compile_cache

  os.environ["XDG_CACHE_HOME"] = base
  os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "true"
  jax.config.update("jax_enable_compilation_cache", True)
  compile_cache.configure("user", "")


@pytest.fixture(scope="session", autouse=True)
def _session_compile_cache(tmp_path_factory):
  if os.environ.get("PARAMREL_TEST_COMPILE_CACHE") == "off" or os.environ.get(
    "PARAMREL_MUTATION_COMPILE_CACHE"
  ):
    return
  # pytest-xdist's workers each get basetemp/popen-gwN: their parent is the run's, shared.
  basetemp = tmp_path_factory.getbasetemp()
  shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
  os.environ["PARAMREL_SESSION_CACHE_HOME"] = str(shared / "cache_home")
  use_session_compile_cache()


# Scheduling under `-n 2` (`--dist=loadgroup`, pyproject.toml): the modules below run first, in
# this order, the slowest work first (CLI runs of whole jobs, from the `--durations` that close
# every run), so that neither worker is left alone with a long test at the end. A module marked
# `xdist_group` (test_main, test_api, ...) runs on one worker: its module fixture trains a run
# once, where split between the workers it would train twice. The other modules keep pytest's
# order after them.
FIRST = (
  "test_multihost.py",
  "test_main.py",
  "test_prepare.py",
  "test_api.py",
  "test_compile_cache.py",
  "test_conditioning.py",
  "test_experiment_scripts.py",
  "test_table_runs.py",
  "test_train.py",
  "test_benchmark.py",
  "test_checkpoint_faults.py",
  "test_study.py",
  "test_evaluation.py",
  "test_record_net.py",
  "test_runs.py",
)


def pytest_collection_modifyitems(config, items):
  missing = set(FIRST) - {os.path.basename(f) for f in os.listdir(os.path.join(ROOT, "tests"))}
  if missing:
    raise pytest.UsageError(f"conftest.FIRST names test files that do not exist: {sorted(missing)}")
  rank = {name: i for i, name in enumerate(FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: keeps the rest


# Mutation testing (tests/mutation/run.sh) runs the same tests once per mutant, thousands of times:
# it shares one cache directory between them (keyed as above, so a mutant that changes a
# computation is compiled afresh and cannot hide behind it).
if os.environ.get("PARAMREL_MUTATION_COMPILE_CACHE"):
  import jax

  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", os.environ["PARAMREL_MUTATION_COMPILE_CACHE"])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def tiny_config(data_type: str = "discrete", **overrides):
  """A base config on a generated 16x16 dataset with a tiny network; seconds per step on CPU."""
  from paramrel_jax.configs import base, smoke

  config = smoke.apply_smoke(base.get_config())
  config.data.source = "generated"
  config.data.image_size = 16
  config.data.num_examples = 128
  if data_type == "discrete":
    config.data.name = "shapes2d"
    config.data.binarize = "threshold"
  else:
    config.data.name = "scenes3d"
    config.data.binarize = "none"
    config.flow.num_bins = 16
    config.flow.sigma1 = 0.02
  config.flow.data_type = data_type
  config.data.prefetch = 1
  for key, value in overrides.items():
    section, name = key.split(".")
    config[section][name] = value
  return config


@pytest.fixture
def root() -> str:
  return ROOT
