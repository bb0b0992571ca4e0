"""Categorical input distributions: the Bayesian-flow math of discrete data (K classes).

Graves et al., "Bayesian Flow Networks" (BFN, arXiv:2308.07037), Sec. 6.

Every data dimension (an int class index x in 0..K-1) has a categorical input distribution theta
over the K classes, starting from the uniform prior. With e_x the one-hot vector of x:

  sender      p_S(y | x; alpha) = N(y; alpha (K e_x - 1), alpha K I),  y in R^K
  update      h(theta, y) = theta e^y / sum_k theta_k e^{y_k}
  schedule    beta(t) = beta1 t^2 (Eq. 182), alpha_i = beta(i/n) - beta((i-1)/n)
  flow        p_F(theta | x; t): theta = softmax(y), y ~ N(beta (K e_x - 1), beta K I)

beta1 is the official code's `max_sqrt_beta`**2. K is a static Python int >= 2. Per-class
quantities carry the classes on a trailing axis of size K; everything else is elementwise,
broadcasts, keeps the float dtype (the default float dtype, float64 under x64, for integer inputs
alone) and is jit-, vmap- and grad-safe. Updates are done in log space (a softmax of
ln theta + y), which stays finite for |y| in the hundreds where the official theta * exp(y)
overflows.
"""

import math

import jax
import jax.numpy as jnp

from paramrel_jax.bfn.checks import (
  as_float,
  broadcast_shapes,
  check_broadcast,
  check_num_steps,
  check_positive,
  check_static_int,
  float_dtype,
)
from paramrel_jax.bfn.continuous import LOG_2PI

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

# The official DiscreteBayesianFlow: t is clamped to <= 1 - T_MAX_GAP, and sqrt(beta) below
# MIN_SQRT_BETA gives the uniform distribution.
T_MAX_GAP = 1e-6
MIN_SQRT_BETA = 1e-10


def _check_k(K) -> int:
  return check_static_int("K", K, 2)


def _check_last_axis(name: str, value: ArrayLike, K: int) -> None:
  shape = jnp.shape(value)
  if not shape or shape[-1] != K:
    raise ValueError(f"{name} must have a last axis of size K={K}, got shape {shape}.")


def _log_floor(probs: ArrayLike, dtype) -> Array:
  """ln p with zeros floored at the smallest normal number (finite values and gradients)."""
  return jnp.log(jnp.maximum(jnp.asarray(probs, dtype), jnp.finfo(dtype).tiny))


# --- schedules and the Bayesian flow -------------------------------------------------------------


def beta(t: ArrayLike, beta1: float) -> Array:
  """beta(t) = beta1 t^2 (Eq. 182), the accuracy accumulated by time t.

  Args:
    t: flow times, any shape.
    beta1: beta(1) > 0.

  Returns:
    beta of t's shape.
  """
  check_positive("beta1", beta1)
  return beta1 * jnp.square(jnp.asarray(t))


def accuracy(i: ArrayLike, n: int, beta1: float) -> Array:
  """alpha_i = beta1 (2i - 1) / n^2 = beta(i/n) - beta((i-1)/n), the accuracy of step i of n.

  Args:
    i: step indices in 1..n, any shape.
    n: number of steps, >= 1.
    beta1: beta(1) > 0.

  Returns:
    alpha of i's shape (float; the default float dtype for integer i).
  """
  check_positive("beta1", beta1)
  check_num_steps(n)
  (i,) = as_float(i)
  return beta1 * (2 * i - 1) / (n * n)


