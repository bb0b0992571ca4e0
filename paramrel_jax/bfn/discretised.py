"""Discretised data: K equal bins on [-1, 1] (BFN arXiv:2308.07037, Sec. 5).

Discretised data share the Gaussian input distribution, Bayesian flow and updates of continuous
data (`continuous`); what changes is the output distribution, a Normal(mean, std) discretised to
the K bins with the tails folded into the first and last bins (Eq. 108), and with it the
receiver (a Gaussian mixture over the bin centres), the losses and the reconstruction term.

Bin k = 0..K-1 spans [-1 + 2k/K, -1 + 2(k+1)/K] with centre k_c = (2k + 1)/K - 1. K is a static
Python int >= 2. Every function is elementwise over its leading axes, broadcasts its array
arguments and keeps their float dtype (the default float dtype, float64 under x64, for integer
inputs alone).
"""

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from paramrel_jax.bfn import continuous
from paramrel_jax.bfn.checks import (
  as_float,
  broadcast_shapes,
  check_broadcast,
  check_open_unit,
  check_static_int,
  float_dtype,
)
from paramrel_jax.bfn.continuous import LOG_2PI

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

# The official DiscretizedCtsDistribution: masses below MIN_PROB use the density branch.
MIN_PROB = 1e-5
LOG_MIN = 1e-10
# The official DiscretizedNormal / safe_exp limits.
MIN_STD = 1e-3
MAX_STD = 10.0
LOG_STD_RANGE = 10.0


def _check_k(K) -> int:
  return check_static_int("K", K, 2)


def _check_last_axis(name: str, value: ArrayLike, K: int) -> None:
  shape = jnp.shape(value)
  if not shape or shape[-1] != K:
    raise ValueError(f"{name} must have a last axis of size K={K}, got shape {shape}.")


def bin_centres(K: int, dtype=None) -> Array:
  """The K bin centres (2k + 1)/K - 1, k = 0..K-1 (Sec. 5).

  Args:
    K: number of bins, a static int >= 2.
    dtype: float dtype of the result (default: the default float dtype).

  Returns:
    (K,) centres in increasing order.
  """
  K = _check_k(K)
  dtype = jnp.result_type(float) if dtype is None else dtype
  return (2 * jnp.arange(K, dtype=dtype) + 1) / K - 1


def bin_index(x: ArrayLike, K: int) -> Array:
  """Index of the bin holding x: clip(floor((x/2 + 1/2) K), 0, K - 1) as int32.

  A value on an inner boundary belongs to the upper bin; x = 1 to the last bin.

  Args:
    x: values, any shape.
    K: number of bins.

  Returns:
    int32 indices of x's shape.
  """
  K = _check_k(K)
  x = jnp.asarray(x)
  return jnp.clip(jnp.floor((x / 2 + 0.5) * K), 0, K - 1).astype(jnp.int32)


def _centre(index: Array, K: int, dtype) -> Array:
  return (2 * index.astype(dtype) + 1) / K - 1


def quantize(x: ArrayLike, K: int) -> Array:
  """x moved to the centre of its bin (the official `quantize`).

  Args:
    x: values, any shape (values outside [-1, 1] go to the first / last bin).
    K: number of bins.

  Returns:
    Bin centres of x's shape and float dtype.
  """
  return _centre(bin_index(x, K), K, float_dtype(x))


def _mass(z_lo: Array, z_hi: Array, first: Array, last: Array) -> Array:
  """Normal mass between standardised edges z_lo < z_hi; `first` / `last` open them to -/+ inf.

  Bins above the mean are taken from survival functions, Phi(-z_lo) - Phi(-z_hi), so tail masses
  keep their relative precision (the official 1 - cdf form loses it in float32).
  """
  cdf = ndtr(jnp.stack(jnp.broadcast_arrays(z_lo, z_hi, -z_lo, -z_hi)))  # one ndtr in the graph
  cdf_lo = jnp.where(first, 0.0, cdf[0])
  cdf_hi = jnp.where(last, 1.0, cdf[1])
  sf_lo = jnp.where(first, 1.0, cdf[2])
  sf_hi = jnp.where(last, 0.0, cdf[3])
  return jnp.where(z_lo > 0, sf_lo - sf_hi, cdf_hi - cdf_lo)


