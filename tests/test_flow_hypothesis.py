"""Property-based tests (hypothesis) of the flow math against brute-force references.

Each property is drawn over shapes, K, sigma1, beta(1), t and both float dtypes, and compared with
an independent computation: the conjugate Gaussian posterior written out, numerical integration of
the Normal density, a direct double loop for MMD. Shapes come from a small set so that JAX compiles
each function a few times only. The example count is bounded and the draws are derandomised, so
every machine runs the same examples (tests/conftest.py; HYPOTHESIS_PROFILE=explore searches
further, with fresh random draws).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

from paramrel_jax.bfn import continuous, discrete, discretised
from paramrel_jax.methods.paramrel import objective

DTYPES = st.sampled_from([np.float32, np.float64])
SHAPES = st.sampled_from([(1,), (3,), (2, 2)])
SIGMA1 = st.floats(1e-3, 0.5)
BETA1 = st.floats(0.1, 10.0)
TOLERANCE = {np.float32: dict(rtol=2e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-12)}


def _normal(seed: int, shape, dtype, scale: float = 1.0) -> np.ndarray:
  return (scale * np.random.default_rng(seed).normal(size=shape)).astype(dtype)


@given(dtype=DTYPES, shape=SHAPES, n=st.integers(1, 6), seed=st.integers(0, 2**16), sigma1=SIGMA1)
def test_sequential_gaussian_updates_equal_the_conjugate_posterior(dtype, shape, n, seed, sigma1):
  """Updating the prior N(0, 1) with y_1..y_n of accuracies alpha_i gives precision 1 + sum alpha
  and mean sum(alpha_i y_i) / precision, whatever the order of the updates."""
  alphas = np.asarray(continuous.accuracy(np.arange(1, n + 1), n, sigma1), np.float64)
  ys = _normal(seed, (n, *shape), dtype, scale=3.0)
  precision = 1.0 + alphas.sum()
  mean = np.tensordot(alphas, ys.astype(np.float64), axes=1) / precision
  with jax.enable_x64(dtype == np.float64):
    for order in (range(n), reversed(range(n))):
      mu, rho = jnp.zeros(shape, dtype), jnp.ones(shape, dtype)
      for i in order:
        mu, rho = continuous.bayesian_update(mu, rho, ys[i], jnp.asarray(alphas[i], dtype))
      mu, rho = np.asarray(mu), np.asarray(rho)
      assert mu.dtype == dtype
      np.testing.assert_allclose(rho, np.full(shape, precision), **TOLERANCE[dtype])
      np.testing.assert_allclose(
        mu, mean, rtol=TOLERANCE[dtype]["rtol"] * 10, atol=TOLERANCE[dtype]["atol"] * 10
      )


@given(n=st.integers(1, 500), k=st.data(), sigma1=SIGMA1, beta1=BETA1)
def test_accuracies_add_up_to_the_flow_at_every_step(n, k, sigma1, beta1):
  """After k of n steps the summed accuracies are the flow's: sigma1^(-2k/n) - 1 (continuous and
  discretised: precision minus the prior's 1) and beta1 (k/n)^2 (discrete)."""
  k = k.draw(st.integers(1, n))
  with jax.enable_x64(True):
    steps = np.arange(1, k + 1)
    gaussian = np.sum(np.asarray(continuous.accuracy(steps, n, sigma1)))
    categorical = np.sum(np.asarray(discrete.accuracy(steps, n, beta1)))
    np.testing.assert_allclose(gaussian, sigma1 ** (-2 * k / n) - 1, rtol=1e-10)
    np.testing.assert_allclose(categorical, beta1 * (k / n) ** 2, rtol=1e-10)
    np.testing.assert_allclose(categorical, float(discrete.beta(k / n, beta1)), rtol=1e-10)


@given(dtype=DTYPES, K=st.integers(2, 12), seed=st.integers(0, 2**16), scale=st.floats(0.1, 30.0))
def test_discrete_updates_commute_compose_and_stay_on_the_simplex(dtype, K, seed, scale):
  rng = np.random.default_rng(seed)
  theta = rng.dirichlet(np.ones(K), size=3).astype(dtype)
  y1, y2 = (scale * rng.normal(size=(2, 3, K))).astype(dtype)
  with jax.enable_x64(dtype == np.float64):  # results leave the context as numpy arrays
    one_then_two = np.asarray(discrete.bayesian_update(discrete.bayesian_update(theta, y1), y2))
    two_then_one = np.asarray(discrete.bayesian_update(discrete.bayesian_update(theta, y2), y1))
    at_once = np.asarray(discrete.bayesian_update(theta, y1 + y2))
  tolerance = dict(rtol=1e-3, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-14)
  np.testing.assert_allclose(one_then_two, two_then_one, **tolerance)
  np.testing.assert_allclose(one_then_two, at_once, **tolerance)
  for probs in (one_then_two, at_once):
    assert probs.dtype == dtype and np.all(probs >= 0)
    np.testing.assert_allclose(
      np.sum(probs, axis=-1), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-12
    )
  # The brute-force posterior: theta_k exp(y_k), normalised, in float64.
  logits = np.log(theta.astype(np.float64)) + (y1 + y2).astype(np.float64)
  expected = np.exp(logits - logits.max(-1, keepdims=True))
  expected /= expected.sum(-1, keepdims=True)
  np.testing.assert_allclose(at_once, expected, **tolerance)


