"""Gaussian input distributions: the Bayesian-flow math of continuous data.

Graves et al., "Bayesian Flow Networks" (BFN, arXiv:2308.07037), Sec. 4; equation numbers are
those of that paper unless marked ParamReL (arXiv:2405.15268). Discretised data share the input
distribution, flow and updates (see `discretised`).

Every data dimension has the input distribution N(mu, 1 / rho). The prior is theta_0 = (0, 1) and
sigma1 is the standard deviation at t = 1 (the official code's `min_variance` is sigma1**2), so

  precision  rho(t)   = sigma1^(-2t) = 1 + beta(t)                  (Eq. 72)
  gamma(t)            = 1 - sigma1^(2t) = beta(t) / (1 + beta(t))    (Eq. 80)
  p_F(mu | x; t)      = N(gamma x, gamma (1 - gamma))                 (Eq. 77)
  alpha_i             = sigma1^(-2i/n) (1 - sigma1^(2/n))             (Eq. 95)

Every function is elementwise: its array arguments broadcast against each other, results come
back per element (no reduction) in the arguments' float dtype (for integer arguments alone, such
as step indices, the default float dtype: float64 under jax_enable_x64; see `float_dtype`), and
everything is jit-, vmap- and grad-safe. Hyperparameters (sigma1, n) are Python numbers; they are
checked where static.
"""

import math

import jax
import jax.numpy as jnp

from paramrel_jax.bfn.checks import (
  as_float,
  check_broadcast,
  check_num_steps,
  check_open_unit,
  float_dtype,
)

Array = jax.Array
ArrayLike = jax.typing.ArrayLike

LOG_2PI = math.log(2.0 * math.pi)


# --- schedules and the Bayesian flow -------------------------------------------------------------


def _log_sigma1(sigma1: float) -> Array:
  check_open_unit("sigma1", sigma1)
  return jnp.log(sigma1)


def gamma(t: ArrayLike, sigma1: float) -> Array:
  """gamma(t) = 1 - sigma1^(2t) (Eq. 80), the weight of x in the flow mean.

  Computed as -expm1(2 t ln sigma1), accurate also near t = 0.

  Args:
    t: flow times, any shape.
    sigma1: standard deviation of the input distribution at t = 1, in (0, 1).

  Returns:
    gamma of t's shape.
  """
  return -jnp.expm1(2 * jnp.asarray(t) * _log_sigma1(sigma1))


def precision(t: ArrayLike, sigma1: float) -> Array:
  """rho(t) = sigma1^(-2t) = 1 + beta(t) (Eq. 72), the precision of the input distribution at t.

  Args:
    t: flow times, any shape.
    sigma1: in (0, 1).

  Returns:
    rho of t's shape.
  """
  return jnp.exp(-2 * jnp.asarray(t) * _log_sigma1(sigma1))


def flow_mean(x: ArrayLike, t: ArrayLike, sigma1: float, eps: ArrayLike) -> Array:
  """A draw of the Bayesian flow distribution p_F(mu | x; t) = N(gamma x, gamma (1 - gamma)).

  mu = gamma x + sqrt(gamma (1 - gamma)) eps (Eq. 77), with 1 - gamma = sigma1^(2t) computed
  directly (as the official code does).

  Args:
    x: data in [-1, 1].
    t: flow times, broadcast against x.
    sigma1: in (0, 1).
    eps: standard-normal noise, broadcast against x.

  Returns:
    mu of the broadcast shape.
  """
  check_broadcast(x=x, t=t, eps=eps)
  log_var = 2 * jnp.asarray(t) * _log_sigma1(sigma1)
  g = -jnp.expm1(log_var)
  return g * x + jnp.sqrt(g * jnp.exp(log_var)) * eps


def sample_flow(key: Array, x: ArrayLike, t: ArrayLike, sigma1: float) -> tuple[Array, Array]:
  """theta = (mu, rho) ~ p_F(theta | x; t) (Eq. 77): the input parameters after time t.

  Args:
    key: PRNG key.
    x: data in [-1, 1].
    t: flow times, broadcast against x (e.g. (B, 1, 1, 1) for x of shape (B, H, W, C)).
    sigma1: in (0, 1).

  Returns:
    (mu, rho): mu of the broadcast shape of x and t, and the deterministic precision
    rho = sigma1^(-2t) of t's shape.
  """
  shape = check_broadcast(x=x, t=t)
  eps = jax.random.normal(key, shape, float_dtype(x, t))
  return flow_mean(x, t, sigma1, eps), precision(t, sigma1)


