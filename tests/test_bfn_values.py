"""Values of the discrete and discretised flow functions against independent float64 computations.

Each function is compared under x64 with a direct numpy / scipy evaluation of its formula in the
BFN paper (a softmax, a Gaussian mixture summed term by term, a normal cdf per bin), with one
argument at a time in float32 among float64 ones, or in float64 among float32 ones: the result
must be computed in the promoted float64 (rtol 1e-12), whichever argument brings it. Samplers
are checked by the statistics of their draws. Mutation testing (tests/mutation/) found the gaps
these tests close.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from paramrel_jax.bfn import continuous, discrete, discretised

KEY = jax.random.key(0, impl="rbg")
BETA1 = 3.0
RTOL = 1e-12
RNG = np.random.default_rng(0)
X = np.array([[0, 3, 1], [2, 2, 0]])  # (2, 3) classes of K = 4
Y = RNG.normal(size=(2, 3, 4))  # (2, 3, K) sender samples
PROBS = special.softmax(RNG.normal(size=(2, 3, 4)), axis=-1)  # (2, 3, K)
ALPHA = np.array([[0.7], [1.3]])  # (2, 1): broadcast against (2, 3)


def _one_float32(*arrays):
  """Every way to give one array in a precision of its own (under x64): float32 among float64
  ones, and float64 among float32 ones; so no argument's dtype can be left out unseen."""
  for k in range(len(arrays)):
    for odd, rest in ((jnp.float32, jnp.float64), (jnp.float64, jnp.float32)):
      yield k, [jnp.asarray(a, odd if j == k else rest) for j, a in enumerate(arrays)]


def _as_given(value) -> np.ndarray:
  """The float64 value of an argument as the function received it."""
  return np.asarray(value, np.float64)


def _assert_float64_close(got, want):
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(got), want, rtol=RTOL, atol=1e-300)


# --- discrete (Sec. 6) ----------------------------------------------------------------------------


def _numpy_flow_logits(x, t, beta1, K, eps):
  beta = beta1 * np.minimum(t, 1 - discrete.T_MAX_GAP) ** 2
  return beta[..., None] * (K * np.eye(K)[x] - 1) + np.sqrt(beta * K)[..., None] * eps


def test_discrete_flow_is_a_softmax_of_the_noisy_logits():
  """theta = softmax(beta (K e_x - 1) + sqrt(beta K) eps) over the last axis of (2, 3, K)."""
  t = np.array([[0.3], [0.9]])
  eps = RNG.normal(size=(2, 3, 4))
  with jax.enable_x64(True):
    for _, (tt, ee) in _one_float32(t, eps):
      logits = _numpy_flow_logits(X, _as_given(tt), BETA1, 4, _as_given(ee))
      _assert_float64_close(discrete.flow_probs(X, tt, BETA1, 4, ee), special.softmax(logits, -1))
      _assert_float64_close(
        discrete.flow_log_probs(X, tt, BETA1, 4, ee), special.log_softmax(logits, -1)
      )


def test_discrete_flow_is_uniform_only_strictly_below_the_official_sqrt_beta_floor():
  """sqrt(beta) < 1e-10 gives exactly 1/K; at 1e-10 itself the softmax of the logits applies."""
  eps = np.array([[1.0, -1.0, 0.5], [1.0, -1.0, 0.5]])
  with jax.enable_x64(True):
    t = jnp.array([0.5e-10, 1e-10])  # sqrt(beta) = t for beta1 = 1
    probs = np.asarray(discrete.flow_probs(jnp.array([0, 0]), t, 1.0, 3, eps))
  assert np.all(probs[0] == 1 / 3)
  assert np.all(probs[1] != 1 / 3)
  np.testing.assert_allclose(
    probs[1], special.softmax(_numpy_flow_logits(np.array(0), 1e-10, 1.0, 3, eps[1]))
  )


def test_discrete_flow_draws_are_independent_across_broadcast_axes():
  """x of shape (5,) against t of shape (4, 1): 20 elements with their own noise, none shared."""
  x, t = np.zeros(5, np.int32), np.full((4, 1), 0.5, np.float32)
  draws = np.asarray(discrete.sample_flow(KEY, x, t, BETA1, 3)).reshape(20, 3)
  assert len(np.unique(draws.round(6), axis=0)) == 20


