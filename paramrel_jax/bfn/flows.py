"""Flow objects: one interface over the continuous, discretised and discrete Bayesian flows.

Everything above the math (objective, training, sampling) talks to a `Flow`: a frozen, hashable
dataclass (a static pytree, so it can be closed over or passed to `jax.jit`) whose methods are
thin wrappers of the module-level functions of `continuous`, `discretised` and `discrete`.

Shapes: data x is (B, ...) (images: (B, H, W, C)); flow times t are (B,); step indices i and
accuracies alpha are (B,) or scalars. Per-example quantities of shape (B,) are broadcast against
the data as (B, 1, ..., 1) inside the methods. Network outputs have C * P channels, P =
`params_per_dim`, laid out channel-major: reshaped to (B, H, W, C, P).

Input parameters (pytrees):
  GaussianTheta(mu (B, ...), rho (B, 1, ..., 1))        continuous and discretised
  CategoricalTheta(log_probs (B, ..., K))               discrete, normalised log-probabilities
The networks read `net_input(theta)` (B, H, W, Cin); `data_input(x)` puts data in that format
(theta at the data itself), for a self-encoder that reads x.
Output distributions (pytrees):
  DeltaOutput(x_hat)                                    continuous (ParamReL Eq. 10)
  DiscretisedNormalOutput(mean, std)                    discretised, K bins
  CategoricalOutput(log_probs); `.probs` = exp          discrete

All flow math stays in the float dtype of the data / parameters (float32, or float64 under x64);
network outputs in bfloat16 are upcast, never the reverse. Where only integers come in (step
indices, class indices, shapes), results take the default float dtype (`jnp.result_type(float)`:
float64 under x64, else float32) unless a `dtype` is passed.
"""

import dataclasses
import math
from typing import ClassVar, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from paramrel_jax.bfn import checks, continuous, discrete, discretised

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


class ImageFormat(NamedTuple):
  """The images a flow models, as the data pipeline prepares them: binarised (int 0 / 1) or
  floats in [-1, 1] quantised to `num_bins` bin centres (0: not quantised)."""

  binarized: bool
  num_bins: int


class GaussianTheta(NamedTuple):
  """Input parameters N(mu, 1/rho): mu (B, ...) and the shared precision rho (B, 1, ..., 1)."""

  mu: Array
  rho: Array


class CategoricalTheta(NamedTuple):
  """Input parameters of discrete data: normalised log-probabilities (B, ..., K)."""

  log_probs: Array

  @property
  def probs(self) -> Array:
    return jnp.exp(self.log_probs)


class DeltaOutput(NamedTuple):
  """Delta output distribution at the data prediction x_hat (B, ...) (ParamReL Eq. 10)."""

  x_hat: Array


class DiscretisedNormalOutput(NamedTuple):
  """Normal(mean, std) discretised to the flow's K bins; mean, std (B, ...)."""

  mean: Array
  std: Array


class CategoricalOutput(NamedTuple):
  """Categorical output distribution: log-probabilities (B, ..., K); `.probs` their exp."""

  log_probs: Array

  @property
  def probs(self) -> Array:
    return jnp.exp(self.log_probs)


Theta = GaussianTheta | CategoricalTheta
OutputDist = DeltaOutput | DiscretisedNormalOutput | CategoricalOutput


# --- helpers -------------------------------------------------------------------------------------


def _per_example(value: ArrayLike, ndim: int, dtype=None) -> Array:
  """A (B,) per-example value reshaped to (B, 1, ..., 1) of rank ndim; other ranks unchanged."""
  value = jnp.asarray(value, dtype)
  if value.ndim == 1:
    return value.reshape(value.shape + (1,) * (ndim - 1))
  return value


def _sum_per_example(loss: Array) -> Array:
  """Sum over every axis but the first: (B, ...) -> (B,)."""
  return jnp.sum(loss, axis=tuple(range(1, loss.ndim)))


def _batch_shape(data_shape: tuple[int, ...]) -> tuple[int, ...]:
  if len(data_shape) < 1 or any(int(d) < 0 for d in data_shape):
    raise ValueError(f"data_shape must be (B, ...) of non-negative ints, got {data_shape}.")
  return (int(data_shape[0]),) + (1,) * (len(data_shape) - 1)


def _data_dtype(x: ArrayLike) -> jnp.dtype:
  """Float dtype of continuous / discretised data (at least float32)."""
  return checks.float_dtype(x)


def _out_dtype(net_out: ArrayLike, reference: ArrayLike) -> jnp.dtype:
  """Dtype of the output distribution: the network output upcast to the parameters' dtype."""
  return jnp.promote_types(jnp.result_type(net_out), jnp.result_type(reference))


def _check_net_out(net_out: ArrayLike, data_shape: tuple[int, ...], per_dim: int) -> None:
  expected = tuple(data_shape[:-1]) + (data_shape[-1] * per_dim,)
  if tuple(jnp.shape(net_out)) != expected:
    raise ValueError(
      f"net_out must have shape {expected} ({per_dim} per data channel), "
      f"got {tuple(jnp.shape(net_out))}."
    )


