"""Tests of the sampler's cost checks: no host round trip, no recompilation, per-step parts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from paramrel_jax.config import configuration
from paramrel_jax.methods.paramrel import sampler_cost, sampling
from paramrel_jax.training import train

SHAPE = (2, 16, 16, 1)


def _model():
  cfg = configuration.resolve(tiny_config())
  exp = train.build_experiment(cfg, SHAPE[-1])
  return exp.model, exp.model.init(jax.random.key(0), SHAPE)


def test_host_transfers_finds_a_callback_and_nothing_in_plain_math():
  def with_callback(x):
    return jax.pure_callback(np.sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x) + 1

  x = jnp.ones(3)
  assert sampler_cost.host_transfers(jax.jit(with_callback).lower(x).compile().as_text())
  assert sampler_cost.host_transfers(jax.jit(jnp.sin).lower(x).compile().as_text()) == []


def test_the_sampler_scan_has_no_host_round_trip_and_compiles_once():
  model, params = _model()

  def run(seed, n):
    return sampler_cost.sample(model, params, SHAPE, n, seed)

  assert sampler_cost.compiles_while(lambda: run(1, 7)) >= 1
  assert sampler_cost.compiles_while(lambda: run(2, 7)) == 0  # a new key reuses the executable
  assert sampler_cost.compiles_while(lambda: run(3, 9)) >= 1  # a new n is a new program
  lowered = sampler_cost.lower(model, params, SHAPE, 7, jax.random.key(0))
  compiled = lowered.compile()
  text = compiled.as_text()
  assert sampler_cost.host_transfers(text) == []
  assert " while(" in text  # the steps are one loop in the executable, not unrolled
  want = sampling.sample(
    jax.random.key(0), model.flow, model.net, params, data_shape=SHAPE, n_steps=7, z_source="prior"
  ).x
  np.testing.assert_array_equal(compiled(jax.random.key(0), params).x, want)
  dtypes = sampler_cost.network_dtypes(model, params, SHAPE)
  assert dtypes == {"encoder_out_dtype": "float32", "net_out_dtype": "float32"}


def test_step_costs_times_the_step_and_its_parts():
  model, params = _model()
  costs = sampler_cost.step_costs(model, params, SHAPE, n_steps=(2, 4), repeats=1)
  assert set(costs) >= {"step_ms", "forward_ms", "flow_ms", "flow_share", "overhead_ms"}
  for name in ("forward_ms", "flow_ms"):
    assert math.isfinite(costs[name]) and costs[name] > 0


def test_step_costs_is_the_slope_between_the_two_samplers(monkeypatch):
  """With a scripted clock: the samplers of 2 and 6 steps take 10 and 30 ms, so one step costs
  (30 - 10) / (6 - 2) = 5 ms, of which the forward pass (1.5 ms) and the flow math (0.5 ms)."""
  model, params = _model()
  scripted = iter([0.010, 0.030, 0.0015, 0.0005])  # sampler(2), sampler(6), forward, flow math
  outputs = []

  def timed(fn, repeats):
    outputs.append(jax.tree.map(jnp.shape, fn()))  # each timed function really runs
    return next(scripted)

  monkeypatch.setattr(sampler_cost, "_median_seconds", timed)
  costs = sampler_cost.step_costs(model, params, SHAPE, n_steps=(2, 6), repeats=1)
  assert costs["step_ms"] == pytest.approx(5.0)
  assert (costs["forward_ms"], costs["flow_ms"]) == pytest.approx((1.5, 0.5))
  assert costs["flow_share"] == pytest.approx(0.1)
  assert costs["overhead_ms"] == pytest.approx(3.0)
  assert outputs[0] == outputs[1] == SHAPE  # the two samplers give images