def bin_probs(mean: ArrayLike, std: ArrayLike, K: int) -> Array:
  """Mass of Normal(mean, std) in each of the K bins, the first and last taking the tails (Eq. 108).

  Args:
    mean: means, any shape.
    std: standard deviations (> 0), broadcast against mean.
    K: number of bins.

  Returns:
    probs of shape broadcast(mean, std).shape + (K,), summing to 1 over the last axis.
  """
  K = _check_k(K)
  check_broadcast(mean=mean, std=std)
  dtype = float_dtype(mean, std)
  lower = bin_centres(K, dtype) - 1 / K  # lower edge of every bin
  mean = jnp.asarray(mean, dtype)[..., None]
  std = jnp.asarray(std, dtype)[..., None]
  index = jnp.arange(K)
  return _mass((lower - mean) / std, (lower + 2 / K - mean) / std, index == 0, index == K - 1)


def distribution_mean(probs: ArrayLike) -> Array:
  """Mean sum_k p_k k_c of a distribution over the K bin centres.

  Args:
    probs: (..., K) bin probabilities.

  Returns:
    (...) means.
  """
  probs = jnp.asarray(probs)
  K = probs.shape[-1]
  return probs @ bin_centres(K, float_dtype(probs))


def normal_bin_mean(mean: ArrayLike, std: ArrayLike, K: int) -> Array:
  """Mean over the K bin centres of the discretised Normal(mean, std), without the K masses.

  Summation by parts of sum_k p_k k_c with the cdf at the K - 1 inner edges e_j = -1 + 2j / K:
  (1 - 1/K) - (2/K) sum_j Phi((e_j - mean) / std). Equals `distribution_mean(bin_probs(...))`
  at a quarter of the normal-cdf evaluations and without the (..., K) mass tensor.

  Args:
    mean: means, any shape.
    std: standard deviations (> 0), broadcast against mean.
    K: number of bins.

  Returns:
    Means of the broadcast shape.
  """
  K = _check_k(K)
  check_broadcast(mean=mean, std=std)
  dtype = float_dtype(mean, std)
  mean, std = jnp.asarray(mean, dtype)[..., None], jnp.asarray(std, dtype)[..., None]
  edges = -1.0 + 2.0 * jnp.arange(1, K, dtype=dtype) / K
  return (1.0 - 1.0 / K) - (2.0 / K) * jnp.sum(ndtr((edges - mean) / std), axis=-1)


def log_prob(x: ArrayLike, mean: ArrayLike, std: ArrayLike, K: int) -> Array:
  """ln p(x) of the discretised Normal(mean, std): the log mass of x's bin (Eq. 108).

  As the official `DiscretizedCtsDistribution.log_prob` (clip=True, min_prob=1e-5): a mass below
  1e-5 is replaced by the density approximation ln N(quantize(x); mean, std) + ln(2/K), and
  larger masses are floored at 1e-10 before the log.

  Args:
    x: values (on or near bin centres).
    mean: means, broadcast against x.
    std: standard deviations (> 0), broadcast against x.
    K: number of bins.

  Returns:
    Log probabilities of the broadcast shape.
  """
  K = _check_k(K)
  check_broadcast(x=x, mean=mean, std=std)
  dtype = float_dtype(x, mean, std)
  index = bin_index(x, K)
  centre = _centre(index, K, dtype)
  mean = jnp.asarray(mean, dtype)
  std = jnp.asarray(std, dtype)
  mass = _mass(
    (centre - 1 / K - mean) / std, (centre + 1 / K - mean) / std, index == 0, index == K - 1
  )
  log_density = -0.5 * jnp.square((centre - mean) / std) - jnp.log(std) - 0.5 * LOG_2PI
  return jnp.where(
    mass < MIN_PROB, log_density + math.log(2 / K), jnp.log(jnp.maximum(mass, LOG_MIN))
  )


