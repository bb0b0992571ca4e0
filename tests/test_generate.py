"""The n-step generative loop: oracle convergence, step schedule, single trace."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramrel_jax.bfn import continuous, discrete, discretised, flows
from paramrel_jax.bfn.generate import generate

KEY = jax.random.key(0, impl="rbg")  # RngBitGenerator: much faster to compile than threefry
SHAPE = (2, 4, 4, 1)


def _oracle(flow, x):
  """An output function whose distribution puts (almost) all its mass on the true x."""

  def output_fn(theta, t, key):
    del theta, t, key
    if flow.data_type == "continuous":
      return flows.DeltaOutput(x)
    if flow.data_type == "discretised":
      return flows.DiscretisedNormalOutput(x, jnp.full(x.shape, 1e-3))
    return flows.CategoricalOutput(
      jnp.log(jax.nn.one_hot(x, flow.num_classes) * 0.999 + 0.001 / (flow.num_classes))
    )

  return output_fn


def _data(flow, key=KEY):
  if flow.data_type == "discrete":
    return jax.random.randint(key, SHAPE, 0, flow.num_classes)
  bins = getattr(flow, "num_bins", 16)
  return discretised.quantize(jax.random.uniform(key, SHAPE, minval=-1, maxval=1), bins)


@pytest.mark.parametrize(
  "flow",
  [
    flows.ContinuousFlow(0.02),
    flows.DiscretisedFlow(0.001, 256),
    flows.DiscreteFlow(3.0, 2),
    flows.DiscreteFlow(3.0, 5),
  ],
  ids=lambda f: f"{f.data_type}-{getattr(f, 'num_classes', '')}",
)
def test_oracle_generation_converges_to_the_data(flow):
  x = _data(flow)
  run = jax.jit(
    lambda key: generate(key, flow, _oracle(flow, x), SHAPE, 50, return_trajectory=True)
  )
  x_gen, _, theta_n, thetas = run(KEY)
  np.testing.assert_array_equal(x_gen, x)
  for final, last in zip(jax.tree.leaves(theta_n), jax.tree.leaves(thetas), strict=True):
    np.testing.assert_array_equal(final, last[-1])
  prior = flow.prior(SHAPE)
  for first, p in zip(jax.tree.leaves(thetas), jax.tree.leaves(prior), strict=True):
    assert first.shape == (51,) + p.shape
    np.testing.assert_array_equal(first[0], p)
  last = jax.tree.map(lambda a: a[-1], thetas)
  if flow.data_type == "discrete":
    p_true = jnp.take_along_axis(jnp.exp(last.log_probs), x[..., None], -1)
    assert float(jnp.mean(p_true)) > 0.85
    assert float(jnp.mean(jnp.argmax(last.log_probs, -1) == x)) > 0.9
  else:
    np.testing.assert_allclose(last.rho, flow.sigma1**-2, rtol=1e-4)
    assert float(jnp.abs(last.mu - x).max()) < 6 * flow.sigma1
  if flow.data_type == "discretised":
    np.testing.assert_array_equal(discretised.quantize(last.mu, flow.num_bins), x)


def test_continuous_steps_use_t_of_the_previous_step_and_the_accuracy_schedule():
  """With x_hat = t, E[mu_n] = sum_i alpha_i (i - 1)/n / rho_n; the trajectory matches p_F."""
  sigma1, n, shape = 0.1, 8, (4000, 2)
  flow = flows.ContinuousFlow(sigma1)

  def output_fn(theta, t, key):
    return flows.DeltaOutput(jnp.broadcast_to(t[:, None], theta.mu.shape))

  x_gen, _, _, thetas = jax.jit(
    lambda k: generate(k, flow, output_fn, shape, n, return_trajectory=True)
  )(KEY)
  np.testing.assert_array_equal(x_gen, 1.0)  # output_fn at t = 1
  i = np.arange(1, n + 1)
  alpha = np.asarray(continuous.accuracy(i, n, sigma1), np.float64)
  expected = np.sum(alpha * (i - 1) / n) * sigma1**2
  mu_n = np.asarray(thetas.mu[-1], np.float64)
  np.testing.assert_allclose(mu_n.mean(), expected, atol=4 * sigma1 / np.sqrt(mu_n.size))
  # the spread of mu_k is the flow's: mu_k - E[mu_k] ~ N(0, sum_{j<=k} alpha_j / rho_k^2)
  for k in (1, n // 2, n):
    rho_k = 1 + alpha[:k].sum()
    np.testing.assert_allclose(
      np.std(np.asarray(thetas.mu[k])), np.sqrt(alpha[:k].sum()) / rho_k, rtol=0.05
    )
    np.testing.assert_allclose(thetas.rho[k], rho_k, rtol=1e-5)


def test_discrete_trajectory_follows_the_bayesian_flow():
  """With an oracle receiver, theta after k of n steps is distributed as p_F(theta | x; k / n)."""
  K, n, beta1, shape = 3, 6, 2.0, (3000, 1)
  flow = flows.DiscreteFlow(beta1, K)
  x = jnp.zeros(shape, jnp.int32)

  def output_fn(theta, t, key):
    del t, key
    return flows.CategoricalOutput(
      jnp.where(jax.nn.one_hot(x, K) > 0, 0.0, -jnp.inf) + 0 * theta.log_probs
    )

  @jax.jit
  def run(key):
    k_gen, k_flow = jax.random.split(key)
    thetas = generate(k_gen, flow, output_fn, shape, n, return_trajectory=True).trajectory
    flow_draws = [
      discrete.sample_flow(jax.random.fold_in(k_flow, k), x, k / n, beta1, K) for k in (2, n)
    ]
    return thetas.log_probs, flow_draws

  log_probs, flow_draws = run(KEY)
  for k, draws in zip((2, n), flow_draws, strict=True):
    np.testing.assert_allclose(
      jnp.mean(jnp.exp(log_probs[k][..., 0])), jnp.mean(jnp.exp(draws[..., 0])), atol=0.02
    )


def test_a_1000_step_generation_traces_output_fn_once():
  flow = flows.DiscreteFlow(3.0, 2)
  x = _data(flow)
  calls = []

  def output_fn(theta, t, key):
    calls.append(t.shape)
    return _oracle(flow, x)(theta, t, key)

  run = jax.jit(
    functools.partial(generate, flow=flow, output_fn=output_fn, data_shape=SHAPE, n_steps=1000)
  )
  x_gen = run(KEY).x
  assert calls == [(SHAPE[0],)]
  np.testing.assert_array_equal(x_gen, x)
  run(jax.random.key(1, impl="rbg"))
  assert len(calls) == 1  # no retrace for a new key


def test_generation_is_a_function_of_the_key():
  flow = flows.DiscretisedFlow(0.02, 16)

  def output_fn(theta, t, key):
    del t, key
    return flows.DiscretisedNormalOutput(theta.mu, jnp.full(theta.mu.shape, 0.3))

  run = jax.jit(lambda key: generate(key, flow, output_fn, SHAPE, 5)[0])
  a, b = run(KEY), run(KEY)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, run(jax.random.PRNGKey(3)))  # raw uint32 keys work too


def test_output_fn_gets_a_key_per_call():
  """The final call at t = 1 gets fold_in(key, n + 1); the steps' keys make different draws."""
  flow, n = flows.ContinuousFlow(0.1), 3

  def output_fn(theta, t, key):
    return flows.DeltaOutput(jax.random.normal(key, theta.mu.shape))

  result = jax.jit(lambda k: generate(k, flow, output_fn, SHAPE, n, return_trajectory=True))(KEY)
  expected = jax.random.normal(jax.random.fold_in(KEY, n + 1), SHAPE)
  np.testing.assert_array_equal(result.x, expected)
  steps = np.asarray(result.trajectory.mu[1:])
  assert len({float(step.ravel()[0]) for step in steps}) == n


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(data_shape=SHAPE, n_steps=0), "n_steps"),
    (dict(data_shape=SHAPE, n_steps=2.5), "n_steps"),
    (dict(data_shape=(0, 4), n_steps=3), "data_shape"),
  ],
)
def test_bad_arguments_raise(kwargs, match):
  flow = flows.ContinuousFlow(0.1)
  with pytest.raises(ValueError, match=match):
    generate(KEY, flow, lambda theta, t, key: flows.DeltaOutput(theta.mu), **kwargs)
