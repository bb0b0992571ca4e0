"""Mathematical properties of the Bayesian-flow functions (continuous, discretised, discrete)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramrel_jax.bfn import continuous, discrete, discretised, flows

KEY = jax.random.key(0, impl="rbg")  # RngBitGenerator: much faster to compile than threefry
SIGMA1 = 0.02
BETA1 = 3.0


def _keys(n: int):
  return jax.random.split(KEY, n)


# --- Bayesian updates ---------------------------------------------------------------------------


def test_continuous_update_and_inverse_are_inverse():
  k1, k2, k3 = _keys(3)
  mu = jax.random.normal(k1, (5, 7))
  rho = jnp.exp(jax.random.normal(k2, (5, 1))) + 1
  y = 3 * jax.random.normal(k3, (5, 7))
  alpha = jnp.linspace(0.1, 50.0, 5)[:, None]
  mu_new, rho_new = continuous.bayesian_update(mu, rho, y, alpha)
  mu_back, rho_back = continuous.inverse_bayesian_update(mu_new, rho_new, y, alpha)
  np.testing.assert_allclose(mu_back, mu, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(rho_back, rho, rtol=1e-5)
  np.testing.assert_allclose(rho_new, rho + alpha, rtol=1e-6)
  mu_fwd, rho_fwd = continuous.bayesian_update(
    *continuous.inverse_bayesian_update(mu_new, rho_new, y, alpha), y, alpha
  )
  np.testing.assert_allclose(mu_fwd, mu_new, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(rho_fwd, rho_new, rtol=1e-6)


@pytest.mark.parametrize("K", [2, 5, 256])
def test_discrete_update_and_inverse_are_inverse(K):
  k1, k2 = _keys(2)
  theta = jax.nn.softmax(jax.random.normal(k1, (3, 4, K)), axis=-1)
  y = 5 * jax.random.normal(k2, (3, 4, K))
  theta_new = discrete.bayesian_update(theta, y)
  np.testing.assert_allclose(theta_new.sum(-1), 1, rtol=1e-5)
  np.testing.assert_allclose(
    discrete.inverse_bayesian_update(theta_new, y), theta, rtol=2e-4, atol=1e-7
  )
  log_new = discrete.update_log_probs(jnp.log(theta), y)
  np.testing.assert_allclose(jnp.exp(log_new), theta_new, rtol=2e-4, atol=1e-7)
  np.testing.assert_allclose(
    discrete.inverse_update_log_probs(log_new, y), jnp.log(theta), rtol=1e-4, atol=1e-4
  )


def test_discrete_updates_are_additive_in_y():
  """Two updates with y1, y2 equal one with y1 + y2 (accuracies add, BFN Sec. 6)."""
  k1, k2 = _keys(2)
  theta = jnp.full((4, 5), 0.2)
  y1, y2 = jax.random.normal(k1, (4, 5)), jax.random.normal(k2, (4, 5))
  np.testing.assert_allclose(
    discrete.bayesian_update(discrete.bayesian_update(theta, y1), y2),
    discrete.bayesian_update(theta, y1 + y2),
    rtol=1e-5,
  )


def test_discrete_update_stays_finite_for_large_y():
  """K = 256 with |y| ~ 500 (where the official theta * exp(y) overflows in float32)."""
  K = 256
  y = discrete.sender_sample(KEY, jnp.array([3, 200]), jnp.float32(2.0), K)
  assert float(jnp.abs(y).max()) > 400
  theta = jnp.full((2, K), 1.0 / K)
  theta_new = discrete.bayesian_update(theta, y)
  assert bool(jnp.all(jnp.isfinite(theta_new)))
  np.testing.assert_allclose(theta_new.sum(-1), 1, rtol=1e-5)
  y64 = np.asarray(y, np.float64)
  expected = np.exp(y64 - y64.max(-1, keepdims=True))
  np.testing.assert_allclose(theta_new, expected / expected.sum(-1, keepdims=True), atol=1e-6)
  flow = flows.DiscreteFlow(BETA1, K)
  log_probs = flow.bayesian_update(flow.prior((2,)), y, 2.0).log_probs
  assert bool(jnp.all(jnp.isfinite(log_probs)))
  np.testing.assert_allclose(jnp.exp(log_probs), theta_new, atol=1e-6)
  back = flow.inverse_bayesian_update(flows.CategoricalTheta(log_probs), y, 2.0).log_probs
  np.testing.assert_allclose(back, -np.log(K), atol=2e-3)


def test_continuous_accuracies_add_up_to_the_flow_precision():
  n = 37
  alphas = continuous.accuracy(jnp.arange(1, n + 1), n, SIGMA1)
  np.testing.assert_allclose(
    1 + jnp.cumsum(alphas), continuous.precision(jnp.arange(1, n + 1) / n, SIGMA1), rtol=1e-5
  )
  np.testing.assert_allclose(continuous.gamma(1.0, SIGMA1), 1 - SIGMA1**2, rtol=1e-6)


def test_discrete_accuracies_add_up_to_beta():
  n = 37
  alphas = discrete.accuracy(jnp.arange(1, n + 1), n, BETA1)
  np.testing.assert_allclose(
    jnp.cumsum(alphas), discrete.beta(jnp.arange(1, n + 1) / n, BETA1), rtol=1e-5
  )


# --- the Bayesian flow distribution at t = 0 and t = 1 -----------------------------------------


def test_continuous_flow_is_the_prior_at_zero_and_the_data_at_one():
  x = jax.random.uniform(KEY, (2000,), minval=-1, maxval=1)
  mu0, rho0 = continuous.sample_flow(KEY, x, jnp.zeros(()), SIGMA1)
  np.testing.assert_array_equal(mu0, 0.0)
  np.testing.assert_array_equal(rho0, 1.0)
  mu1, rho1 = continuous.sample_flow(KEY, x, jnp.ones(()), SIGMA1)
  np.testing.assert_allclose(rho1, SIGMA1**-2, rtol=1e-5)
  assert float(jnp.abs(mu1 - x).max()) < 6 * SIGMA1
  np.testing.assert_allclose(jnp.std(mu1 - (1 - SIGMA1**2) * x), SIGMA1, rtol=0.1)


def test_discrete_flow_is_uniform_at_zero_and_concentrates_at_one():
  K = 5
  x = jax.random.randint(KEY, (4000,), 0, K)
  eps = jax.random.normal(KEY, (4000, K))
  np.testing.assert_array_equal(
    discrete.flow_probs(x, jnp.zeros(()), BETA1, K, eps), np.float32(1 / K)
  )
  np.testing.assert_allclose(
    discrete.flow_log_probs(x, jnp.zeros(()), BETA1, K, eps), -np.log(K), rtol=1e-6
  )
  p_true = {}
  for beta1, t in ((BETA1, 0.5), (BETA1, 1.0), (20.0, 1.0)):
    probs = discrete.flow_probs(x, jnp.full((), t), beta1, K, eps)
    p_true[beta1, t] = float(jnp.mean(jnp.take_along_axis(probs, x[:, None], -1)))
  assert 1 / K < p_true[BETA1, 0.5] < p_true[BETA1, 1.0]
  assert p_true[20.0, 1.0] > 0.99


# --- losses ------------------------------------------------------------------------------------


def _images(key, shape=(3, 4, 4, 2), K=16):
  return discretised.quantize(jax.random.uniform(key, shape, minval=-1, maxval=1), K)


@jax.jit
def _losses(key):
  """Losses of random and of perfect predictions for the three data types."""
  k1, k2, k3, k4 = jax.random.split(key, 4)
  x = _images(k1)
  t = jax.random.uniform(k2, (3, 1, 1, 1))
  i = jnp.array([1, 5, 10]).reshape(3, 1, 1, 1)
  x_hat = jnp.clip(x + 0.3 * jax.random.normal(k3, x.shape), -1, 1)
  K = 16
  probs = jax.nn.softmax(jax.random.normal(k4, x.shape + (K,)), axis=-1)
  perfect = jax.nn.one_hot(discretised.bin_index(x, K), K)
  Kc = 5
  xc = jax.random.randint(k1, (3, 4, 4, 2), 0, Kc)
  log_probs = jax.nn.log_softmax(jax.random.normal(k4, xc.shape + (Kc,)), axis=-1)
  one_hot = jax.nn.one_hot(xc, Kc)
  random = {
    # Monte-Carlo estimates of KLs: positive in expectation, so with many samples
    "discretised dtime": discretised.dtime_loss(
      key, x[:, :1, :1], probs[:, :1, :1], i, 10, SIGMA1, K, 20000
    ),
    "discrete dtime": discrete.dtime_loss(
      key, xc[:, :1, :1], log_probs[:, :1, :1], i, 10, BETA1, Kc, 20000
    ),
    "continuous ctime": continuous.ctime_loss(x, x_hat, t, SIGMA1),
    "continuous dtime": continuous.dtime_loss(x, x_hat, i, 10, SIGMA1),
    "discretised ctime": discretised.ctime_loss(x, probs, t, SIGMA1),
    "discretised recon": discretised.reconstruction_loss(x, x_hat, 0.2, K),
    "discrete ctime": discrete.ctime_loss(xc, jnp.exp(log_probs), t, BETA1, Kc),
    "discrete recon": discrete.reconstruction_loss(xc, log_probs),
  }
  perfect = {
    "continuous ctime": continuous.ctime_loss(x, x, t, SIGMA1),
    "continuous dtime": continuous.dtime_loss(x, x, i, 10, SIGMA1),
    "discretised ctime": discretised.ctime_loss(x, perfect, t, SIGMA1),
    "discretised dtime": discretised.dtime_loss(key, x, perfect, i, 10, SIGMA1, K, 4),
    "discretised recon": discretised.reconstruction_loss(x, x, 1e-3, K),
    "discrete ctime": discrete.ctime_loss(xc, one_hot, t, BETA1, Kc),
    "discrete dtime": discrete.dtime_loss(key, xc, jnp.log(one_hot), i, 10, BETA1, Kc, 4),
    "discrete recon": discrete.reconstruction_loss(xc, jnp.log(one_hot)),
  }
  return random, perfect


def test_losses_are_nonnegative_and_zero_for_a_perfect_prediction():
  random, perfect = _losses(KEY)
  for name, loss in random.items():
    assert bool(jnp.all(loss >= 0)), name
    assert float(loss.max()) > 0, name
  # The sampled losses are means of differences of log-densities of order 1 to 10: float32 rounding
  # leaves about 10 eps = 1.2e-6 (seen at XLA's optimisation level 0); the discretised one sums
  # K bins of them.
  atol = {"discretised dtime": 1e-3, "discrete dtime": 1e-5}
  for name, loss in perfect.items():
    np.testing.assert_allclose(loss, 0, atol=atol.get(name, 1e-6), err_msg=name)


def test_continuous_n_step_loss_tends_to_the_continuous_time_loss():
  """n alpha_i / 2 -> -ln(sigma1) sigma1^(-2t) for i = t n + 1 as n grows (BFN Sec. 4)."""
  x, x_hat = jnp.array([0.3, -0.7]), jnp.array([0.1, 0.2])
  t = 0.4
  target = continuous.ctime_loss(x, x_hat, t, SIGMA1)
  errors = []
  for n in (10, 100, 1000, 10000):
    loss = continuous.dtime_loss(x, x_hat, jnp.asarray(t * n + 1), n, SIGMA1)
    errors.append(float(jnp.max(jnp.abs(loss / target - 1))))
  assert errors == sorted(errors, reverse=True)
  assert errors[-1] < 1e-3


def test_discrete_n_step_loss_tends_to_the_continuous_time_loss_in_expectation():
  """n KL(p_S || p_R) -> K beta1 t ||e_x - p||^2 (BFN Eq. 189-190 -> Eq. 205), by Monte Carlo."""
  K, t = 3, 0.5
  x = jnp.array([0, 1, 2])
  probs = jnp.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]])
  target = np.asarray(discrete.ctime_loss(x, probs, t, BETA1, K))
  loss = jax.jit(discrete.dtime_loss, static_argnums=(5, 6, 7))
  errors = {}
  for n in (2, 100):
    estimate = loss(KEY, x, jnp.log(probs), jnp.asarray(t * n + 1), n, BETA1, K, 1_000_000)
    errors[n] = np.abs(np.asarray(estimate) / target - 1)
  assert np.all(errors[100] < errors[2])
  assert np.all(errors[100] < 0.05), errors


# --- discretised output distribution -----------------------------------------------------------


@pytest.mark.parametrize("K", [16, 256])
def test_bin_probs_sum_to_one_and_match_log_prob(K):
  k1, k2 = _keys(2)
  mean = 1.5 * jax.random.normal(k1, (50,))
  std = jnp.exp(jax.random.uniform(k2, (50,), minval=-7, maxval=1))

  @jax.jit
  def probs_and_log_prob(mean, std):
    probs = discretised.bin_probs(mean, std, K)
    x = discretised.bin_centres(K)[jnp.argmax(probs, axis=-1)]
    return probs, discretised.log_prob(x, mean, std, K)

  probs, log_prob = probs_and_log_prob(mean, std)
  assert probs.shape == (50, K)
  assert bool(jnp.all(probs >= 0))
  np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)
  np.testing.assert_allclose(log_prob, jnp.log(jnp.max(probs, axis=-1)), atol=1e-4)


def test_discretised_receiver_density_integrates_to_one():
  K = 16
  probs = discretised.bin_probs(jnp.array([0.3, -0.95]), jnp.array([0.4, 0.05]), K)
  y = jnp.linspace(-3.0, 3.0, 60001)
  for alpha in (4.0, 400.0):
    density = jnp.exp(discretised.receiver_log_prob(y[:, None], probs, alpha, K))
    np.testing.assert_allclose(jnp.trapezoid(density, y, axis=0), 1, atol=1e-4)


def test_predict_mean_std_follows_the_official_mapping():
  mu, eps, log_std = (
    jnp.array([0.2, -0.4, 0.1]),
    jnp.array([0.5, -1.0, 0.3]),
    jnp.array([0.0, -30.0, 30.0]),
  )
  t = jnp.array([0.5, 0.9, 0.0])
  mean, std = discretised.predict_mean_std(mu, eps, log_std, t, SIGMA1)
  s = SIGMA1 ** (2 * np.array([0.5, 0.9]))
  g = 1 - s
  b = np.sqrt(s / g)
  np.testing.assert_allclose(mean[:2], mu[:2] / g - b * eps[:2], rtol=1e-5)
  np.testing.assert_allclose(std[:2], np.clip(b * np.exp([0.0, -10.0]), 1e-3, 10), rtol=1e-5)
  assert float(mean[2]) == 0.0 and float(std[2]) == 1.0  # t < t_min: the standard Normal


# --- gradients, dtypes, transformations ---------------------------------------------------------

FLOWS = [
  flows.ContinuousFlow(SIGMA1, 16),
  flows.DiscretisedFlow(SIGMA1, 16, predict_std=True),
  flows.DiscreteFlow(BETA1, 2),
  flows.DiscreteFlow(BETA1, 5),
]


def _data(flow, shape=(2, 3, 3, 1)):
  if flow.data_type == "discrete":
    return jax.random.randint(KEY, shape, 0, flow.num_classes)
  return _images(KEY, shape)


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f"{f.data_type}-{f.params_per_dim}")
def test_loss_gradients_are_finite_at_t_zero_and_one(flow):
  x = _data(flow)
  t = jnp.array([0.0, 1.0])
  i = jnp.array([1, 10])
  net_out = jax.random.normal(KEY, x.shape[:-1] + (flow.params_per_dim,))

  def loss(net_out, x_in):
    theta = flow.sample_flow(KEY, x_in, t)
    out = flow.output_dist(net_out, theta, t)
    return jnp.sum(
      flow.ctime_loss(x, out, t)
      + flow.dtime_loss(KEY, x, out, i, 10, 2)
      + flow.reconstruction_loss(x, out)
    )

  if flow.data_type == "discrete":
    grads = (jax.jit(jax.grad(loss))(net_out, x),)
  else:
    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(net_out, x)
  for grad in grads:
    assert bool(jnp.all(jnp.isfinite(grad)))
  assert float(jnp.abs(grads[0]).max()) > 0


def test_api_gradients_are_finite_at_t_zero_and_one():
  t = jnp.array([0.0, 1e-7, 0.5, 1.0])
  mu, eps = jnp.array([0.0, 0.1, -0.2, 0.9]), jnp.array([0.3, -0.2, 0.1, 0.0])

  def total(mu, eps, mean, std, logits):
    x_hat = continuous.predict_x(mu, eps, t, SIGMA1)
    m, s = discretised.predict_mean_std(mu, eps, eps, t, SIGMA1)
    probs = discretised.bin_probs(mean, std, 16)
    p = jax.nn.softmax(logits)
    return (
      jnp.sum(x_hat + m + s)
      + jnp.sum(discretised.log_prob(jnp.array(0.0625), mean, std, 16))
      + jnp.sum(discretised.receiver_log_prob(jnp.array(0.2), probs, 30.0, 16))
      + jnp.sum(discrete.ctime_loss(jnp.array([0, 1, 2, 1]), p, t, BETA1, 3))
      + jnp.sum(discrete.receiver_log_prob(jnp.ones(3), p, 0.5, 3))
    )

  args = (
    mu,
    eps,
    jnp.array([-2.0, 0.0, 0.3, 3.0]),
    jnp.array([1e-3, 1e-3, 0.5, 10.0]),
    jnp.zeros((4, 3)),
  )
  grads = jax.jit(jax.grad(total, argnums=(0, 1, 2, 3, 4)))(*args)
  for g in grads:
    assert bool(jnp.all(jnp.isfinite(g)))


def _deterministic_losses(dtype):
  """Flow losses at fixed noise (random draws depend on the dtype, so none are taken here)."""
  shape = (2, 3, 3, 1)
  rng = np.random.default_rng(0)
  noise = [jnp.asarray(rng.normal(size=shape), dtype) for _ in range(3)]
  x = discretised.quantize(jnp.asarray(rng.uniform(-1, 1, size=shape), dtype), 16)
  t = jnp.array([0.3, 0.8], dtype)
  t_b = t.reshape(2, 1, 1, 1)
  i = jnp.array([4, 9])
  results = []
  for flow in (flows.ContinuousFlow(SIGMA1, 16), flows.DiscretisedFlow(SIGMA1, 16, True)):
    theta = flows.GaussianTheta(
      continuous.flow_mean(x, t_b, SIGMA1, noise[0]), continuous.precision(t_b, SIGMA1)
    )
    out = flow.output_dist(jnp.concatenate(noise[1 : 1 + flow.params_per_dim], -1), theta, t)
    results += [flow.ctime_loss(x, out, t), flow.reconstruction_loss(x, out)]
    if flow.data_type == "continuous":
      results.append(flow.dtime_loss(KEY, x, out, i, 10))
    else:
      probs = flow.bin_probs(out)
      results.append(discretised.receiver_log_prob(x + noise[0] / 10, probs, 100.0, 16))
  flow = flows.DiscreteFlow(BETA1, 3)
  xc = jnp.abs(x * 8).astype(jnp.int32) % 3
  eps = jnp.stack(noise, -1)
  theta = flows.CategoricalTheta(discrete.flow_log_probs(xc, t_b, BETA1, 3, eps))
  out = flow.output_dist(eps.reshape(shape[:-1] + (3,)), theta, t)
  y = discrete.bayesian_update(out.probs, eps)
  results += [
    flow.ctime_loss(xc, out, t),
    flow.reconstruction_loss(xc, out),
    discrete.receiver_log_prob(eps, out.probs, 0.7, 3),
    discrete.sender_log_prob(eps, xc, 0.7, 3),
    y,
  ]
  return results


def test_float32_and_float64_agree():
  losses32 = jax.jit(_deterministic_losses, static_argnums=0)(jnp.float32)
  with jax.enable_x64(True):
    losses64 = jax.jit(_deterministic_losses, static_argnums=0)(jnp.float64)
  for a32, a64 in zip(losses32, losses64, strict=True):
    assert a32.dtype == jnp.float32 and a64.dtype == jnp.float64
    np.testing.assert_allclose(a32, a64, rtol=1e-4, atol=1e-5)


def test_float64_inputs_stay_float64():
  def outputs(x, t):
    flow = flows.DiscretisedFlow(SIGMA1, 16)
    theta = flow.sample_flow(KEY, x[None], t[:1])
    return (
      continuous.flow_mean(x, t, SIGMA1, x),
      continuous.predict_x(x, x, t, SIGMA1),
      continuous.accuracy(jnp.arange(1, 4), 3, SIGMA1),
      discretised.bin_probs(x, t, 16),
      discretised.log_prob(x, x, t, 16),
      discretised.quantize(x, 16),
      discrete.flow_probs(jnp.arange(6) % 3, t, BETA1, 3, jnp.ones((6, 3), x.dtype)),
      discrete.accuracy(jnp.arange(1, 4), 3, BETA1),
      theta.mu,
      theta.rho,
    )

  with jax.enable_x64(True):
    x = jnp.linspace(-1, 1, 6, dtype=jnp.float64)
    for out in jax.jit(outputs)(x, jnp.full((6,), 0.5, jnp.float64)):
      assert out.dtype == jnp.float64


@pytest.mark.parametrize(
  "dtypes", [("float32", "float32"), ("float64", "float32"), ("float32", "float64")]
)
def test_samplers_draw_in_the_promoted_dtype_of_their_arguments(dtypes):
  """Under x64: float32 with float32 stays float32 (not the default float64); any float64 wins."""
  with jax.enable_x64(True):
    x = jnp.full((4,), 0.25, dtypes[0])
    other = jnp.full((4,), 0.5, dtypes[1])  # t, alpha or std
    expected = jnp.promote_types(*dtypes)
    draws = {
      "continuous.sample_flow": continuous.sample_flow(KEY, x, other, SIGMA1)[0],  # mu; rho: t's
      "continuous.sender_sample": continuous.sender_sample(KEY, x, other),
      "discretised.sample": discretised.sample(KEY, x, other, 16),
      "discretised.receiver_sample": discretised.receiver_sample(KEY, x, other, other, 16),
    }
    for name, draw in draws.items():
      assert draw.dtype == expected, (name, draw.dtype)


def test_the_continuous_sender_adds_noise_of_variance_one_over_alpha():
  """y ~ N(x, 1/alpha) (BFN Eq. 86), checked by its sample mean and variance."""
  x = jnp.full((20_000,), 0.3)
  for alpha in (0.25, 4.0):
    y = np.asarray(continuous.sender_sample(KEY, x, alpha), np.float64)
    assert abs(y.mean() - 0.3) < 5 / np.sqrt(alpha * 20_000)
    assert y.var() == pytest.approx(1 / alpha, rel=0.05)


def test_predict_x_clips_to_the_data_range_by_default():
  """x_hat = mu / gamma - sqrt((1 - gamma) / gamma) eps_hat, clipped to [-1, 1] by default."""
  mu = jnp.array([-3.0, -0.2, 0.2, 3.0])
  t = jnp.full((4,), 0.9)
  gamma = continuous.gamma(t, SIGMA1)
  raw = mu / gamma  # eps_hat = 0
  np.testing.assert_allclose(
    continuous.predict_x(mu, 0 * mu, t, SIGMA1, clip=False), raw, rtol=1e-6
  )
  np.testing.assert_allclose(
    continuous.predict_x(mu, 0 * mu, t, SIGMA1), [-1.0, raw[1], raw[2], 1.0], rtol=1e-6
  )


def test_predict_x_is_zero_only_strictly_before_t_min():
  """t < t_min gives the prior mean 0; at t = t_min itself the formula applies."""
  mu, eps = jnp.array([0.3, 0.3]), jnp.array([0.5, 0.5])
  t = jnp.array([0.4999, 0.5])
  gamma = 1 - SIGMA1 ** (2 * 0.5)
  expected = 0.3 / gamma - np.sqrt((1 - gamma) / gamma) * 0.5
  x_hat = continuous.predict_x(mu, eps, t, SIGMA1, t_min=0.5, clip=False)
  np.testing.assert_allclose(x_hat, [0.0, expected], rtol=1e-5)


def _integer_calls() -> dict:
  """Calls of the bfn functions whose array arguments are all int32 (indices, integral values)."""
  i, x, a, rho = (jnp.array(v, jnp.int32) for v in ([1, 2], [-1, 1], [2, 3], [6, 9]))
  c = jnp.array([0, 2], jnp.int32)  # classes (K = 3)
  w, z = jnp.array([[1, 1, 1], [1, 2, 1]], jnp.int32), jnp.zeros((2, 3), jnp.int32)
  return {
    "continuous.accuracy": lambda: continuous.accuracy(i, 2, SIGMA1),
    "continuous.dtime_loss": lambda: continuous.dtime_loss(x, 0 * x, i, 2, SIGMA1),
    "continuous.bayesian_update": lambda: continuous.bayesian_update(x, a, x, a),
    "continuous.inverse_bayesian_update": lambda: continuous.inverse_bayesian_update(x, rho, x, a),
    "continuous.sender_log_prob": lambda: continuous.sender_log_prob(x, x, a),
    "continuous.sender_sample": lambda: continuous.sender_sample(KEY, x, a),
    "discretised.quantize": lambda: discretised.quantize(x, 3),
    "discretised.bin_probs": lambda: discretised.bin_probs(x, a, 3),
    "discretised.log_prob": lambda: discretised.log_prob(x, x, a, 3),
    "discretised.predict_mean_std": lambda: discretised.predict_mean_std(x, x, x, a, SIGMA1),
    "discretised.receiver_log_prob": lambda: discretised.receiver_log_prob(x, w, a, 3),
    "discretised.dtime_loss": lambda: discretised.dtime_loss(KEY, x, w, i, 2, SIGMA1, 3),
    "discrete.accuracy": lambda: discrete.accuracy(i, 2, BETA1),
    "discrete.flow_probs": lambda: discrete.flow_probs(c, i, BETA1, 3, z),
    "discrete.sender_log_prob": lambda: discrete.sender_log_prob(w, c, a, 3),
    "discrete.sender_sample": lambda: discrete.sender_sample(KEY, c, a, 3),
    "discrete.receiver_sample": lambda: discrete.receiver_sample(KEY, z, a, 3),
    "discrete.bayesian_update": lambda: discrete.bayesian_update(w, w),
    "discrete.inverse_bayesian_update": lambda: discrete.inverse_bayesian_update(w, w),
    "discrete.update_log_probs": lambda: discrete.update_log_probs(z, w),
    "discrete.network_input": lambda: discrete.network_input(z),
    "discrete.data_network_input": lambda: discrete.data_network_input(c, 3),
    "discrete.output_log_probs": lambda: discrete.output_log_probs(z, 3),
    "discrete.ctime_loss": lambda: discrete.ctime_loss(c, w, i, BETA1, 3),
    "discrete.reconstruction_loss": lambda: discrete.reconstruction_loss(c, z),
  }


@pytest.mark.parametrize("name", sorted(_integer_calls()))
def test_integer_inputs_give_the_default_float_dtype(name):
  """Integer arguments alone give the default float dtype: float64 under x64, else float32."""
  for x64, default in ((False, jnp.float32), (True, jnp.float64)):
    with jax.enable_x64(x64):
      for leaf in jax.tree.leaves(_integer_calls()[name]()):
        assert leaf.dtype == default, (x64, leaf.dtype)


CALLS = {
  "gamma": (lambda t: continuous.gamma(t, SIGMA1), 1),
  "flow_mean": (lambda x, t, e: continuous.flow_mean(x, t, SIGMA1, e), 3),
  "predict_x": (lambda m, e, t: continuous.predict_x(m, e, t, SIGMA1, clip=False), 3),
  "bayesian_update": (continuous.bayesian_update, 4),
  "bin_probs": (lambda m, s: discretised.bin_probs(m, jnp.abs(s) + 0.1, 16), 2),
  "quantize": (lambda x: discretised.quantize(x, 16), 1),
  "flow_probs": (
    lambda t, e: discrete.flow_probs(jnp.array(1), t, BETA1, 4, jnp.stack([e, -e, e, 2 * e], -1)),
    2,
  ),
  "disc_update": (
    lambda th, y: discrete.bayesian_update(
      jnp.abs(th)[..., None] + jnp.ones(3), jnp.stack([y, -y, 2 * y], -1)
    ),
    2,
  ),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_jit_and_vmap_match_eager(name):
  fn, num_args = CALLS[name]
  args = [jax.random.uniform(k, (4, 3), minval=-1, maxval=1) for k in _keys(num_args)]
  eager = fn(*args)
  jitted = jax.jit(fn)(*args)
  mapped = jax.vmap(fn)(*args)
  for a, b, c in zip(
    jax.tree.leaves(eager), jax.tree.leaves(jitted), jax.tree.leaves(mapped), strict=True
  ):
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c, a, rtol=1e-6, atol=1e-6)


# --- bad inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
  "call, match",
  [
    (lambda: continuous.gamma(0.5, 0.0), "sigma1"),
    (lambda: continuous.gamma(0.5, 1.0), "sigma1"),
    (lambda: continuous.accuracy(1, 0, SIGMA1), "n"),
    (lambda: continuous.flow_mean(jnp.ones((2, 3)), jnp.ones((4,)), SIGMA1, jnp.ones((2, 3))), "t"),
    (lambda: continuous.bayesian_update(jnp.ones(3), 1.0, jnp.ones(4), 1.0), "y"),
    (lambda: discretised.bin_centres(1), "K"),
    (lambda: discretised.quantize(0.5, 2.0), "K"),
    (lambda: discretised.receiver_log_prob(0.0, jnp.ones((3, 8)), 1.0, 16), "probs"),
    (
      lambda: discretised.dtime_loss(KEY, 0.0, jnp.ones(16) / 16, 1, 10, SIGMA1, 16, 0),
      "num_samples",
    ),
    (lambda: discrete.beta(0.5, -1.0), "beta1"),
    (lambda: discrete.accuracy(1, 0, BETA1), "n"),
    (lambda: discrete.flow_probs(jnp.zeros(3, jnp.int32), 0.5, BETA1, 4, jnp.ones((3, 5))), "eps"),
    (lambda: discrete.sender_log_prob(jnp.ones((3, 4)), jnp.zeros(3, jnp.int32), 1.0, 1), "K"),
    (lambda: discrete.receiver_log_prob(jnp.ones((3, 4)), jnp.ones((3, 5)), 1.0, 4), "probs"),
    (lambda: discrete.bayesian_update(jnp.ones((3, 4)), jnp.ones((2, 4))), "theta"),
    (lambda: discrete.output_log_probs(jnp.ones((3, 4)), 5), "logits"),
  ],
)
def test_bad_arguments_raise_value_error_naming_them(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_static_checks_do_not_break_tracing():
  """sigma1 / beta1 / n traced under jit skip the value checks but compute the same values."""
  fn = jax.jit(lambda s, n: continuous.accuracy(jnp.arange(1, 4), n, s))
  np.testing.assert_allclose(
    fn(SIGMA1, 3), continuous.accuracy(jnp.arange(1, 4), 3, SIGMA1), rtol=1e-6
  )
  fn = jax.jit(functools.partial(discrete.accuracy, jnp.arange(1, 4)))
  np.testing.assert_allclose(fn(3, BETA1), discrete.accuracy(jnp.arange(1, 4), 3, BETA1), rtol=1e-6)