def predict_mean_std(
  mu: ArrayLike,
  eps_mean: ArrayLike,
  log_std_eps: ArrayLike,
  t: ArrayLike,
  sigma1: float,
  t_min: float = 1e-6,
  min_std: float = MIN_STD,
  max_std: float = MAX_STD,
) -> tuple[Array, Array]:
  """(mean, std) of the discretised output Normal from a noise prediction, as the official code.

  With gamma = 1 - sigma1^(2t) and B = sqrt(sigma1^(2t) / gamma) (= sqrt((1 - gamma) / gamma)):
    mean = mu / gamma - B eps_mean                         (ParamReL Eq. 10, BFN Eq. 84)
    std  = B exp(clip(log_std_eps, -10, 10))
  where t < t_min, mean = 0 and std = 1; finally std is clipped to [min_std, max_std]
  (the official `noise_pred_params_to_data_pred_params` followed by `DiscretizedNormal`). The
  mean is not clipped: the discretisation folds its tails into the edge bins.

  Args:
    mu: input means.
    eps_mean: predicted mean of the flow noise.
    log_std_eps: predicted log standard deviation of the flow noise (zeros when the network
      predicts only a mean).
    t: flow times, broadcast against mu.
    sigma1: in (0, 1).
    t_min: times below it give the standard Normal.
    min_std, max_std: limits of the data std.

  Returns:
    (mean, std) of the broadcast shape.
  """
  shape = check_broadcast(mu=mu, eps_mean=eps_mean, log_std_eps=log_std_eps, t=t)
  mu, eps_mean, log_std_eps, t = as_float(mu, eps_mean, log_std_eps, t)
  mean, scale, masked = continuous.data_from_noise(mu, eps_mean, t, sigma1, t_min)
  std = scale * jnp.exp(jnp.clip(log_std_eps, -LOG_STD_RANGE, LOG_STD_RANGE))
  mean = jnp.where(masked, 0.0, mean)
  std = jnp.clip(jnp.where(masked, 1.0, std), min_std, max_std)
  return jnp.broadcast_to(mean, shape), jnp.broadcast_to(std, shape)


def sample(key: Array, mean: ArrayLike, std: ArrayLike, K: int) -> Array:
  """x ~ the discretised Normal(mean, std): a Normal draw moved to its bin's centre.

  Args:
    key: PRNG key.
    mean, std: parameters, broadcast against each other.
    K: number of bins.

  Returns:
    Bin centres of the broadcast shape.
  """
  shape = check_broadcast(mean=mean, std=std)
  noise = jax.random.normal(key, shape, float_dtype(mean, std))
  return quantize(mean + std * noise, K)


def receiver_log_prob(y: ArrayLike, probs: ArrayLike, alpha: ArrayLike, K: int) -> Array:
  """ln p_R(y) = ln sum_k p_k N(y; k_c, 1 / alpha), the receiver of discretised data (Sec. 5).

  Computed as a logsumexp over the bins; zero probabilities are floored at the dtype's smallest
  normal number so gradients stay finite.

  Args:
    y: receiver / sender samples, shape S.
    probs: (..., K) bin probabilities of the output distribution, ... broadcast against S.
    alpha: accuracy, broadcast against y.
    K: number of bins.

  Returns:
    Log densities of the broadcast shape of y, alpha and probs[..., 0].
  """
  K = _check_k(K)
  _check_last_axis("probs", probs, K)
  broadcast_shapes(y=jnp.shape(y), probs=jnp.shape(probs)[:-1], alpha=jnp.shape(alpha))
  dtype = float_dtype(y, probs, alpha)
  y = jnp.asarray(y, dtype)[..., None]
  alpha = jnp.asarray(alpha, dtype)[..., None]
  log_weights = jnp.log(jnp.maximum(jnp.asarray(probs, dtype), jnp.finfo(dtype).tiny))
  centres = bin_centres(K, dtype)
  log_normal = 0.5 * (jnp.log(alpha) - LOG_2PI) - 0.5 * alpha * jnp.square(y - centres)
  return jax.nn.logsumexp(log_weights + log_normal, axis=-1)


def receiver_sample(key: Array, mean: ArrayLike, std: ArrayLike, alpha: ArrayLike, K: int) -> Array:
  """y ~ p_R(y | mean, std; alpha): x' from the discretised Normal, then y ~ N(x', 1 / alpha).

  Args:
    key: PRNG key.
    mean, std: output distribution parameters.
    alpha: accuracy, broadcast against mean.
    K: number of bins.

  Returns:
    y of the broadcast shape of mean, std and alpha.
  """
  k_x, k_y = jax.random.split(key)
  shape = check_broadcast(mean=mean, std=std, alpha=alpha)
  x = sample(k_x, jnp.broadcast_to(mean, shape), std, K)
  return continuous.sender_sample(k_y, x, jnp.asarray(alpha, x.dtype))