def test_discrete_samplers_draw_in_their_float_arguments_dtype():
  """Under x64, float32 times or accuracies give float32 draws, float64 ones float64."""
  x = jnp.array([0, 2, 1])
  with jax.enable_x64(True):
    for dtype in (jnp.float32, jnp.float64):
      half = jnp.full((3,), 0.5, dtype)
      assert discrete.sample_flow(KEY, x, half, BETA1, 3).dtype == dtype
      assert discrete.sender_sample(KEY, x, half, 3).dtype == dtype
      log_probs = jnp.log(jnp.full((3, 3), 1 / 3, dtype))
      assert discrete.receiver_sample(KEY, log_probs, half, 3).dtype == dtype
      assert discrete.dtime_loss(KEY, x, log_probs, 2, 4, BETA1, 3).dtype == dtype


def test_discrete_sender_has_mean_alpha_k_e_x_minus_one_and_variance_alpha_k():
  """y ~ N(alpha (K e_x - 1), alpha K I) (Sec. 6), checked by the moments of 20,000 draws."""
  x, n = np.array([0, 2]), 20_000
  for alpha in (0.5, 3.0):
    y = np.asarray(discrete.sender_sample(KEY, x, alpha, 3, sample_shape=(n,)), np.float64)
    mean = alpha * (3 * np.eye(3)[x] - 1)
    assert np.all(np.abs(y.mean(0) - mean) < 5 * np.sqrt(alpha * 3 / n))
    np.testing.assert_allclose(y.var(0), alpha * 3, rtol=0.05)


def test_discrete_sender_log_prob_is_a_sum_of_normal_log_densities():
  with jax.enable_x64(True):
    for _, (y, alpha) in _one_float32(Y, ALPHA):
      a = _as_given(alpha)[..., None]
      want = stats.norm.logpdf(_as_given(y), a * (4 * np.eye(4)[X] - 1), np.sqrt(a * 4)).sum(-1)
      _assert_float64_close(discrete.sender_log_prob(y, X, alpha, 4), want)


def test_discrete_receiver_log_prob_is_the_mixture_summed_term_by_term():
  """ln sum_j p_j prod_k N(y_k; alpha (K e_j - 1)_k, alpha K), each component evaluated alone."""
  with jax.enable_x64(True):
    for _, (y, probs, alpha) in _one_float32(Y, PROBS, ALPHA):
      y64, p64, a = _as_given(y), _as_given(probs), _as_given(alpha)[..., None]
      components = [
        np.log(p64[..., j])
        + stats.norm.logpdf(y64, a * (4 * np.eye(4)[j] - 1), np.sqrt(a * 4)).sum(-1)
        for j in range(4)
      ]
      want = special.logsumexp(np.stack(components, -1), axis=-1)
      _assert_float64_close(discrete.receiver_log_prob(y, probs, alpha, 4), want)


def test_discrete_ctime_loss_is_k_beta1_t_times_the_squared_error():
  t = np.array([[0.2], [0.8]])
  with jax.enable_x64(True):
    for _, (probs, tt) in _one_float32(PROBS, t):
      err = np.square(np.eye(4)[X] - _as_given(probs)).sum(-1)
      _assert_float64_close(
        discrete.ctime_loss(X, probs, tt, BETA1, 4), 4 * BETA1 * _as_given(tt) * err
      )


def test_discrete_dtime_loss_takes_one_sender_sample_by_default():
  log_probs = np.log(PROBS)
  default = discrete.dtime_loss(KEY, X, log_probs, 3, 10, BETA1, 4)
  np.testing.assert_array_equal(
    default, discrete.dtime_loss(KEY, X, log_probs, 3, 10, BETA1, 4, num_samples=1)
  )
  assert not np.allclose(default, discrete.dtime_loss(KEY, X, log_probs, 3, 10, BETA1, 4, 2))


def test_discrete_reconstruction_loss_picks_the_data_class():
  log_probs = np.log(PROBS[0])  # (3, K), broadcast against x of shape (2, 3)
  want = -np.take_along_axis(np.broadcast_to(log_probs, (2, 3, 4)), X[..., None], -1)[..., 0]
  np.testing.assert_allclose(discrete.reconstruction_loss(X, log_probs), want, rtol=1e-6)


