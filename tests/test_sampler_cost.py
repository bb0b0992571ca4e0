"""Tests of the sampler's cost checks: no host round trip, no recompilation, per-step parts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from conftest import tiny_config

from paramrel_jax.config import configuration
from paramrel_jax.methods.paramrel import sampling
from paramrel_jax.perf import sampler_cost
from paramrel_jax.training import train

SHAPE = (2, 16, 16, 1)


def _model():
  cfg = configuration.resolve(tiny_config())
  exp = train.build_experiment(cfg, SHAPE[-1])
  return exp.model.flow, exp.model.net, exp.model.init(jax.random.key(0), SHAPE)


def test_host_transfers_finds_a_callback_and_nothing_in_plain_math():
  def with_callback(x):
    return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x) + 1

  x = jnp.ones(3)
  assert sampler_cost.host_transfers(jax.jit(with_callback).lower(x).compile().as_text())
  assert sampler_cost.host_transfers(jax.jit(jnp.sin).lower(x).compile().as_text()) == []


def test_the_sampler_scan_has_no_host_round_trip_and_compiles_once():
  flow, net, params = _model()

  def run(seed, n):
    return sampling.sample(jax.random.key(seed), flow, net, params, data_shape=SHAPE, n_steps=n,
                           z_source="prior").x

  assert sampler_cost.compiles_while(lambda: run(1, 7)) >= 1
  assert sampler_cost.compiles_while(lambda: run(2, 7)) == 0  # a new key reuses the executable
  assert sampler_cost.compiles_while(lambda: run(3, 9)) >= 1  # a new n is a new program
  text = sampling.sample.lower(jax.random.key(0), flow, net, params, data_shape=SHAPE,
                               n_steps=7, z_source="prior").compile().as_text()
  assert sampler_cost.host_transfers(text) == []
  assert " while(" in text  # the steps are one loop in the executable, not unrolled


def test_step_costs_times_the_step_and_its_parts():
  flow, net, params = _model()
  costs = sampler_cost.step_costs(flow, net, params, SHAPE, n_steps=(2, 4), repeats=1)
  assert set(costs) >= {"step_ms", "forward_ms", "flow_ms", "flow_share", "overhead_ms"}
  for name in ("forward_ms", "flow_ms"):
    assert math.isfinite(costs[name]) and costs[name] > 0
  assert math.isclose(costs["overhead_ms"],
                      costs["step_ms"] - costs["forward_ms"] - costs["flow_ms"], rel_tol=1e-9)