def accuracy(i: ArrayLike, n: int, sigma1: float) -> Array:
  """alpha_i = sigma1^(-2i/n) (1 - sigma1^(2/n)) (Eq. 95), the accuracy of step i of n.

  The accuracies add up to the precision: 1 + sum_{j <= i} alpha_j = rho(i / n).

  Args:
    i: step indices in 1..n (ints or floats), any shape.
    n: number of steps, >= 1.
    sigma1: in (0, 1).

  Returns:
    alpha of i's shape (float; the default float dtype for integer i).
  """
  check_num_steps(n)
  (i,) = as_float(i)  # integer i would compute in float32 even under x64
  log_sigma1 = _log_sigma1(sigma1)
  return jnp.exp(-2 * i / n * log_sigma1) * -jnp.expm1(2 / n * log_sigma1)


# --- Bayesian update ----------------------------------------------------------------------------


def bayesian_update(
  mu: ArrayLike, rho: ArrayLike, y: ArrayLike, alpha: ArrayLike
) -> tuple[Array, Array]:
  """Bayesian update h(theta, y, alpha) of N(mu, 1/rho) by an observation y of precision alpha.

  rho' = rho + alpha, mu' = (rho mu + alpha y) / rho' (Eq. 49-50).

  Args:
    mu, rho: input parameters; rho may be shared over dimensions (e.g. (B, 1, 1, 1)).
    y: observation (sender or receiver sample).
    alpha: accuracy of y.

  Returns:
    (mu_new, rho_new): mu_new of the broadcast shape of all four, rho_new of the broadcast
    shape of rho and alpha.
  """
  check_broadcast(mu=mu, rho=rho, y=y, alpha=alpha)
  mu, rho, y, alpha = as_float(mu, rho, y, alpha)
  rho_new = rho + alpha
  return (rho * mu + alpha * y) / rho_new, rho_new


def inverse_bayesian_update(
  mu_new: ArrayLike, rho_new: ArrayLike, y: ArrayLike, alpha: ArrayLike
) -> tuple[Array, Array]:
  """Inverse of `bayesian_update`: rho = rho_new - alpha, mu = (rho_new mu_new - alpha y) / rho.

  Args:
    mu_new, rho_new: parameters after the update.
    y: the observation of the update.
    alpha: its accuracy (alpha < rho_new).

  Returns:
    (mu, rho) with bayesian_update(mu, rho, y, alpha) == (mu_new, rho_new).
  """
  check_broadcast(mu_new=mu_new, rho_new=rho_new, y=y, alpha=alpha)
  mu_new, rho_new, y, alpha = as_float(mu_new, rho_new, y, alpha)
  rho = rho_new - alpha
  return (rho_new * mu_new - alpha * y) / rho, rho


# --- sender / receiver ----------------------------------------------------------------------------


def sender_log_prob(y: ArrayLike, x: ArrayLike, alpha: ArrayLike) -> Array:
  """ln p_S(y | x; alpha) = ln N(y; x, 1 / alpha) per element (Sec. 4).

  For the delta output distribution of continuous data the receiver p_R(y | x_hat; alpha) is the
  same density with x_hat in place of x.

  Args:
    y: sender samples.
    x: data (or x_hat for the receiver).
    alpha: accuracy.

  Returns:
    Log densities of the broadcast shape.
  """
  check_broadcast(y=y, x=x, alpha=alpha)
  y, x, alpha = as_float(y, x, alpha)
  return 0.5 * (jnp.log(alpha) - LOG_2PI) - 0.5 * alpha * jnp.square(y - x)


def sender_sample(key: Array, x: ArrayLike, alpha: ArrayLike) -> Array:
  """y ~ p_S(y | x; alpha) = N(x, 1 / alpha) (Sec. 4).

  With x = x_hat of a delta output distribution this is the receiver sample.

  Args:
    key: PRNG key.
    x: data (or x_hat).
    alpha: accuracy, broadcast against x.

  Returns:
    y of the broadcast shape.
  """
  shape = check_broadcast(x=x, alpha=alpha)
  noise = jax.random.normal(key, shape, float_dtype(x, alpha))
  return x + noise * jax.lax.rsqrt(jnp.asarray(alpha, noise.dtype))


# --- output distribution and losses -------------------------------------------------------------