def ctime_loss(x: ArrayLike, probs: ArrayLike, t: ArrayLike, sigma1: float) -> Array:
  """Continuous-time loss of discretised data (Sec. 5): the continuous L^inf at the mean.

  -ln(sigma1) sigma1^(-2t) (x - sum_k p_k k_c)^2 per element, as the official
  `CtsBayesianFlowLoss.cts_time_loss` with a discretised output distribution.

  Args:
    x: data on the bin centres.
    probs: (..., K) bin probabilities of the output distribution.
    t: flow times, broadcast against x.
    sigma1: in (0, 1).

  Returns:
    Losses in nats of the broadcast shape.
  """
  return continuous.ctime_loss(x, distribution_mean(probs), t, sigma1)


def dtime_loss(
  key: Array,
  x: ArrayLike,
  probs: ArrayLike,
  i: ArrayLike,
  n: int,
  sigma1: float,
  K: int,
  num_samples: int = 1,
) -> Array:
  """n-step loss of discretised data (Sec. 5), Monte-Carlo over sender samples.

  n E_{y ~ N(x, 1/alpha_i)} [ln N(y; x, 1/alpha_i) - ln sum_k p_k N(y; k_c, 1/alpha_i)] with
  `num_samples` draws per element, as the official `discrete_time_loss` (discretised branch).

  Args:
    key: PRNG key of the sender samples.
    x: data on the bin centres.
    probs: (..., K) bin probabilities predicted at t = (i - 1) / n.
    i: step indices in 1..n, broadcast against x.
    n: number of steps.
    sigma1: in (0, 1).
    K: number of bins.
    num_samples: sender samples per element, a static int >= 1.

  Returns:
    Losses in nats of the broadcast shape of x, i and probs[..., 0].
  """
  num_samples = check_static_int("num_samples", num_samples, 1)
  K = _check_k(K)
  _check_last_axis("probs", probs, K)
  shape = broadcast_shapes(x=jnp.shape(x), i=jnp.shape(i), probs=jnp.shape(probs)[:-1])
  dtype = float_dtype(x, probs)
  alpha = continuous.accuracy(i, n, sigma1).astype(dtype)
  x = jnp.broadcast_to(jnp.asarray(x, dtype), shape)
  noise = jax.random.normal(key, (num_samples,) + shape, dtype)
  y = x + noise * jax.lax.rsqrt(alpha)
  log_ratio = continuous.sender_log_prob(y, x, alpha) - receiver_log_prob(y, probs, alpha, K)
  return n * jnp.mean(log_ratio, axis=0)


def reconstruction_loss(x: ArrayLike, mean: ArrayLike, std: ArrayLike, K: int) -> Array:
  """-ln p_O(x | theta_1) of the discretised Normal output distribution (Sec. 5).

  Args:
    x: data on the bin centres.
    mean, std: output distribution at t = 1.
    K: number of bins.

  Returns:
    Losses in nats of the broadcast shape.
  """
  return -log_prob(x, mean, std, K)


def delta_reconstruction_loss(x: ArrayLike, x_hat: ArrayLike, sigma1: float, K: int) -> Array:
  """Reconstruction loss of continuous data as the official BFN computes it.

  The delta output distribution at x_hat has no likelihood, so the official
  `CtsBayesianFlowLoss.reconstruction_loss` scores x under Normal(x_hat, s) discretised to the
  data's K bins: s = 0.7 sigma1 for 16 bins and s = sigma1 otherwise (the official code keys
  these two settings on sigma1^2 == 1e-3, which its configs pair with 16-bin data).

  Args:
    x: data on the bin centres.
    x_hat: predictions at t = 1.
    sigma1: in (0, 1).
    K: number of bins of the data.

  Returns:
    Losses in nats of the broadcast shape.
  """
  K = _check_k(K)
  check_open_unit("sigma1", sigma1)
  std = 0.7 * sigma1 if K == 16 else sigma1
  return reconstruction_loss(x, x_hat, std, K)