def test_discrete_network_input_is_two_p0_minus_one_for_two_classes_else_p():
  """The official convention: K = 2 feeds 2 p_0 - 1 (1 - 2x on data), K > 2 the probabilities."""
  x2 = np.array([[0, 1, 1], [1, 0, 0]])  # (2, 3): a middle axis of size 3, a leading one of 2
  np.testing.assert_array_equal(discrete.data_network_input(x2, 2), 1 - 2 * x2)
  p = np.array([[0.8, 0.2], [0.1, 0.9], [0.5, 0.5]])
  np.testing.assert_allclose(discrete.network_input(np.log(p)), 2 * p[:, 0] - 1, rtol=1e-6)
  x3 = np.array([0, 2])  # (2,): a leading axis of size 2 with K = 3
  np.testing.assert_array_equal(discrete.data_network_input(x3, 3), np.eye(3)[x3])
  for K in (2, 3):
    assert discrete.data_network_input(x3, K, dtype=jnp.bfloat16).dtype == jnp.bfloat16


def test_discrete_output_log_probs_are_a_bernoulli_for_two_classes_and_a_softmax_else():
  logits = RNG.normal(size=(2, 3)) * 3
  want = np.stack([np.log(special.expit(-logits)), np.log(special.expit(logits))], -1)
  np.testing.assert_allclose(discrete.output_log_probs(logits, 2), want, rtol=1e-5)
  logits4 = RNG.normal(size=(2, 3, 4))
  np.testing.assert_allclose(
    discrete.output_log_probs(logits4, 4), special.log_softmax(logits4, -1), rtol=1e-5
  )


def test_discrete_sample_draws_int32_classes_with_their_probabilities():
  probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
  log_probs = np.log(np.broadcast_to(probs, (5000, 3, 2, 4)))
  with jax.enable_x64(True):
    x = discrete.sample(KEY, jnp.asarray(log_probs))
  assert x.shape == (5000, 3, 2) and x.dtype == jnp.int32
  freq = np.stack([(np.asarray(x) == k).mean((0, 1)) for k in range(4)], -1)
  np.testing.assert_allclose(freq, probs, atol=5 * np.sqrt(0.25 / 15_000))


# --- discretised (Sec. 5) -------------------------------------------------------------------------


def _numpy_bin_masses(mean, std, K):
  """(..., K) masses of Normal(mean, std) on the K bins, tails folded into the edge bins; bins
  above the mean from scipy's survival function, so that tail masses keep their precision."""
  edges = -1 + 2 * np.arange(K + 1) / K
  z = (edges - mean[..., None]) / std[..., None]
  z[..., 0], z[..., -1] = -np.inf, np.inf
  lo, hi = z[..., :-1], z[..., 1:]
  return np.where(
    lo > 0, stats.norm.sf(lo) - stats.norm.sf(hi), stats.norm.cdf(hi) - stats.norm.cdf(lo)
  )


def _centres(K):
  return (2 * np.arange(K) + 1) / K - 1


MEAN = RNG.uniform(-1.2, 1.2, size=(2, 3))
STD = np.array([[0.05], [0.4]])


@pytest.mark.parametrize("K", [2, 5, 16])
def test_normal_bin_mean_is_the_mean_over_the_bin_centres(K):
  with jax.enable_x64(True):
    for _, (mean, std) in _one_float32(MEAN, STD):
      masses = _numpy_bin_masses(_as_given(mean), _as_given(std), K)
      _assert_float64_close(discretised.normal_bin_mean(mean, std, K), masses @ _centres(K))


@pytest.mark.parametrize("K", [2, 5, 16])
def test_bin_probs_are_the_normal_masses_of_the_bins(K):
  with jax.enable_x64(True):
    for _, (mean, std) in _one_float32(MEAN, STD):
      masses = _numpy_bin_masses(_as_given(mean), _as_given(std), K)
      _assert_float64_close(discretised.bin_probs(mean, std, K), masses)


def test_bin_index_is_int32_with_inner_edges_in_the_upper_bin():
  x = np.array([-1.5, -1.0, -0.5, 0.0, 0.49, 0.5, 1.0, 2.0])
  index = discretised.bin_index(x, 4)
  assert index.dtype == jnp.int32
  np.testing.assert_array_equal(index, [0, 0, 1, 2, 2, 3, 3, 3])