def _host_data(x: ArrayLike) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim < 1:
    raise ValueError(f"x must have a leading batch axis, got shape {x.shape}.")
  return x


def _check_float_data(x: np.ndarray) -> None:
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"x must be a float array in [-1, 1], got dtype {x.dtype}.")
  if not np.all(np.isfinite(x)) or np.any(np.abs(x) > 1):
    raise ValueError(f"x must lie in [-1, 1], got values in [{x.min()}, {x.max()}].")


def _check_sigma1(sigma1) -> float:
  sigma1 = float(sigma1)
  if not 0 < sigma1 < 1:
    raise ValueError(f"sigma1 must lie in (0, 1), got {sigma1}.")
  return sigma1


def _check_num_samples(num_samples) -> None:
  checks.check_static_int("num_samples", num_samples, 1)


# --- flows ---------------------------------------------------------------------------------------


class _ArrayBatches:
  """Methods on whole batches shared by the flows of one array x (B, ...): every element of x is
  known (unlike a record's missing cells, `mixed.MixedFlow`). The batch checks read x as images
  (B, H, W, C), the layout of the image networks."""

  def check_batch(self, x: Array) -> None:
    """Raises ValueError unless x is a batch of images (B, H, W, C) of this flow's dtype: int
    class indices (discrete data) or floats in [-1, 1]."""
    if jnp.ndim(x) != 4:
      raise ValueError(f"x0 must have shape (B, H, W, C), got {jnp.shape(x)}.")
    integer = jnp.issubdtype(x.dtype, jnp.integer)
    if self.integer_data != integer:
      kind = "int class indices" if self.integer_data else "floats in [-1, 1]"
      raise ValueError(f"x0 for {self.data_type} data must hold {kind}, got dtype {x.dtype}.")

  def codes_layout(self, z: Array, u: Array) -> tuple[int, tuple[int, ...]]:
    """(n, data shape (B, H, W, C)) of codes z (B, L) with subcodes (B or 1, n, H, W, C[, K]) (a
    batch of 1 is shared by all z); raises ValueError for other shapes."""
    extra = self.y_event_ndim
    if jnp.ndim(z) != 2 or jnp.ndim(u) != 5 + extra or jnp.shape(u)[0] not in (1, z.shape[0]):
      raise ValueError(
        f"codes must hold z (B, L) and subcodes (B or 1, n, H, W, C{', K' if extra else ''}), "
        f"got {jnp.shape(z)} and {jnp.shape(u)}."
      )
    return u.shape[1], (z.shape[0],) + u.shape[2:5]

  def batch_prior(self, x: Array, dtype=None) -> Theta:
    """theta_0 of the batch x: `prior(x.shape, dtype)`."""
    return self.prior(tuple(x.shape), dtype)

  def data_sample(self, key: Array, x: Array, out: OutputDist, alpha: ArrayLike) -> Array:
    """y of a step that reads the data x: the sender sample y ~ p_S(. | x; alpha) (`out`, the
    receiver a missing cell would draw from, is unused: no element is missing)."""
    del out
    return self.sender_sample(key, x, alpha)

  def column_ctime_losses(self, x: Array, out: OutputDist, t: Array) -> dict[str, Array]:
    """{}: an array has no named columns (a record's: `mixed.MixedFlow`)."""
    del x, out, t
    return {}

  def column_dtime_losses(
    self, key: Array, x: Array, out: OutputDist, i: Array, n: int, num_samples: int = 1
  ) -> dict[str, Array]:
    """{}: an array has no named columns."""
    del key, x, out, i, n, num_samples
    return {}

  def column_reconstruction_losses(self, x: Array, out: OutputDist) -> dict[str, Array]:
    """{}: an array has no named columns."""
    del x, out
    return {}

  def agreement(self, x0: Array, x: Array) -> dict[str, Array]:
    """Per-example agreement of an estimate x with the data x0 (B, ...), (B,) each:
    'max_abs_error' (float data) and 'accuracy' (data of finitely many values: the fraction of
    elements equal to x0's)."""
    axes = tuple(range(1, jnp.ndim(x0)))
    stats = {}
    if not self.integer_data:
      stats["max_abs_error"] = jnp.max(jnp.abs(x - x0), axis=axes)
    if self.finite_values:
      stats["accuracy"] = jnp.mean((x == x0).astype(jnp.float32), axis=axes)
    return stats


