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

# No test may load what another test compiled (that could hide a compile error): JAX's own switch
# turns the persistent compilation cache off here and, through the environment, in every CLI
# subprocess. tests/test_compile_cache.py switches it on for its own directories.
os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
if "jax" in sys.modules:  # imported before this file (by a plugin): the variable came too late
  sys.modules["jax"].config.update("jax_enable_compilation_cache", False)

# Mutation testing (tests/mutation/run.sh) runs the same tests once per mutant, thousands of times:
# it shares one cache directory between them. A cache entry is keyed by the compiled program
# itself, so a mutant that changes a computation is compiled afresh and cannot hide behind it.
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