def _flow_logits(
  x: ArrayLike, t: ArrayLike, beta1: float, K: int, eps: ArrayLike
) -> tuple[Array, Array]:
  """Logits beta (K e_x - 1) + sqrt(beta K) eps of p_F and the mask of negligible beta.

  As the official `DiscreteBayesianFlow.forward`: t is clamped to <= 1 - 1e-6, sqrt(beta) =
  t sqrt(beta1) is clamped to >= 1e-10 and the mask marks where it was below.
  """
  K = _check_k(K)
  check_positive("beta1", beta1)
  _check_last_axis("eps", eps, K)
  broadcast_shapes(x=jnp.shape(x), t=jnp.shape(t), eps=jnp.shape(eps)[:-1])
  dtype = float_dtype(t, eps)
  t = jnp.minimum(jnp.asarray(t, dtype), 1 - T_MAX_GAP)
  sqrt_beta = t * math.sqrt(beta1)
  uniform = sqrt_beta < MIN_SQRT_BETA
  sqrt_beta = jnp.maximum(sqrt_beta, MIN_SQRT_BETA)[..., None]
  mean = K * jax.nn.one_hot(x, K, dtype=dtype) - 1
  return jnp.square(sqrt_beta) * mean + math.sqrt(K) * sqrt_beta * eps, uniform[..., None]


def flow_probs(x: ArrayLike, t: ArrayLike, beta1: float, K: int, eps: ArrayLike) -> Array:
  """A draw of the Bayesian flow distribution p_F(theta | x; t) given standard-normal eps.

  theta = softmax(beta (K e_x - 1) + sqrt(beta K) eps) over the last axis (Sec. 6), and
  exactly 1/K where sqrt(beta) < 1e-10 (e.g. t = 0); t is clamped to <= 1 - 1e-6 as in the
  official code.

  Args:
    x: int class indices, any shape.
    t: flow times, broadcast against x.
    beta1: beta(1) > 0.
    K: number of classes.
    eps: standard-normal noise of shape x.shape + (K,) (broadcasting allowed).

  Returns:
    (..., K) probabilities.
  """
  logits, uniform = _flow_logits(x, t, beta1, K, eps)
  return jnp.where(uniform, 1 / K, jax.nn.softmax(logits, axis=-1))


def flow_log_probs(x: ArrayLike, t: ArrayLike, beta1: float, K: int, eps: ArrayLike) -> Array:
  """ln of `flow_probs` (a log_softmax, -ln K where beta is negligible); same arguments."""
  logits, uniform = _flow_logits(x, t, beta1, K, eps)
  return jnp.where(uniform, -math.log(K), jax.nn.log_softmax(logits, axis=-1))


def sample_flow(key: Array, x: ArrayLike, t: ArrayLike, beta1: float, K: int) -> Array:
  """ln theta for theta ~ p_F(theta | x; t) (Sec. 6).

  Args:
    key: PRNG key.
    x: int class indices.
    t: float flow times, broadcast against x (e.g. (B, 1, 1, 1) for x of shape (B, H, W, C)).
    beta1: beta(1) > 0.
    K: number of classes.

  Returns:
    (..., K) normalised log-probabilities in t's float dtype.
  """
  K = _check_k(K)
  shape = check_broadcast(x=x, t=t)
  eps = jax.random.normal(key, shape + (K,), float_dtype(t))
  return flow_log_probs(x, t, beta1, K, eps)


# --- sender / receiver ----------------------------------------------------------------------------


def sender_log_prob(y: ArrayLike, x: ArrayLike, alpha: ArrayLike, K: int) -> Array:
  """ln p_S(y | x; alpha) = sum_k ln N(y_k; alpha (K e_x - 1)_k, alpha K) (Sec. 6).

  Args:
    y: (..., K) sender samples.
    x: int class indices, broadcast against y[..., 0].
    alpha: accuracy, broadcast against y[..., 0].
    K: number of classes.

  Returns:
    Log densities of the broadcast shape (the class axis summed out).
  """
  K = _check_k(K)
  _check_last_axis("y", y, K)
  broadcast_shapes(y=jnp.shape(y)[:-1], x=jnp.shape(x), alpha=jnp.shape(alpha))
  dtype = float_dtype(y, alpha)
  alpha = jnp.asarray(alpha, dtype)[..., None]
  mean = alpha * (K * jax.nn.one_hot(x, K, dtype=dtype) - 1)
  variance = alpha * K
  log_normal = -0.5 * (jnp.log(variance) + LOG_2PI) - jnp.square(y - mean) / (2 * variance)
  return jnp.sum(log_normal, axis=-1)