def data_from_noise(
  mu: ArrayLike, eps_hat: ArrayLike, t: ArrayLike, sigma1: float, t_min: float
) -> tuple[Array, Array, Array]:
  """(mu / gamma - B eps_hat, B, t < t_min) with B = sqrt(sigma1^(2t) / gamma), t clamped to t_min.

  The official code's form: B uses sigma1^(2t) itself rather than 1 - gamma (whose float32
  rounding is large near t = 1). Clamping t keeps both branches of the caller's mask finite.
  """
  t = jnp.asarray(t)
  log_var = 2 * jnp.maximum(t, t_min) * _log_sigma1(sigma1)
  g = -jnp.expm1(log_var)
  scale = jnp.sqrt(jnp.exp(log_var) / g)
  return mu / g - scale * jnp.asarray(eps_hat), scale, t < t_min


def predict_x(
  mu: ArrayLike,
  eps_hat: ArrayLike,
  t: ArrayLike,
  sigma1: float,
  t_min: float = 1e-6,
  clip: bool = True,
) -> Array:
  """Data prediction from a noise prediction (ParamReL Eq. 10, BFN Eq. 84).

  x_hat = mu / gamma - sqrt((1 - gamma) / gamma) eps_hat, exactly 0 where t < t_min, then
  clipped to [-1, 1] when `clip`.

  Args:
    mu: input means.
    eps_hat: the network's estimate of the flow noise eps of `flow_mean`.
    t: flow times, broadcast against mu.
    sigma1: in (0, 1).
    t_min: times below it predict 0.
    clip: clip the prediction to the data range [-1, 1].

  Returns:
    x_hat of the broadcast shape.
  """
  check_broadcast(mu=mu, eps_hat=eps_hat, t=t)
  x_hat, _, masked = data_from_noise(mu, eps_hat, t, sigma1, t_min)
  x_hat = jnp.where(masked, jnp.zeros_like(x_hat), x_hat)
  return jnp.clip(x_hat, -1.0, 1.0) if clip else x_hat


def ctime_loss(x: ArrayLike, x_hat: ArrayLike, t: ArrayLike, sigma1: float) -> Array:
  """Continuous-time loss L^inf = -ln(sigma1) sigma1^(-2t) (x - x_hat)^2 per element (Eq. 101).

  Args:
    x: data.
    x_hat: data predictions.
    t: flow times.
    sigma1: in (0, 1).

  Returns:
    Losses in nats of the broadcast shape.
  """
  check_broadcast(x=x, x_hat=x_hat, t=t)
  log_sigma1 = _log_sigma1(sigma1)
  weight = -log_sigma1 * jnp.exp(-2 * jnp.asarray(t) * log_sigma1)
  return weight * jnp.square(jnp.asarray(x) - x_hat)


def dtime_loss(x: ArrayLike, x_hat: ArrayLike, i: ArrayLike, n: int, sigma1: float) -> Array:
  """n-step loss L^n = n alpha_i (x - x_hat)^2 / 2 per element (Eq. 96).

  n times the KL between the sender N(x, 1/alpha_i) and the receiver N(x_hat, 1/alpha_i) of
  step i, where x_hat is predicted from the parameters at t = (i - 1) / n (closed form, no
  sampling).

  Args:
    x: data.
    x_hat: data predictions.
    i: step indices in 1..n.
    n: number of steps.
    sigma1: in (0, 1).

  Returns:
    Losses in nats of the broadcast shape.
  """
  check_broadcast(x=x, x_hat=x_hat, i=i)
  x, x_hat, i = as_float(x, x_hat, i)  # alpha in the data's dtype, float64 for float64 data
  return n * accuracy(i, n, sigma1) * jnp.square(x - x_hat) / 2


def reconstruction_loss(x: ArrayLike, x_hat: ArrayLike, sigma1: float) -> Array:
  """-ln N(x; x_hat, sigma1^2) per element: the reconstruction loss of unquantised data.

  The delta output distribution at t = 1 has no density, so truly continuous data (table columns)
  are scored as if measured with Normal noise of the input distribution's final std sigma1 (BFN
  Sec. 4.8 allows either this or a quantisation of the data; quantised data use
  `discretised.delta_reconstruction_loss`). A density, in nats per unit of x: it is negative
  where x_hat lies within about sigma1 of x.

  Args:
    x: data.
    x_hat: predictions at t = 1.
    sigma1: in (0, 1).

  Returns:
    Losses in nats of the broadcast shape.
  """
  check_open_unit("sigma1", sigma1)
  x, x_hat = as_float(x, x_hat)
  return -sender_log_prob(x, x_hat, jnp.asarray(sigma1**-2, x.dtype))
