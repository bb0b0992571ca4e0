"""Tests of methods.paramrel.sampling: n-step generation with a latent (paper Eq. 4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sampling_testlib import DATA_SHAPE, FLOW_CASES, LATENT_DIM, CountingNet, flow_of, tiny_model

from paramrel_jax.methods.paramrel import sampling


def _check_valid(flow, x):
  assert x.shape == DATA_SHAPE
  flow.validate_data(np.asarray(x))


@pytest.mark.parametrize("case", list(FLOW_CASES))
def test_sample_is_deterministic_per_key_and_varies_across_keys(case):
  flow = flow_of(case)
  net, params = tiny_model(flow)
  kwargs = dict(data_shape=DATA_SHAPE, n_steps=8)
  first = sampling.sample(jax.random.key(0), flow, net, params, **kwargs)
  again = sampling.sample(jax.random.key(0), flow, net, params, **kwargs)
  other = sampling.sample(jax.random.key(1), flow, net, params, **kwargs)
  _check_valid(flow, first.x)
  assert first.z.shape == (DATA_SHAPE[0], LATENT_DIM)
  np.testing.assert_array_equal(first.x, again.x)
  np.testing.assert_array_equal(first.z, again.z)
  assert not np.array_equal(first.x, other.x)
  assert not np.array_equal(first.z, other.z)
  # The prior latent differs between the examples of a batch.
  assert not np.allclose(first.z[0], first.z[1])


@pytest.mark.parametrize("encoder_draw", [False, True])
def test_sample_with_encoder_latents(encoder_draw):
  flow = flow_of("binary")
  net, params = tiny_model(flow)
  res = sampling.sample(
    jax.random.key(0),
    flow,
    net,
    params,
    data_shape=DATA_SHAPE,
    n_steps=6,
    z_source="encoder",
    encoder_draw=encoder_draw,
  )
  _check_valid(flow, res.x)
  mean, _ = sampling.posterior(net, params, flow.net_input(res.theta), jnp.ones((DATA_SHAPE[0],)))
  # The final latent is the encoder's mean at theta_n, or a draw around it.
  if encoder_draw:
    assert not np.allclose(res.z, mean)
  else:
    np.testing.assert_allclose(res.z, mean, rtol=1e-5, atol=1e-6)


def test_sample_conditions_on_a_given_latent():
  flow = flow_of("continuous")
  net, params = tiny_model(flow)
  z = jnp.array([[1.0, -2.0, 0.5], [1.0, -2.0, 0.5]])
  kwargs = dict(data_shape=DATA_SHAPE, n_steps=6)
  res = sampling.sample(jax.random.key(0), flow, net, params, z=z, **kwargs)
  np.testing.assert_array_equal(res.z, z)
  shifted = sampling.sample(jax.random.key(0), flow, net, params, z=z + 1.0, **kwargs)
  assert not np.allclose(res.x, shifted.x)
  # With the prior, the same key draws z ~ N(0, I) from fold_in(key, 0).
  prior = sampling.sample(jax.random.key(0), flow, net, params, **kwargs)
  expected = jax.random.normal(jax.random.fold_in(jax.random.key(0), 0), z.shape)
  np.testing.assert_array_equal(prior.z, expected)


def test_path_at_interpolates_between_the_given_times():
  path = jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2)  # K = 3: t = 0, 0.5, 1
  np.testing.assert_array_equal(
    sampling.path_at(path, jnp.array([0.0, 1.0])), jnp.stack([path[0, 0], path[1, 2]])
  )
  np.testing.assert_allclose(
    sampling.path_at(path, jnp.array([0.25, 0.5])),
    jnp.stack([(path[0, 0] + path[0, 1]) / 2, path[1, 1]]),
  )


@pytest.mark.parametrize("k", [1, 4])
def test_path_moments_are_the_law_of_path_at(k):
  """path_at is linear in the path: at each t, z_t = A path with A read off the basis paths, so a
  Gaussian path N(m, C) gives z_t ~ N(A m, A C A^T) exactly."""
  latent, rng = 3, np.random.default_rng(0)
  mean = rng.normal(size=(k, latent)).astype(np.float32)
  root = rng.normal(size=(k * latent, k * latent))
  cov = (root @ root.T).astype(np.float32)
  t = jnp.array([0.0, 0.1, 1 / 3, 0.5, 0.9, 1.0])
  m, c = sampling.path_moments(jnp.asarray(mean), jnp.asarray(cov), t)
  assert m.shape == (len(t), latent) and c.shape == (len(t), latent, latent)
  for j, time in enumerate(t):
    if k == 1:
      a = np.eye(latent)  # one code at every time
    else:
      basis = jnp.eye(k * latent).reshape(k * latent, k, latent)
      a = np.asarray(sampling.path_at(basis, jnp.full((k * latent,), time))).T  # (L, K L)
    np.testing.assert_allclose(m[j], a @ mean.reshape(-1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c[j], a @ cov @ a.T, rtol=1e-4, atol=1e-4)


def test_a_latent_path_is_read_at_each_steps_time():
  flow = flow_of("binary")
  net, params = tiny_model(flow)
  z = jnp.array([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]])
  kwargs = dict(data_shape=DATA_SHAPE, n_steps=6)
  fixed = sampling.sample(jax.random.key(0), flow, net, params, z=z, **kwargs)
  # A constant path is the fixed latent.
  constant = sampling.sample(
    jax.random.key(0), flow, net, params, z=jnp.repeat(z[:, None], 4, axis=1), **kwargs
  )
  np.testing.assert_array_equal(constant.x, fixed.x)
  np.testing.assert_array_equal(constant.z, z)
  # A path that changes only after the last step's time (5/6) changes only the final latent.
  path = jnp.stack([z, z, z, z, z, z, z + 3.0], axis=1)  # K = 7: t = 0, 1/6, ..., 1
  moved = sampling.sample(jax.random.key(0), flow, net, params, z=path, **kwargs)
  np.testing.assert_allclose(moved.z, z + 3.0)
  with pytest.raises(ValueError, match=r"or be a path \(B, K >= 2, L\)"):
    sampling.sample(jax.random.key(0), flow, net, params, z=z[:, None], **kwargs)


def test_thousand_step_sampler_traces_its_step_once():
  flow = flow_of("continuous")
  shape = (1, 4, 4, 1)
  net, params = tiny_model(flow, shape, net_cls=CountingNet)
  CountingNet.traces.clear()
  res = sampling.sample(jax.random.key(0), flow, net, params, data_shape=shape, n_steps=1000)
  res.x.block_until_ready()
  # One trace of the output network, shared by the scan body and the final output at t = 1
  # (bfn.generate jits it); none per step.
  assert len(CountingNet.traces) == 1
  sampling.sample(jax.random.key(1), flow, net, params, data_shape=shape, n_steps=1000)
  assert len(CountingNet.traces) == 1
  assert np.all(np.isfinite(res.x))


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"z_source": "posterior"}, "z_source"),
    ({"n_steps": 0}, "n_steps"),
    ({"data_shape": (2, 8, 8)}, "data_shape"),
    ({"z": jnp.zeros((2, LATENT_DIM + 1))}, "z must have shape"),
    ({"z": jnp.zeros((2, LATENT_DIM)), "z_source": "encoder"}, "z_source='prior'"),
  ],
)
def test_sample_rejects_bad_arguments(kwargs, match):
  flow = flow_of("continuous")
  net, params = tiny_model(flow)
  args = dict(data_shape=DATA_SHAPE, n_steps=2)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    sampling.sample(jax.random.key(0), flow, net, params, **args)