class _GaussianFlow(_ArrayBatches):
  """Methods shared by the flows with a Gaussian input distribution (continuous, discretised)."""

  def image_pixels(self, x: ArrayLike) -> np.ndarray:
    """Host-side 8-bit intensities of floats in [-1, 1] (clipped): round(127.5 (x + 1)), uint8."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
      raise ValueError(f"{self.data_type} images must be floats in [-1, 1], got dtype {x.dtype}.")
    return np.rint((np.clip(x.astype(np.float64), -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)

  def prior(self, data_shape: tuple[int, ...], dtype=None) -> GaussianTheta:
    """theta_0 = (0, 1) for a batch of shape (B, ...), in dtype (default: the default float)."""
    batch_shape = _batch_shape(data_shape)  # checked before any array is made
    dtype = jnp.result_type(float) if dtype is None else dtype
    return GaussianTheta(jnp.zeros(data_shape, dtype), jnp.ones(batch_shape, dtype))

  def sample_flow(self, key: Array, x: Array, t: Array) -> GaussianTheta:
    """theta ~ p_F(theta | x; t) (BFN Eq. 77); x (B, ...), t (B,)."""
    mu, rho = continuous.sample_flow(key, x, _per_example(t, x.ndim, _data_dtype(x)), self.sigma1)
    return GaussianTheta(mu, rho)

  def net_input(self, theta: GaussianTheta) -> Array:
    """The network input: the means mu (B, ...)."""
    return theta.mu

  def data_input(self, x: Array) -> Array:
    """The data in `net_input`'s format: x itself (B, ...), in [-1, 1]."""
    return x.astype(_data_dtype(x))

  def accuracy(self, i: ArrayLike, n: int, dtype=None) -> Array:
    """alpha_i (BFN Eq. 95) of i's shape, in dtype.

    The default dtype None keeps i's float dtype, or gives the default float dtype (float64 under
    x64) for integer i.
    """
    alpha = continuous.accuracy(i, n, self.sigma1)
    return alpha if dtype is None else alpha.astype(dtype)

  def ctime_weight(self, t: Array) -> Array:
    """Weight -ln(sigma1) sigma1^(-2t) of the squared error ||x - x_hat||^2 in L^inf, t's shape."""
    log_sigma1 = math.log(self.sigma1)
    return -log_sigma1 * jnp.exp(-2.0 * log_sigma1 * t)

  def mean_ctime_weight(self) -> float:
    """The mean of `ctime_weight` over t ~ U[0, 1]: (sigma1^(-2) - 1) / 2."""
    return (self.sigma1**-2 - 1.0) / 2.0

  def sender_sample(self, key: Array, x: Array, alpha: ArrayLike) -> Array:
    """y ~ N(x, 1 / alpha), alpha (B,) or scalar."""
    return continuous.sender_sample(key, x, _per_example(alpha, x.ndim, _data_dtype(x)))

  def bayesian_update(self, theta: GaussianTheta, y: Array, alpha: ArrayLike) -> GaussianTheta:
    """h(theta, y, alpha) (BFN Eq. 49-50)."""
    dtype = theta.mu.dtype
    alpha = _per_example(alpha, theta.mu.ndim, dtype)
    return GaussianTheta(*continuous.bayesian_update(theta.mu, theta.rho, y.astype(dtype), alpha))

  def receiver_moments(self, out, alpha: ArrayLike) -> tuple[Array, Array]:
    """(m, s) with p_R(y | out; alpha) = N(m, s^2) in the reparameterised form y = m + s u.

    m is the output distribution's mean (`output_mean`) and s = alpha^(-1/2), broadcastable.
    Reverse sampling (ParamReL Eq. 5) inverts y = m + s u into the subcode u.
    """
    m = self.output_mean(out)
    return m, jax.lax.rsqrt(_per_example(alpha, m.ndim, m.dtype))

  def inverse_bayesian_update(
    self, theta_new: GaussianTheta, y: Array, alpha: ArrayLike
  ) -> GaussianTheta:
    """theta with bayesian_update(theta, y, alpha) == theta_new."""
    dtype = theta_new.mu.dtype
    alpha = _per_example(alpha, theta_new.mu.ndim, dtype)
    return GaussianTheta(
      *continuous.inverse_bayesian_update(theta_new.mu, theta_new.rho, y.astype(dtype), alpha)
    )


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class ContinuousFlow(_GaussianFlow):
  """Bayesian flow of continuous data in [-1, 1] with a delta output distribution (BFN Sec. 4).

  The network predicts the flow noise eps (one channel per data channel); x_hat follows from
  ParamReL Eq. 10 (clipped to [-1, 1]).

  Attributes:
    sigma1: standard deviation of the input distribution at t = 1, in (0, 1).
    num_bins: bins of the data's quantisation, used only by `reconstruction_loss`, which scores x
      under a Normal around x_hat discretised to these bins (as the official code); 0 for data
      that are not quantised (table columns), scored by the Normal's density instead.
  """

  sigma1: float
  num_bins: int = 256

  data_type: ClassVar[str] = "continuous"
  params_per_dim: ClassVar[int] = 1
  input_channels_per_dim: ClassVar[int] = 1
  integer_data: ClassVar[bool] = False  # x holds floats
  finite_values: ClassVar[bool] = False  # x takes a continuum of values: compare by error
  y_event_ndim: ClassVar[int] = 0  # sender samples y have x's shape

  def __post_init__(self):
    object.__setattr__(self, "sigma1", _check_sigma1(self.sigma1))
    num_bins = checks.check_static_int("num_bins", self.num_bins, 0)
    if num_bins == 1:
      raise ValueError("num_bins must be 0 (data not quantised) or >= 2, got 1.")
    object.__setattr__(self, "num_bins", num_bins)

  def image_format(self) -> ImageFormat:
    """Float images, not quantised (`num_bins` only scores the reconstruction, Eq. 10)."""
    return ImageFormat(binarized=False, num_bins=0)

  def validate_data(self, x: ArrayLike) -> None:
    """Host-side check: x is a float array (B, ...) with finite values in [-1, 1]."""
    _check_float_data(_host_data(x))

  def output_dist(self, net_out: Array, theta: GaussianTheta, t: Array) -> DeltaOutput:
    """x_hat = mu / gamma - sqrt((1 - gamma) / gamma) eps_hat (ParamReL Eq. 10), clipped.

    Args:
      net_out: (B, ..., C) predicted noise eps_hat.
      theta: the input parameters the network saw.
      t: (B,) flow times.
    """
    _check_net_out(net_out, theta.mu.shape, 1)
    dtype = _out_dtype(net_out, theta.mu)
    t = _per_example(t, theta.mu.ndim, dtype)
    return DeltaOutput(continuous.predict_x(theta.mu, net_out.astype(dtype), t, self.sigma1))

  def ctime_loss(self, x: Array, out: DeltaOutput, t: Array) -> Array:
    """L^inf (BFN Eq. 101) summed over dimensions: (B,)."""
    t = _per_example(t, x.ndim, out.x_hat.dtype)
    return _sum_per_example(continuous.ctime_loss(x, out.x_hat, t, self.sigma1))

  def dtime_loss(
    self, key: Array, x: Array, out: DeltaOutput, i: Array, n: int, num_samples: int = 1
  ) -> Array:
    """L^n (BFN Eq. 96) summed over dimensions: (B,).

    The Gaussian KL is exact, so `key` and `num_samples` are not used.
    """
    del key
    _check_num_samples(num_samples)
    loss = continuous.dtime_loss(x, out.x_hat, _per_example(i, x.ndim), n, self.sigma1)
    return _sum_per_example(loss.astype(out.x_hat.dtype))

  def reconstruction_loss(self, x: Array, out: DeltaOutput) -> Array:
    """-ln p(x | theta_1) around x_hat: (B,). Quantised data (num_bins >= 2): the official
    discretised Normal, a probability; else the density N(x; x_hat, sigma1^2)."""
    if self.num_bins:
      loss = discretised.delta_reconstruction_loss(x, out.x_hat, self.sigma1, self.num_bins)
    else:
      loss = continuous.reconstruction_loss(x, out.x_hat, self.sigma1)
    return _sum_per_example(loss)

  def receiver_sample(self, key: Array, out: DeltaOutput, alpha: ArrayLike) -> Array:
    """y ~ p_R = N(x_hat, 1 / alpha)."""
    return self.sender_sample(key, out.x_hat, alpha)

  def output_mean(self, out: DeltaOutput) -> Array:
    """The mean of the output distribution: x_hat."""
    return out.x_hat

  def flow_estimate(self, theta: GaussianTheta) -> Array:
    """The data read off the input parameters alone: mu."""
    return theta.mu

  def data_estimate(self, out: DeltaOutput) -> Array:
    """x_hat."""
    return out.x_hat

  def sample_output(self, key: Array, out: DeltaOutput) -> Array:
    """A draw of the delta distribution: x_hat (the key is not used)."""
    del key
    return out.x_hat

  def point_of_draws(self, draws: Array) -> Array:
    """The point estimate (B, ...) of K draws (K, B, ...): their mean."""
    return jnp.mean(draws, axis=0)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class DiscretisedFlow(_GaussianFlow):
  """Bayesian flow of data on K bin centres in [-1, 1] (BFN Sec. 5).

  The network predicts the flow noise's mean (and, with `predict_std`, its log std) per data
  channel; the output is a Normal discretised to the K bins, mapped from the noise prediction as
  the official code does (`discretised.predict_mean_std`). Without `predict_std` the noise std is
  taken as 1 (log_std_eps = 0), i.e. std = sqrt(sigma1^(2t) / gamma) clipped to [1e-3, 10].

  Attributes:
    sigma1: standard deviation of the input distribution at t = 1, in (0, 1).
    num_bins: K >= 2 bins.
    predict_std: whether the network also predicts a log std (2 outputs per data channel).
  """

  sigma1: float
  num_bins: int
  predict_std: bool = False

  data_type: ClassVar[str] = "discretised"
  input_channels_per_dim: ClassVar[int] = 1
  integer_data: ClassVar[bool] = False  # x holds floats (the bin centres)
  finite_values: ClassVar[bool] = True  # x takes K values: compare by error and by equality
  y_event_ndim: ClassVar[int] = 0

  def __post_init__(self):
    object.__setattr__(self, "sigma1", _check_sigma1(self.sigma1))
    object.__setattr__(self, "num_bins", checks.check_static_int("num_bins", self.num_bins, 2))
    object.__setattr__(self, "predict_std", bool(self.predict_std))

  @property
  def params_per_dim(self) -> int:
    return 2 if self.predict_std else 1

  def image_format(self) -> ImageFormat:
    """Float images quantised to the K bin centres."""
    return ImageFormat(binarized=False, num_bins=self.num_bins)

  def validate_data(self, x: ArrayLike) -> None:
    """Host-side check: x is a float array (B, ...) in [-1, 1] on the bin centres."""
    x = _host_data(x)
    _check_float_data(x)
    centres = np.asarray(discretised.quantize(x, self.num_bins))
    if np.any(np.abs(x - centres) > 1e-3 / self.num_bins):
      raise ValueError(
        f"x must lie on the {self.num_bins} bin centres (2k + 1)/K - 1; max "
        f"distance {np.abs(x - centres).max()}."
      )

  def output_dist(self, net_out: Array, theta: GaussianTheta, t: Array) -> DiscretisedNormalOutput:
    """(mean, std) from the noise prediction (eps_mean[, log_std_eps]) per data channel.

    Args:
      net_out: (B, ..., C * P), reshaped to (B, ..., C, P): [..., 0] the noise mean, [..., 1]
        its log std (predict_std only).
      theta: the input parameters the network saw.
      t: (B,) flow times.
    """
    shape = theta.mu.shape
    _check_net_out(net_out, shape, self.params_per_dim)
    dtype = _out_dtype(net_out, theta.mu)
    params = net_out.astype(dtype).reshape(shape + (self.params_per_dim,))
    eps_mean = params[..., 0]
    log_std = params[..., 1] if self.predict_std else jnp.zeros_like(eps_mean)
    t = _per_example(t, len(shape), dtype)
    return DiscretisedNormalOutput(
      *discretised.predict_mean_std(theta.mu, eps_mean, log_std, t, self.sigma1)
    )

  def bin_probs(self, out: DiscretisedNormalOutput) -> Array:
    """(B, ..., K) bin probabilities of the output distribution."""
    return discretised.bin_probs(out.mean, out.std, self.num_bins)

  def ctime_loss(self, x: Array, out: DiscretisedNormalOutput, t: Array) -> Array:
    """L^inf at the discretised distribution's mean (BFN Sec. 5), summed: (B,)."""
    t = _per_example(t, x.ndim, out.mean.dtype)
    x_hat = discretised.normal_bin_mean(out.mean, out.std, self.num_bins)
    return _sum_per_example(continuous.ctime_loss(x, x_hat, t, self.sigma1))

  def dtime_loss(
    self, key: Array, x: Array, out: DiscretisedNormalOutput, i: Array, n: int, num_samples: int = 1
  ) -> Array:
    """L^n (BFN Sec. 5), Monte-Carlo over num_samples sender samples, summed: (B,)."""
    loss = discretised.dtime_loss(
      key,
      x,
      self.bin_probs(out),
      _per_example(i, x.ndim),
      n,
      self.sigma1,
      self.num_bins,
      num_samples,
    )
    return _sum_per_example(loss)

  def reconstruction_loss(self, x: Array, out: DiscretisedNormalOutput) -> Array:
    """-ln p_O(x | theta_1) of the discretised Normal, summed: (B,)."""
    return _sum_per_example(discretised.reconstruction_loss(x, out.mean, out.std, self.num_bins))

  def receiver_sample(self, key: Array, out: DiscretisedNormalOutput, alpha: ArrayLike) -> Array:
    """y ~ p_R: a bin centre from the output distribution, then y ~ N(., 1 / alpha)."""
    alpha = _per_example(alpha, out.mean.ndim, out.mean.dtype)
    return discretised.receiver_sample(key, out.mean, out.std, alpha, self.num_bins)

  def output_mean(self, out: DiscretisedNormalOutput) -> Array:
    """The mean of the discretised output distribution over the bin centres."""
    return discretised.distribution_mean(self.bin_probs(out))

  def flow_estimate(self, theta: GaussianTheta) -> Array:
    """The data read off the input parameters alone: mu moved to its bin centre."""
    return discretised.quantize(theta.mu, self.num_bins)

  def data_estimate(self, out: DiscretisedNormalOutput) -> Array:
    """The discretised distribution's mean, moved to its bin centre."""
    x_hat = discretised.normal_bin_mean(out.mean, out.std, self.num_bins)
    return discretised.quantize(x_hat, self.num_bins)

  def sample_output(self, key: Array, out: DiscretisedNormalOutput) -> Array:
    """A draw of the discretised Normal (bin centres)."""
    return discretised.sample(key, out.mean, out.std, self.num_bins)

  def point_of_draws(self, draws: Array) -> Array:
    """The point estimate (B, ...) of K draws (K, B, ...): their mean, moved to its bin centre."""
    return discretised.quantize(jnp.mean(draws, axis=0), self.num_bins)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class DiscreteFlow(_ArrayBatches):
  """Bayesian flow of int class indices in [0, K) (BFN Sec. 6).

  K = 2: the network sees 2 p_0 - 1 and predicts one Bernoulli logit of class 1 per data channel
  (the official binarised-MNIST setting); K > 2: it sees the K probabilities and predicts K
  logits per data channel.

  Attributes:
    beta1: beta(1) > 0 (the official `max_sqrt_beta`**2).
    num_classes: K >= 2.
  """

  beta1: float
  num_classes: int

  data_type: ClassVar[str] = "discrete"
  integer_data: ClassVar[bool] = True  # x holds int class indices
  finite_values: ClassVar[bool] = True  # compare by equality
  y_event_ndim: ClassVar[int] = 1  # sender samples y have a trailing class axis of K

  def __post_init__(self):
    beta1 = float(self.beta1)
    if not beta1 > 0:
      raise ValueError(f"beta1 must be > 0, got {self.beta1}.")
    object.__setattr__(self, "beta1", beta1)
    object.__setattr__(
      self, "num_classes", checks.check_static_int("num_classes", self.num_classes, 2)
    )

  @property
  def params_per_dim(self) -> int:
    return 1 if self.num_classes == 2 else self.num_classes

  @property
  def input_channels_per_dim(self) -> int:
    return 1 if self.num_classes == 2 else self.num_classes

  def validate_data(self, x: ArrayLike) -> None:
    """Host-side check: x is an int array (B, ...) of classes in [0, K)."""
    x = _host_data(x)
    if not np.issubdtype(x.dtype, np.integer):
      raise ValueError(f"x must be an int array of class indices, got dtype {x.dtype}.")
    if x.size and (x.min() < 0 or x.max() >= self.num_classes):
      raise ValueError(
        f"x must hold classes in [0, {self.num_classes}), got values in [{x.min()}, {x.max()}]."
      )

  def image_format(self) -> ImageFormat:
    """Binarised images; raises ValueError unless K = 2."""
    if self.num_classes != 2:
      raise ValueError(f"flow.num_classes={self.num_classes} but binarised images have 2 classes.")
    return ImageFormat(binarized=True, num_bins=0)

  def image_pixels(self, x: ArrayLike) -> np.ndarray:
    """Host-side 8-bit intensities of classes in [0, K): class k is round(255 k / (K - 1))."""
    self.validate_data(x)
    return np.rint(np.asarray(x, np.float64) * (255.0 / (self.num_classes - 1))).astype(np.uint8)

  def ctime_weight(self, t: Array) -> Array:
    """Weight K beta1 t of the squared error ||e_x - p||^2 in L^inf, t's shape."""
    return self.num_classes * self.beta1 * t

  def mean_ctime_weight(self) -> float:
    """The mean of `ctime_weight` over t ~ U[0, 1]: K beta1 / 2."""
    return self.num_classes * self.beta1 / 2.0

  def prior(self, data_shape: tuple[int, ...], dtype=None) -> CategoricalTheta:
    """The uniform theta_0 for a batch of shape (B, ...): log_probs (B, ..., K) = -ln K.

    In dtype (default: the default float dtype).
    """
    _batch_shape(data_shape)
    dtype = jnp.result_type(float) if dtype is None else dtype
    shape = tuple(data_shape) + (self.num_classes,)
    return CategoricalTheta(jnp.full(shape, -math.log(self.num_classes), dtype))

  def sample_flow(self, key: Array, x: Array, t: Array) -> CategoricalTheta:
    """theta ~ p_F(theta | x; t) (BFN Sec. 6); x (B, ...), t (B,) float."""
    t = _per_example(t, x.ndim)
    return CategoricalTheta(discrete.sample_flow(key, x, t, self.beta1, self.num_classes))

  def net_input(self, theta: CategoricalTheta) -> Array:
    """2 p_0 - 1 (B, ..., C) for K = 2, else the probabilities (B, ..., C * K)."""
    return self._channels(discrete.network_input(theta.log_probs))

  def data_input(self, x: Array) -> Array:
    """The data in `net_input`'s format, theta = e_x: 1 - 2x (B, ..., C) for K = 2 (+1 for class
    0, as 2 p_0 - 1), else the one-hot e_x (B, ..., C * K), in the default float dtype."""
    return self._channels(discrete.data_network_input(x, self.num_classes))

  def _channels(self, net_in: Array) -> Array:
    """K > 2: the classes folded into the channels, (B, ..., C, K) -> (B, ..., C * K)."""
    if self.num_classes == 2:
      return net_in
    return net_in.reshape(net_in.shape[:-2] + (-1,))

  def output_dist(self, net_out: Array, theta: CategoricalTheta, t: Array) -> CategoricalOutput:
    """Bernoulli (K = 2) or categorical (K > 2) output distribution from the logits.

    Args:
      net_out: (B, ..., C * P) logits, reshaped to (B, ..., C, K) for K > 2.
      theta: the input parameters the network saw (used for shapes and dtype).
      t: (B,) flow times (not used: the network's logits are the distribution).
    """
    del t
    shape = theta.log_probs.shape[:-1]
    _check_net_out(net_out, shape, self.params_per_dim)
    logits = net_out.astype(_out_dtype(net_out, theta.log_probs))
    if self.num_classes > 2:
      logits = logits.reshape(shape + (self.num_classes,))
    return CategoricalOutput(discrete.output_log_probs(logits, self.num_classes))

  def ctime_loss(self, x: Array, out: CategoricalOutput, t: Array) -> Array:
    """L^inf = K beta1 t ||e_x - p||^2 (BFN Eq. 205), summed: (B,)."""
    t = _per_example(t, x.ndim, out.log_probs.dtype)
    return _sum_per_example(discrete.ctime_loss(x, out.probs, t, self.beta1, self.num_classes))

  def dtime_loss(
    self, key: Array, x: Array, out: CategoricalOutput, i: Array, n: int, num_samples: int = 1
  ) -> Array:
    """L^n (BFN Eq. 189-190), Monte-Carlo over num_samples sender samples, summed: (B,)."""
    loss = discrete.dtime_loss(
      key, x, out.log_probs, _per_example(i, x.ndim), n, self.beta1, self.num_classes, num_samples
    )
    return _sum_per_example(loss)

  def reconstruction_loss(self, x: Array, out: CategoricalOutput) -> Array:
    """-ln p_O(x | theta_1), summed: (B,)."""
    return _sum_per_example(discrete.reconstruction_loss(x, out.log_probs))

  def accuracy(self, i: ArrayLike, n: int, dtype=None) -> Array:
    """alpha_i = beta1 (2i - 1) / n^2 of i's shape, in dtype (None: as `_GaussianFlow.accuracy`)."""
    alpha = discrete.accuracy(i, n, self.beta1)
    return alpha if dtype is None else alpha.astype(dtype)

  def sender_sample(self, key: Array, x: Array, alpha: ArrayLike) -> Array:
    """y ~ N(alpha (K e_x - 1), alpha K I): (B, ..., K); alpha (B,) or scalar."""
    return discrete.sender_sample(key, x, _per_example(alpha, x.ndim), self.num_classes)

  def receiver_sample(self, key: Array, out: CategoricalOutput, alpha: ArrayLike) -> Array:
    """y ~ p_R: a class from the output distribution, then y ~ p_S(. | class; alpha)."""
    log_probs = out.log_probs
    alpha = _per_example(alpha, log_probs.ndim - 1, log_probs.dtype)
    return discrete.receiver_sample(key, log_probs, alpha, self.num_classes)

  def bayesian_update(
    self, theta: CategoricalTheta, y: Array, alpha: ArrayLike
  ) -> CategoricalTheta:
    """h(theta, y) in log space; alpha is carried by y's scale and not used."""
    del alpha
    log_probs = theta.log_probs
    return CategoricalTheta(discrete.update_log_probs(log_probs, y.astype(log_probs.dtype)))

  def inverse_bayesian_update(
    self, theta_new: CategoricalTheta, y: Array, alpha: ArrayLike
  ) -> CategoricalTheta:
    """theta with bayesian_update(theta, y, alpha) == theta_new."""
    del alpha
    log_probs = theta_new.log_probs
    return CategoricalTheta(discrete.inverse_update_log_probs(log_probs, y.astype(log_probs.dtype)))

  def receiver_moments(self, out: CategoricalOutput, alpha: ArrayLike) -> tuple[Array, Array]:
    """(m, s) with p_R(y | out; alpha) ~ N(m, s^2) per class in the reparameterised form
    y = m + s u: m = alpha (K p - 1) (B, ..., K), s = sqrt(alpha K) (BFN Eq. 187 with the
    output probabilities p in place of e_x)."""
    probs = out.probs
    a = _per_example(alpha, probs.ndim, probs.dtype)
    k = self.num_classes
    return a * (k * probs - 1.0), jnp.sqrt(a * k)

  def flow_estimate(self, theta: CategoricalTheta) -> Array:
    """The data read off the input parameters alone: the most probable class, int32."""
    return jnp.argmax(theta.log_probs, axis=-1).astype(jnp.int32)

  def data_estimate(self, out: CategoricalOutput) -> Array:
    """The most probable class, int32 (B, ...)."""
    return jnp.argmax(out.log_probs, axis=-1).astype(jnp.int32)

  def sample_output(self, key: Array, out: CategoricalOutput) -> Array:
    """A class drawn from the output distribution, int32 (B, ...)."""
    return discrete.sample(key, out.log_probs)

  def point_of_draws(self, draws: Array) -> Array:
    """The point estimate (B, ...) of K draws (K, B, ...): the most frequent class (ties to the
    lower class), in the draws' dtype."""
    votes = jax.nn.one_hot(draws, self.num_classes, dtype=jnp.int32).sum(0)
    return jnp.argmax(votes, axis=-1).astype(draws.dtype)