def test_distribution_mean_keeps_float32_under_x64():
  with jax.enable_x64(True):
    probs = jnp.asarray(PROBS, jnp.float32)
    mean = discretised.distribution_mean(probs)
  assert mean.dtype == jnp.float32
  np.testing.assert_allclose(mean, PROBS @ _centres(4), rtol=1e-6)


def test_predict_mean_std_clips_the_log_std_and_then_the_std():
  """std = B exp(clip(log_std_eps, -10, 10)), clipped to [min_std, max_std] (default max 10)."""
  t, sigma1 = np.array([0.9, 0.9, 0.01]), 0.02
  gamma = 1 - sigma1 ** (2 * t)
  b = np.sqrt((1 - gamma) / gamma)
  log_std = np.array([-30.0, 30.0, 5.0])
  _, std = discretised.predict_mean_std(
    0 * t, 0 * t, log_std, t, sigma1, min_std=1e-12, max_std=1e6
  )
  np.testing.assert_allclose(std, b * np.exp([-10.0, 10.0, 5.0]), rtol=1e-5)
  _, std = discretised.predict_mean_std(0 * t, 0 * t, log_std, t, sigma1)
  np.testing.assert_allclose(std, np.clip(b * np.exp([-10.0, 10.0, 5.0]), 1e-3, 10.0), rtol=1e-5)
  assert std[2] == 10.0 and b[2] * np.exp(5.0) > 10.0


def test_discretised_sample_draws_the_bins_with_their_masses():
  mean, std, K, n = np.float32(0.1), np.float32(0.3), 8, 40_000
  x = np.asarray(discretised.sample(KEY, jnp.full((n,), mean), std, K))
  freq = np.array([(np.isclose(x, c)).mean() for c in _centres(K)])
  np.testing.assert_allclose(freq.sum(), 1.0)
  masses = _numpy_bin_masses(np.array(0.1), np.array(0.3), K)
  assert np.all(np.abs(freq - masses) < 5 * np.sqrt(masses * (1 - masses) / n) + 1e-4)


def test_discretised_sample_depends_on_the_promoted_dtype_only():
  """One float32 argument among float64 ones draws what the float64 values of both draw."""
  mean = np.linspace(-0.9, 0.9, 64, dtype=np.float32)
  std = np.full(64, 0.3, np.float32)
  with jax.enable_x64(True):
    ref = discretised.sample(KEY, jnp.asarray(mean, jnp.float64), jnp.asarray(std, jnp.float64), 16)
    for k, args in _one_float32(mean, std):
      np.testing.assert_array_equal(discretised.sample(KEY, *args, 16), ref, err_msg=str(k))


def test_discretised_receiver_log_prob_is_the_mixture_summed_term_by_term():
  """ln sum_k p_k N(y; k_c, 1 / alpha) (Sec. 5)."""
  y = RNG.normal(size=(2, 3)) * 0.5
  with jax.enable_x64(True):
    for _, (yy, probs, alpha) in _one_float32(y, PROBS, ALPHA):
      y64, p64, a = _as_given(yy), _as_given(probs), _as_given(alpha)
      components = [
        np.log(p64[..., k]) + stats.norm.logpdf(y64, c, 1 / np.sqrt(a))
        for k, c in enumerate(_centres(4))
      ]
      want = special.logsumexp(np.stack(components, -1), axis=-1)
      _assert_float64_close(discretised.receiver_log_prob(yy, probs, alpha, 4), want)


def test_discretised_receiver_sample_draws_its_data_independently_per_element():
  """With alpha huge, y is the bin centre x' itself: rows broadcast from alpha draw their own x'."""
  mean = np.zeros(50, np.float32)
  y = np.asarray(discretised.receiver_sample(KEY, mean, 1.0, np.full((4, 1), 1e8, np.float32), 16))
  assert y.shape == (4, 50)
  assert len({tuple(row) for row in discretised.quantize(y, 16).tolist()}) == 4


def test_discretised_receiver_sample_is_in_the_output_distributions_dtype():
  with jax.enable_x64(True):
    mean = jnp.zeros(3, jnp.float32)
    assert (
      discretised.receiver_sample(KEY, mean, mean + 1, jnp.float64(2.0), 16).dtype == jnp.float32
    )