def receiver_log_prob(y: ArrayLike, probs: ArrayLike, alpha: ArrayLike, K: int) -> Array:
  """ln p_R(y) = ln sum_j p_j prod_k N(y_k; alpha (K e_j - 1)_k, alpha K): the joint mixture.

  The receiver of the paper (Sec. 6 and the n-step loss, Eq. 189-190): one mixture over the
  classes j of the K-dimensional sender densities. The official code
  (`DiscreteBayesianFlowLoss.discrete_time_loss`) instead evaluates a factorised, per-dimension
  mixture sum_k ln sum_j p_j N(y_k; alpha (K e_j - 1)_k, alpha K), which is not a normalised
  density of the sender's y and differs from this one (by up to about a nat per element at the
  accuracies of training); this function follows the paper.

  Computed in closed form: with S = sum_k ln N(y_k; -alpha, alpha K), the j-th component is
  S + y_j + alpha - alpha K / 2, so ln p_R = S + alpha - alpha K / 2 + logsumexp_j(ln p_j + y_j).
  Zero probabilities are floored at the dtype's smallest normal number.

  Args:
    y: (..., K) samples.
    probs: (..., K) class probabilities of the output distribution.
    alpha: accuracy, broadcast against y[..., 0].
    K: number of classes.

  Returns:
    Log densities of the broadcast shape (the class axis summed out).
  """
  K = _check_k(K)
  _check_last_axis("y", y, K)
  _check_last_axis("probs", probs, K)
  broadcast_shapes(y=jnp.shape(y)[:-1], probs=jnp.shape(probs)[:-1], alpha=jnp.shape(alpha))
  dtype = float_dtype(y, probs, alpha)
  y = jnp.asarray(y, dtype)
  alpha = jnp.asarray(alpha, dtype)
  variance = alpha * K
  base = jnp.sum(jnp.square(y + alpha[..., None]), axis=-1) / (2 * variance)
  base = -0.5 * K * (jnp.log(variance) + LOG_2PI) - base + alpha - variance / 2
  return base + jax.nn.logsumexp(_log_floor(probs, dtype) + y, axis=-1)


def sender_sample(
  key: Array, x: ArrayLike, alpha: ArrayLike, K: int, sample_shape: tuple[int, ...] = ()
) -> Array:
  """y ~ p_S(y | x; alpha) = N(alpha (K e_x - 1), alpha K I) (Sec. 6).

  Args:
    key: PRNG key.
    x: int class indices.
    alpha: float accuracy, broadcast against x.
    K: number of classes.
    sample_shape: leading shape of independent draws.

  Returns:
    y of shape sample_shape + broadcast(x, alpha).shape + (K,) in alpha's float dtype.
  """
  K = _check_k(K)
  shape = check_broadcast(x=x, alpha=alpha)
  dtype = float_dtype(alpha)
  alpha = jnp.asarray(alpha, dtype)[..., None]
  mean = alpha * (K * jax.nn.one_hot(jnp.broadcast_to(x, shape), K, dtype=dtype) - 1)
  noise = jax.random.normal(key, tuple(sample_shape) + shape + (K,), dtype)
  return mean + jnp.sqrt(alpha * K) * noise


def receiver_sample(key: Array, log_probs: ArrayLike, alpha: ArrayLike, K: int) -> Array:
  """y ~ p_R(y | p; alpha): a class x' ~ Categorical(p), then y ~ p_S(y | x'; alpha).

  Args:
    key: PRNG key.
    log_probs: (..., K) log-probabilities of the output distribution.
    alpha: float accuracy, broadcast against log_probs[..., 0].
    K: number of classes.

  Returns:
    (..., K) samples.
  """
  K = _check_k(K)
  _check_last_axis("log_probs", log_probs, K)
  k_x, k_y = jax.random.split(key)
  return sender_sample(k_y, sample(k_x, log_probs), alpha, K)


# --- Bayesian update ----------------------------------------------------------------------------