@given(dtype=DTYPES, K=st.integers(2, 16), mean=st.floats(-1.5, 1.5), std=st.floats(0.02, 2.0))
def test_bin_probs_equal_the_integrated_normal_density(dtype, K, mean, std):
  """Each bin's mass is the integral of the Normal density over the bin (quad), the first and last
  bins reaching to -inf and +inf (BFN Eq. 108)."""
  edges = np.linspace(-1.0, 1.0, K + 1)
  edges[0], edges[-1] = -np.inf, np.inf
  density = stats.norm(mean, std).pdf
  expected = []
  for lo, hi in itertools.pairwise(edges):  # beyond 40 std the mass is below 1e-300
    lo, hi = max(lo, mean - 40 * std), min(hi, mean + 40 * std)
    inside = [mean] if lo < mean < hi else None
    expected.append(
      integrate.quad(density, lo, hi, points=inside, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
      if lo < hi
      else 0.0
    )
  with jax.enable_x64(dtype == np.float64):
    probs = np.asarray(discretised.bin_probs(np.asarray(mean, dtype), np.asarray(std, dtype), K))
  assert probs.shape == (K,) and probs.dtype == dtype
  atol = 2e-6 if dtype == np.float32 else 1e-9
  np.testing.assert_allclose(probs, expected, rtol=0, atol=atol)


def _brute_force_mmd(z: np.ndarray, prior: np.ndarray, kernel: str) -> float:
  """Unbiased MMD^2 by direct sums over pairs (InfoVAE / WAE kernels, scale C = 2 L)."""
  c = 2.0 * z.shape[1]

  def k(a, b):
    d = float(np.sum((a - b) ** 2))
    return np.exp(-d / c) if kernel == "rbf" else c / (c + d)

  def within(a):
    n = len(a)
    return sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))

  across = sum(k(a, b) for a in z for b in prior) / (len(z) * len(prior))
  return within(z) + within(prior) - 2 * across


@given(
  n=st.sampled_from([2, 5]),
  m=st.sampled_from([3, 6]),
  L=st.sampled_from([1, 4]),
  kernel=st.sampled_from(["imq", "rbf"]),
  seed=st.integers(0, 2**16),
  shift=st.floats(0.0, 3.0),
)
def test_mmd_equals_the_direct_pairwise_sum(n, m, L, kernel, seed, shift):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, L)) + shift
  prior = rng.normal(size=(m, L))
  with jax.enable_x64(True):
    value = float(objective.mmd(jnp.asarray(z), jnp.asarray(prior), kernel))
  np.testing.assert_allclose(value, _brute_force_mmd(z, prior, kernel), rtol=1e-9, atol=1e-12)


def test_mmd_kernel_defaults_to_imq_and_refuses_others():
  z, prior = np.array([[0.0], [1.0]]), np.array([[0.5], [2.0], [-1.0]])
  expected = _brute_force_mmd(z, prior, "imq")
  np.testing.assert_allclose(objective.mmd(jnp.asarray(z), jnp.asarray(prior)), expected, rtol=1e-6)
  with pytest.raises(ValueError, match=r"MMD kernel must be one of \('rbf', 'imq'\), got 'IMQ'"):
    objective.mmd(jnp.asarray(z), jnp.asarray(prior), "IMQ")


@given(sigma1=SIGMA1, t=st.floats(0.0, 1.0), error=st.floats(0.01, 2.0))
def test_n_step_loss_tends_to_the_continuous_time_loss(sigma1, t, error):
  """n alpha_i / 2 -> -ln(sigma1) sigma1^(-2t) as n grows with i / n -> t: the discrete-time loss
  per step approaches the continuous-time one; both error terms are O(|ln sigma1| / n)."""
  with jax.enable_x64(True):
    limit = float(continuous.ctime_loss(0.0, error, t, sigma1))
    gaps = []
    for n in (10, 100, 10_000):
      i = max(1, round(t * n))
      gaps.append(abs(float(continuous.dtime_loss(0.0, error, i, n, sigma1)) / limit - 1))
  assert gaps[1] < 2e-2 * -np.log(sigma1) + 1e-2
  assert gaps[2] < 2e-4 * -np.log(sigma1) + 1e-4