def test_discretised_dtime_loss_dtype_sample_count_and_shape():
  x = discretised.quantize(MEAN, 4)
  with jax.enable_x64(True):
    for k, (xx, probs) in _one_float32(x, PROBS):
      assert discretised.dtime_loss(KEY, xx, probs, 3, 10, 0.02, 4).dtype == jnp.float64, k
    x32, p32 = jnp.asarray(x, jnp.float32), jnp.asarray(PROBS, jnp.float32)
    assert discretised.dtime_loss(KEY, x32, p32, 3, 10, 0.02, 4).dtype == jnp.float32
  default = discretised.dtime_loss(KEY, x, PROBS, 3, 10, 0.02, 4)
  assert default.shape == (2, 3)
  np.testing.assert_array_equal(
    default, discretised.dtime_loss(KEY, x, PROBS, 3, 10, 0.02, 4, num_samples=1)
  )
  assert not np.allclose(default, discretised.dtime_loss(KEY, x, PROBS, 3, 10, 0.02, 4, 2))


@pytest.mark.parametrize("K", [4, 16])
def test_discretised_log_prob_is_the_log_mass_of_the_bin(K):
  """ln of the bin's mass under Normal(mean, std), tails folded into the edge bins (Eq. 108)."""
  x = _centres(K)[np.array([[0, 1, K // 2], [K - 1, K // 2, 2]])]
  std = np.array([[0.6], [0.9]])
  with jax.enable_x64(True):
    for _, (xx, mean, s) in _one_float32(x, MEAN, std):
      masses = _numpy_bin_masses(_as_given(mean), _as_given(s), K)
      index = np.rint((_as_given(xx) + 1) * K / 2 - 0.5).astype(int)
      want = np.log(np.take_along_axis(masses, index[..., None], -1)[..., 0])
      assert np.all(np.exp(want) > discretised.MIN_PROB)  # the mass branch throughout
      got = discretised.log_prob(xx, mean, s, K)
      assert got.dtype == jnp.float64
      np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10)


def test_discretised_log_prob_takes_the_density_below_the_official_mass_floor():
  """A mass below 1e-5 gives ln N(centre; mean, std) + ln(2 / K) (the official density branch)."""
  x, mean, std = np.array([-0.9375, 0.9375]), np.array([0.9, -0.8]), np.array([0.1, 0.2])
  with jax.enable_x64(True):
    for _, (xx, m, s) in _one_float32(x, mean, std):
      want = stats.norm.logpdf(_as_given(xx), _as_given(m), _as_given(s)) + np.log(2 / 16)
      assert np.all(np.exp(want) < discretised.MIN_PROB)
      _assert_float64_close(discretised.log_prob(xx, m, s, 16), want)


def test_discretised_dtime_loss_draws_independently_and_by_the_promoted_dtype():
  """Rows broadcast from probs get their own sender noise; a float32 x among float64 probs draws
  what the float64 values draw."""
  x = discretised.quantize(np.array([-0.5, 0.1, 0.7]), 4)
  probs = np.broadcast_to(PROBS[0, :1], (2, 1, 4))  # two identical rows
  loss = np.asarray(discretised.dtime_loss(KEY, x, probs, 3, 10, 0.02, 4))
  assert loss.shape == (2, 3) and not np.allclose(loss[0], loss[1])
  with jax.enable_x64(True):
    p64 = jnp.asarray(PROBS, jnp.float64)
    x32 = jnp.asarray(discretised.quantize(MEAN, 4), jnp.float32)
    want = discretised.dtime_loss(KEY, x32.astype(jnp.float64), p64, 3, 10, 0.02, 4)
    np.testing.assert_array_equal(discretised.dtime_loss(KEY, x32, p64, 3, 10, 0.02, 4), want)


@pytest.mark.parametrize("K, scale", [(16, 0.7), (8, 1.0), (17, 1.0)])
def test_delta_reconstruction_loss_scores_x_under_the_official_normal(K, scale):
  """Normal(x_hat, 0.7 sigma1) for 16 bins, Normal(x_hat, sigma1) otherwise, on x's bin."""
  sigma1, c = 0.05, _centres(K)[K // 2]
  x_hat = np.array([c - 0.02, c, c + 0.03])
  s = scale * sigma1
  mass = stats.norm.cdf((c + 1 / K - x_hat) / s) - stats.norm.cdf((c - 1 / K - x_hat) / s)
  got = discretised.delta_reconstruction_loss(np.full(3, c), x_hat, sigma1, K)
  np.testing.assert_allclose(got, -np.log(mass), rtol=1e-4)


def test_the_unquantised_reconstruction_loss_is_the_normal_density():
  """-ln N(x; x_hat, sigma1^2), and the limit of the discretised loss as the bins narrow:
  P(bin of width 2 / K) = density x 2 / K, so the two differ by ln(K / 2)."""
  sigma1, K = 0.05, 4096
  x = np.full(3, _centres(K)[K // 3])
  x_hat = x + np.array([-0.02, 0.0, 0.07])
  got = continuous.reconstruction_loss(x, x_hat, sigma1)
  np.testing.assert_allclose(got, -stats.norm.logpdf(x, x_hat, sigma1), rtol=1e-5)
  assert got[1] < 0  # a density above 1 where x_hat hits x
  binned = discretised.delta_reconstruction_loss(x, x_hat, sigma1, K)
  np.testing.assert_allclose(binned - got, np.log(K / 2), rtol=1e-4)


# --- low-precision arguments ----------------------------------------------------------------------

LOW_PRECISION_CALLS = {
  "discrete.sender_sample": (lambda a: discrete.sender_sample(KEY, X, a, 4), ALPHA),
  "discrete.sender_log_prob": (lambda a: discrete.sender_log_prob(Y, X, a, 4), ALPHA),
  "discrete.receiver_log_prob alpha": (lambda a: discrete.receiver_log_prob(Y, PROBS, a, 4), ALPHA),
  "discrete.receiver_log_prob y": (lambda y: discrete.receiver_log_prob(y, PROBS, ALPHA, 4), Y),
  "discrete.ctime_loss": (lambda t: discrete.ctime_loss(X, PROBS, t, BETA1, 4), ALPHA / 2),
  "discrete.flow_probs": (lambda t: discrete.flow_probs(X, t, BETA1, 4, Y), ALPHA / 2),
  "discretised.normal_bin_mean mean": (lambda m: discretised.normal_bin_mean(m, STD, 16), MEAN),
  "discretised.normal_bin_mean std": (lambda s: discretised.normal_bin_mean(MEAN, s, 16), STD),
  "discretised.receiver_log_prob alpha": (
    lambda a: discretised.receiver_log_prob(MEAN, PROBS, a, 4),
    ALPHA,
  ),
  "discretised.receiver_log_prob y": (
    lambda y: discretised.receiver_log_prob(y, PROBS, ALPHA, 4),
    MEAN,
  ),
}


@pytest.mark.parametrize("name", sorted(LOW_PRECISION_CALLS))
def test_bfloat16_arguments_compute_in_float32(name):
  """The dtype contract: floats are promoted to at least float32 before any arithmetic, so a
  bfloat16 argument gives what its (exact) float32 value gives."""
  call, value = LOW_PRECISION_CALLS[name]
  low = jnp.asarray(value, jnp.bfloat16)
  want = call(low.astype(jnp.float32))
  got = call(low)
  assert got.dtype == want.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


FLOAT32_CALLS = {
  "discrete.flow_probs": lambda f: discrete.flow_probs(X, f(ALPHA / 2), BETA1, 4, f(Y)),
  "discrete.sender_log_prob": lambda f: discrete.sender_log_prob(f(Y), X, f(ALPHA), 4),
  "discrete.receiver_log_prob": lambda f: discrete.receiver_log_prob(f(Y), f(PROBS), f(ALPHA), 4),
  "discrete.ctime_loss": lambda f: discrete.ctime_loss(X, f(PROBS), f(ALPHA / 2), BETA1, 4),
  "discretised.normal_bin_mean": lambda f: discretised.normal_bin_mean(f(MEAN), f(STD), 16),
  "discretised.bin_probs": lambda f: discretised.bin_probs(f(MEAN), f(STD), 16),
  "discretised.log_prob": lambda f: discretised.log_prob(f(MEAN), f(MEAN), f(STD), 16),
  "discretised.receiver_log_prob": lambda f: discretised.receiver_log_prob(
    f(MEAN), f(PROBS), f(ALPHA), 4
  ),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CALLS))
def test_float32_arguments_stay_float32_under_x64(name):
  """Not the default float64: the arguments' own float dtype decides."""
  with jax.enable_x64(True):
    got = FLOAT32_CALLS[name](lambda a: jnp.asarray(a, jnp.float32))
  assert got.dtype == jnp.float32