def bayesian_update(theta: ArrayLike, y: ArrayLike) -> Array:
  """h(theta, y) = theta e^y / sum_k theta_k e^{y_k} over the last axis (Sec. 6).

  Computed as softmax(ln theta + y): finite for |y| in the hundreds (note 9 of the reference).
  theta need not be normalised.

  Args:
    theta: (..., K) probabilities.
    y: (..., K) observation (its accuracy is already in its scale), broadcast against theta.

  Returns:
    (..., K) updated probabilities.
  """
  check_broadcast(theta=theta, y=y)
  theta, y = as_float(theta, y)
  return jax.nn.softmax(jnp.log(theta) + y, axis=-1)


def inverse_bayesian_update(theta_new: ArrayLike, y: ArrayLike) -> Array:
  """Inverse of `bayesian_update`: theta_new e^-y / sum_k theta_new_k e^{-y_k}.

  Args:
    theta_new: (..., K) probabilities after the update.
    y: (..., K) the observation of the update.

  Returns:
    (..., K) normalised probabilities theta with bayesian_update(theta, y) == theta_new.
  """
  check_broadcast(theta_new=theta_new, y=y)
  theta_new, y = as_float(theta_new, y)
  return jax.nn.softmax(jnp.log(theta_new) - y, axis=-1)


def update_log_probs(log_probs: ArrayLike, y: ArrayLike) -> Array:
  """`bayesian_update` on log-probabilities: log_softmax(ln theta + y).

  Args:
    log_probs: (..., K) ln theta (normalised or not).
    y: (..., K) observation.

  Returns:
    (..., K) normalised ln theta'.
  """
  check_broadcast(log_probs=log_probs, y=y)
  log_probs, y = as_float(log_probs, y)
  return jax.nn.log_softmax(log_probs + y, axis=-1)


def inverse_update_log_probs(log_probs_new: ArrayLike, y: ArrayLike) -> Array:
  """`inverse_bayesian_update` on log-probabilities: log_softmax(ln theta' - y).

  Args:
    log_probs_new: (..., K) ln theta' after the update.
    y: (..., K) the observation of the update.

  Returns:
    (..., K) normalised ln theta.
  """
  check_broadcast(log_probs_new=log_probs_new, y=y)
  log_probs_new, y = as_float(log_probs_new, y)
  return jax.nn.log_softmax(log_probs_new - y, axis=-1)


# --- network input and output distribution -------------------------------------------------------


def network_input(log_probs: ArrayLike) -> Array:
  """The network's view of theta: 2 p_0 - 1 for K = 2 (official convention), else p.

  Args:
    log_probs: (..., K) ln theta.

  Returns:
    (...) for K = 2 (p_0 is the probability of class 0), else (..., K) probabilities.
  """
  (log_probs,) = as_float(log_probs)
  return _probs_network_input(jnp.exp(log_probs))


def data_network_input(x: ArrayLike, K: int, dtype=None) -> Array:
  """`network_input` of the point mass theta = e_x on the data: 1 - 2x for K = 2, else e_x.

  Args:
    x: int class indices.
    K: number of classes.
    dtype: float dtype of the result (default: the default float dtype).

  Returns:
    (x.shape) for K = 2, else (x.shape + (K,)) one-hot probabilities.
  """
  dtype = jnp.result_type(float) if dtype is None else dtype
  return _probs_network_input(jax.nn.one_hot(x, _check_k(K), dtype=dtype))


def _probs_network_input(probs: Array) -> Array:
  if probs.shape[-1] == 2:
    return 2 * probs[..., 0] - 1
  return probs


def output_log_probs(logits: ArrayLike, K: int) -> Array:
  """ln p_O of the output distribution from the network's logits (Sec. 6).

  K = 2 is a Bernoulli of class 1 with one logit l per dimension (the official BernoulliFactory):
  ln p_O = (-softplus(l), -softplus(-l)). K > 2 is a categorical: log_softmax(logits).

  Args:
    logits: (...) for K = 2, (..., K) for K > 2.
    K: number of classes.

  Returns:
    (..., K) normalised log-probabilities.
  """
  K = _check_k(K)
  (logits,) = as_float(logits)
  if K == 2:
    return jnp.stack([-jax.nn.softplus(logits), -jax.nn.softplus(-logits)], axis=-1)
  _check_last_axis("logits", logits, K)
  return jax.nn.log_softmax(logits, axis=-1)