class Flow(Protocol):  # pragma: no mutate block (a type: its stubs never run)
  """What every flow offers; code outside `bfn` uses these members, never `data_type` strings.

  Implemented by `ContinuousFlow`, `DiscretisedFlow` and `DiscreteFlow` (static pytrees: pass
  them as static arguments of `jax.jit`), and over the named columns of a record by
  `mixed.MixedFlow`. Arrays are per example (B, ...); times and accuracies (B,) or scalars. The
  batch methods (`check_batch`, `codes_layout`, `batch_prior`, `data_sample`, `agreement`) read
  a whole batch, whose elements may be missing (a record's cells), and the `column_*` losses
  split a record's by column, so that callers need not know which flow, or which layout of
  data, they hold.
  """

  data_type: ClassVar[str]  # 'continuous' | 'discretised' | 'discrete': names, configs, files
  params_per_dim: int  # network output channels per data channel
  input_channels_per_dim: int  # network input channels per data channel
  integer_data: ClassVar[bool]  # x holds int class indices (else floats in [-1, 1])
  finite_values: ClassVar[bool]  # x takes finitely many values (bins or classes)
  y_event_ndim: ClassVar[int]  # trailing axes of a sender sample y beyond x's shape

  def validate_data(self, x: ArrayLike) -> None: ...
  def image_format(self) -> ImageFormat: ...  # raises ValueError if the flow models no images
  def image_pixels(self, x: ArrayLike) -> np.ndarray: ...  # host-side uint8 intensities of x
  def prior(self, data_shape: tuple[int, ...], dtype=None) -> Theta: ...
  def sample_flow(self, key: Array, x: Array, t: Array) -> Theta: ...
  def net_input(self, theta: Theta) -> Array: ...
  def data_input(self, x: Array) -> Array: ...
  def accuracy(self, i: ArrayLike, n: int, dtype=None) -> Array: ...
  def ctime_weight(self, t: Array) -> Array: ...
  def mean_ctime_weight(self) -> float: ...
  def output_dist(self, net_out: Array, theta: Theta, t: Array) -> OutputDist: ...
  def ctime_loss(self, x: Array, out: OutputDist, t: Array) -> Array: ...
  def dtime_loss(
    self, key: Array, x: Array, out: OutputDist, i: Array, n: int, num_samples: int = 1
  ) -> Array: ...
  def reconstruction_loss(self, x: Array, out: OutputDist) -> Array: ...
  def sender_sample(self, key: Array, x: Array, alpha: ArrayLike) -> Array: ...
  def receiver_sample(self, key: Array, out: OutputDist, alpha: ArrayLike) -> Array: ...
  def receiver_moments(self, out: OutputDist, alpha: ArrayLike) -> tuple[Array, Array]: ...
  def bayesian_update(self, theta: Theta, y: Array, alpha: ArrayLike) -> Theta: ...
  def inverse_bayesian_update(self, theta_new: Theta, y: Array, alpha: ArrayLike) -> Theta: ...
  def flow_estimate(self, theta: Theta) -> Array: ...
  def data_estimate(self, out: OutputDist) -> Array: ...
  def sample_output(self, key: Array, out: OutputDist) -> Array: ...
  def point_of_draws(self, draws: Array) -> Array: ...
  def check_batch(self, x: Array) -> None: ...
  def codes_layout(self, z: Array, u: Array) -> tuple[int, tuple[int, ...]]: ...
  def batch_prior(self, x: Array, dtype=None) -> Theta: ...
  def data_sample(self, key: Array, x: Array, out: OutputDist, alpha: ArrayLike) -> Array: ...
  def agreement(self, x0: Array, x: Array) -> dict[str, Array]: ...
  # A record's losses per named column {name: (B,)}, summing to the totals; {} for an array.
  def column_ctime_losses(self, x: Array, out: OutputDist, t: Array) -> dict[str, Array]: ...
  def column_dtime_losses(
    self, key: Array, x: Array, out: OutputDist, i: Array, n: int, num_samples: int = 1
  ) -> dict[str, Array]: ...
  def column_reconstruction_losses(self, x: Array, out: OutputDist) -> dict[str, Array]: ...