def sample(key: Array, log_probs: ArrayLike) -> Array:
  """x ~ Categorical(exp(log_probs)) over the last axis, as int32 (...)."""
  (log_probs,) = as_float(log_probs)
  return jax.random.categorical(key, log_probs, axis=-1).astype(jnp.int32)


# --- losses --------------------------------------------------------------------------------------


def ctime_loss(x: ArrayLike, probs: ArrayLike, t: ArrayLike, beta1: float, K: int) -> Array:
  """Continuous-time loss L^inf = K beta1 t ||e_x - p||^2 per element (Eq. 205).

  Args:
    x: int class indices.
    probs: (..., K) predicted class probabilities, ... broadcast against x.
    t: flow times, broadcast against x.
    beta1: beta(1) > 0.
    K: number of classes.

  Returns:
    Losses in nats of the broadcast shape.
  """
  K = _check_k(K)
  check_positive("beta1", beta1)
  _check_last_axis("probs", probs, K)
  broadcast_shapes(x=jnp.shape(x), probs=jnp.shape(probs)[:-1], t=jnp.shape(t))
  dtype = float_dtype(probs, t)
  sq_error = jnp.sum(jnp.square(jax.nn.one_hot(x, K, dtype=dtype) - probs), axis=-1)
  return K * beta1 * jnp.asarray(t, dtype) * sq_error


def dtime_loss(
  key: Array,
  x: ArrayLike,
  log_probs: ArrayLike,
  i: ArrayLike,
  n: int,
  beta1: float,
  K: int,
  num_samples: int = 1,
) -> Array:
  """n-step loss (Eq. 189-190), Monte-Carlo over `num_samples` sender samples per element.

  n E_{y ~ p_S(. | x; alpha_i)} [ln p_S(y | x; alpha_i) - ln p_R(y | p; alpha_i)] with the
  joint-mixture receiver of `receiver_log_prob`; the log ratio reduces exactly to
  y_x - logsumexp_j(ln p_j + y_j), which avoids the large cancelling Gaussian terms.

  Args:
    key: PRNG key of the sender samples.
    x: int class indices.
    log_probs: (..., K) predicted log-probabilities at t = (i - 1) / n.
    i: step indices in 1..n, broadcast against x.
    n: number of steps.
    beta1: beta(1) > 0.
    K: number of classes.
    num_samples: sender samples per element, a static int >= 1.

  Returns:
    Losses in nats of the broadcast shape.
  """
  K = _check_k(K)
  num_samples = check_static_int("num_samples", num_samples, 1)
  _check_last_axis("log_probs", log_probs, K)
  shape = broadcast_shapes(x=jnp.shape(x), log_probs=jnp.shape(log_probs)[:-1], i=jnp.shape(i))
  dtype = float_dtype(log_probs)
  alpha = accuracy(i, n, beta1).astype(dtype)
  x = jnp.broadcast_to(x, shape)
  y = sender_sample(key, x, alpha, K, sample_shape=(num_samples,))
  y_x = jnp.take_along_axis(y, jnp.broadcast_to(x[..., None], y.shape[:-1] + (1,)), axis=-1)
  log_ratio = y_x[..., 0] - jax.nn.logsumexp(jnp.asarray(log_probs, dtype) + y, axis=-1)
  return n * jnp.mean(log_ratio, axis=0)


def reconstruction_loss(x: ArrayLike, log_probs: ArrayLike) -> Array:
  """-ln p_O(x | theta_1): the negative log-probability of the data class (Sec. 6).

  Args:
    x: int class indices.
    log_probs: (..., K) output log-probabilities at t = 1, ... broadcast against x.

  Returns:
    Losses in nats of the broadcast shape.
  """
  (log_probs,) = as_float(log_probs)
  shape = broadcast_shapes(x=jnp.shape(x), log_probs=log_probs.shape[:-1])
  log_probs = jnp.broadcast_to(log_probs, shape + log_probs.shape[-1:])
  index = jnp.broadcast_to(jnp.asarray(x), shape)[..., None].astype(jnp.int32)
  return -jnp.take_along_axis(log_probs, index, axis=-1)[..., 0]