# The flow of each data type, from the config's flow settings (each takes the keywords it reads):
# a new data type is its flow class and one line here.
_FLOWS = {
  "continuous": lambda *, sigma1, num_bins, **_: ContinuousFlow(sigma1, num_bins),
  "discretised": lambda *, sigma1, num_bins, predict_std, **_: DiscretisedFlow(
    sigma1, num_bins, predict_std
  ),
  "discrete": lambda *, beta1, num_classes, **_: DiscreteFlow(beta1, num_classes),
}
DATA_TYPES = tuple(_FLOWS)


def make_flow(
  data_type: str,
  *,
  sigma1: float,
  beta1: float,
  num_bins: int,
  num_classes: int,
  predict_std: bool = False,
) -> Flow:
  """The flow of a data type; arguments that the type does not use are ignored.

  Args:
    data_type: one of DATA_TYPES: 'continuous' | 'discretised' | 'discrete'.
    sigma1: continuous / discretised: final input std, in (0, 1).
    beta1: discrete: beta(1) > 0.
    num_bins: discretised: K bins; continuous: the data's bins for the reconstruction loss (0:
      not quantised).
    num_classes: discrete: K classes.
    predict_std: discretised: the network also predicts a log std.

  Raises:
    ValueError: for an unknown data_type or a bad hyperparameter (naming it).
  """
  checks.check_choice("data_type", data_type, DATA_TYPES)
  return _FLOWS[data_type](
    sigma1=sigma1,
    beta1=beta1,
    num_bins=num_bins,
    num_classes=num_classes,
    predict_std=predict_std,
  )


def nats_per_dim(loss: ArrayLike, data_shape: tuple[int, ...]) -> Array:
  """Per-example losses in nats (B,) divided by the dimensions per example prod(data_shape[1:])."""
  return jnp.asarray(loss) / math.prod(data_shape[1:])


def bits_per_dim(loss: ArrayLike, data_shape: tuple[int, ...]) -> Array:
  """Per-example losses in nats (B,) as bits per dimension: nats / (prod(data_shape[1:]) ln 2)."""
  return nats_per_dim(loss, data_shape) / math.log(2)
