"""Reverse sampling (paper Eq. 5): encode an input into (z, subcodes) and decode it back.

Codes of an input x0 (Sec. 5.2.1):
  z         the semantic latent, the mean of the self-encoder q(z | e, t) at flow time
            t = z_time (default 1), e the encoder input of training (`objective.encoder_input`:
            x0 itself, or a data-conditioned theta_1 / theta_t ~ p_F(theta | x0; .));
  subcodes  the stochastic codes: x0's own n-step Bayesian flow theta_0 -> theta_n with sender
            samples y_i ~ p_S(. | x0; alpha_i) and theta_i = h(theta_{i-1}, y_i, alpha_i), each y_i
            stored relative to the network's receiver at theta_{i-1}:

              u_i = (y_i - m_i) / s_i,    m_i = E[p_R(. | psi(theta_{i-1}, z, t_i); alpha_i)],
                                          s_i = std of p_S(. | x; alpha_i) (the same for every x).

  Continuous data: m_i = x_hat_i and s_i = 1 / sqrt(alpha_i), so the receiver is exactly
  N(m_i, s_i^2) and u_i = eps_i + sqrt(alpha_i) (x0 - x_hat_i): the sender noise, shifted by the
  network's error (~ N(0, I) for an accurate network). Discretised: m_i = sum_k p_k c_k, the mean
  of the receiver's mixture over bin centres c_k, s_i = 1 / sqrt(alpha_i). Discrete (K classes,
  y in R^K for every K including 2): m_i = alpha_i (K p_i - 1), the mean of the receiver mixture
  sum_k p_k N(alpha (K e_k - 1), alpha K I), and s_i = sqrt(alpha_i K); again u_i ~ N(0, I)
  when p_i puts its mass on x0's class. The map y <-> u is affine and invertible for any network
  output, so every data type gets exact replay, and the standardisation makes the subcodes
  comparable across steps (what `interpolation.slerp` needs).

Decoding replays the codes: y_i = m_i + s_i u_i with m_i from the network at the replayed
theta_{i-1} and the same z, then theta_i = h(theta_{i-1}, y_i, alpha_i). By induction the replayed
path equals x0's data-conditioned path (to float rounding). It is the forward reading of Eq. 5,
whose backward walk theta_{i-1} = h^{-1}(theta_i, y_i, alpha_i) visits the same thetas. The y_i
are also fixed by consecutive thetas: Gaussian theta = (mu, rho) gives
y_i = (rho_i mu_i - rho_{i-1} mu_{i-1}) / alpha_i; categorical theta gives
y_i = log theta_i - log theta_{i-1} up to a constant per K-vector, which h ignores.

Reconstruction error (continuous data, sigma1 of the flow). With theta_0 = (0, 1) and
sum_i alpha_i = sigma1^-2 - 1, the data-conditioned final mean is
mu_n = gamma x + sqrt(gamma (1 - gamma)) eps with gamma = 1 - sigma1^2 and eps ~ N(0, I), so

  mu_n - x = -sigma1^2 x + sigma1 sqrt(gamma) eps  ~  N(-sigma1^2 x, gamma sigma1^2),
  |mu_n - x| <= sigma1^2 + c sigma1 sqrt(1 - sigma1^2)   with probability >= 1 - P(|N(0,1)| > c)

per element (c = 6: 2e-9). The network's final prediction x_hat = mu_n / gamma -
sqrt((1 - gamma) / gamma) eps_hat (Eq. 10, then clipped to [-1, 1], which only moves it towards
x) satisfies x_hat - x = sigma1 / sqrt(gamma) (eps - eps_hat), so
|x_hat - x| <= sigma1 (c + max |eps_hat|) / sqrt(1 - sigma1^2); a trained network has
eps_hat ~ eps and does better. Both are returned (`Reconstruction.x_flow`, `.x`); see
`reconstruction_error_bound`.
Discretised data reconstruct exactly from mu_n whenever |mu_n - x| < 1 / K. For discrete data
the flow's own estimate argmax theta_n is right with probability Phi(sqrt(beta1)) for K = 2; the
network's accuracy at theta_n is reported by `reconstruction_stats`.

Records of a table (`bfn.mixed.MixedFlow`): the subcodes are a dict of columns (B, n, 1[, K]).
An observed cell is coded as above; a missing cell has no sender, so its y_i is a receiver draw
y_i ~ p_R(. | theta_{i-1}; alpha_i), coded the same way: replaying the codes reproduces the
observed cells exactly and fills the missing ones with one imputation given them.

Memory: the subcodes hold n floats per data element (n K for discrete data, whose sender samples
are K-vectors, K = 2 included), stored batch-first (B, n, H, W, C[, K]).
"""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from paramrel_jax.bfn import checks
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.methods.paramrel import objective
from paramrel_jax.methods.paramrel.sampling import (
  SampleResult,
  output_dist,
  posterior,
  sample,
  step_times,
)
from paramrel_jax.networks import ParamReLNet


class Codes(NamedTuple):
  """Codes of a batch of B inputs.

  Attributes:
    z: (B, L) semantic latent.
    subcodes: (B, n, H, W, C) standardised sender noise of the n steps ((B, n, H, W, C, K) for
      discrete data; records: {name: (B, n, 1[, K])}). A batch of 1 is broadcast against z's
      batch in `decode`.
  """

  z: jax.Array
  subcodes: jax.Array


class FlowPath(NamedTuple):
  """The data-conditioned n-step Bayesian flow of a batch.

  Attributes:
    theta: the n + 1 input parameters theta_0..theta_n stacked on a leading axis (n + 1, ...).
    y: the n sender samples (n, B, H, W, C[, K]).
  """

  theta: Any
  y: jax.Array


class Reconstruction(NamedTuple):
  """Output of `decode`.

  Attributes:
    x: (B, H, W, C) the network's data estimate at theta_n, t = 1, with the codes' z.
    x_flow: (B, H, W, C) the flow's own estimate from theta_n: mu_n (continuous), mu_n on the
      bin centres (discretised), argmax of theta_n (discrete).
    out: the output distribution at theta_n.
    theta: theta_n.
    path: theta_0..theta_n stacked (n + 1, ...) when asked for, else None.
  """

  x: jax.Array
  x_flow: jax.Array
  out: Any
  theta: Any
  path: Any


# The public functions below are `jax.jit(_f)` of plain functions rather than decorated ones, so
# that mutation testing (tests/mutation/), which skips decorated functions, mutates their bodies.


def _encode_z(key: jax.Array, flow: Flow, net: ParamReLNet, params, x0: jax.Array, t) -> jax.Array:
  """Semantic latent: the mean of q(z | e, t), e = `objective.encoder_input` of x0.

  Args:
    key: PRNG key of the flow draw (final_params / theta_t encoder inputs).
    flow, net, params: the model.
    x0: (B, H, W, C) inputs.
    t: flow time, a scalar or (B,); for the progressive encoder t selects the semantics.

  Returns:
    z: float32 (B, L).
  """
  t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (objective.data_shape(x0)[0],))
  enc_in = objective.encoder_input(flow, net.encoder_input, key, x0, t)
  return posterior(net, params, enc_in, t)[0]


encode_z = jax.jit(_encode_z, static_argnames=("flow", "net"))


def _data_flow(key: jax.Array, flow: Flow, x0: jax.Array, *, n_steps: int) -> FlowPath:
  """The n-step Bayesian flow of x0 (no network): y_i ~ p_S(. | x0; alpha_i), theta_i = h(...).

  Step i draws with fold_in(key, i), as `encode` does, so `encode(key, ...)` follows this path.

  Args:
    key: PRNG key.
    flow: the Bayesian flow.
    x0: (B, H, W, C) inputs.
    n_steps: n >= 1.

  Returns:
    FlowPath with thetas (n + 1, ...) and sender samples (n, ...).
  """
  flow.check_batch(x0)
  checks.check_static_int("n_steps", n_steps, 1)

  def step(theta, i):
    alpha = flow.accuracy(i, n_steps, jnp.float32)
    y = flow.sender_sample(jax.random.fold_in(key, i), x0, alpha)
    theta = flow.bayesian_update(theta, y, alpha)
    return theta, (theta, y)

  theta0 = flow.batch_prior(x0, jnp.float32)  # a record's missing cell keeps its prior
  _, (thetas, ys) = jax.lax.scan(step, theta0, jnp.arange(1, n_steps + 1))
  path = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), theta0, thetas)
  return FlowPath(theta=path, y=ys)


data_flow = jax.jit(_data_flow, static_argnames=("flow", "n_steps"))


def _encode(
  key: jax.Array,
  flow: Flow,
  net: ParamReLNet,
  params,
  x0: jax.Array,
  *,
  n_steps: int,
  z_time=1.0,
) -> Codes:
  """Reverse sampling (Eq. 5): the codes (z, subcodes) of inputs x0.

  Args:
    key: PRNG key; z uses fold_in(key, 0), sender step i fold_in(key, i) (the path of
      `data_flow(key, ...)`).
    flow, net, params: the model (EMA parameters).
    x0: (B, H, W, C) inputs.
    n_steps: n >= 1 steps of the flow; decoding uses the same n.
    z_time: flow time of the semantic latent (scalar or (B,)); t = 1 is the data end.

  Returns:
    Codes with z (B, L) and subcodes (B, n, H, W, C[, K]) (see the module docstring).
  """
  flow.check_batch(x0)
  checks.check_static_int("n_steps", n_steps, 1)
  batch = objective.data_shape(x0)[0]
  z = encode_z(jax.random.fold_in(key, 0), flow, net, params, x0, z_time)

  def step(theta, i):
    t = step_times(i, n_steps, batch)
    alpha = flow.accuracy(i, n_steps, jnp.float32)
    out = output_dist(flow, net, params, theta, t, z)
    m, s = flow.receiver_moments(out, alpha)
    y = flow.data_sample(jax.random.fold_in(key, i), x0, out, alpha)  # module docstring
    u = jax.tree.map(lambda y, m, s: (y - m) / s, y, m, s)
    return flow.bayesian_update(theta, y, alpha), u

  theta0 = flow.prior(_prior_shape(x0), jnp.float32)
  _, u = jax.lax.scan(step, theta0, jnp.arange(1, n_steps + 1))
  return Codes(z=z, subcodes=jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), u))


def _prior_shape(x0) -> tuple[int, ...]:
  """The data shape `flow.prior` takes: x0's (B, H, W, C), or (B, columns) of a record."""
  return tuple(x0.shape) if hasattr(x0, "shape") else objective.data_shape(x0)


encode = jax.jit(_encode, static_argnames=("flow", "net", "n_steps"))


def _decode(flow: Flow, net: ParamReLNet, params, codes: Codes, *, return_path: bool = False):
  """Replays codes through the generative process: y_i = m_i + s_i u_i, theta_i = h(...).

  With the codes of `encode` the theta path is x0's data-conditioned path; with another z (time-
  varying reconstruction, traversal, interpolation) the same noise is steered by the new
  semantics. The number of steps n is the subcodes' second axis.

  Args:
    flow, net, params: the model.
    codes: z (B, L) and subcodes (B or 1, n, H, W, C[, K]); a batch of 1 is shared by all z.
    return_path: also return theta_0..theta_n (memory n + 1 times a theta).

  Returns:
    Reconstruction (x from the network at theta_n, t = 1; x_flow from theta_n itself).
  """
  z, u = codes
  n_steps, data_shape = flow.codes_layout(z, u)
  batch = data_shape[0]

  def step(theta, inputs):
    i, u_i = inputs
    t = step_times(i, n_steps, batch)
    alpha = flow.accuracy(i, n_steps, jnp.float32)
    m, s = flow.receiver_moments(output_dist(flow, net, params, theta, t, z), alpha)
    theta = flow.bayesian_update(theta, jax.tree.map(lambda m, s, u: m + s * u, m, s, u_i), alpha)
    return theta, theta if return_path else None

  theta0 = flow.prior(data_shape, jnp.float32)
  steps = (jnp.arange(1, n_steps + 1), jax.tree.map(lambda a: jnp.moveaxis(a, 1, 0), u))
  theta, thetas = jax.lax.scan(step, theta0, steps)
  path = None
  if return_path:
    path = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), theta0, thetas)
  out = output_dist(flow, net, params, theta, jnp.ones((batch,), jnp.float32), z)
  return Reconstruction(
    x=flow.data_estimate(out), x_flow=flow.flow_estimate(theta), out=out, theta=theta, path=path
  )


decode = jax.jit(_decode, static_argnames=("flow", "net", "return_path"))


def _conditional_sample(
  key: jax.Array,
  flow: Flow,
  net: ParamReLNet,
  params,
  x0: jax.Array,
  *,
  num_variations: int,
  n_steps: int,
) -> SampleResult:
  """Conditional generation (Sec. 5.2.1): the codes of each input, fresh subcodes.

  Every step i uses the input's code at its own time, z_i = the mean of q(z | e(x0), t_i)
  (`sampling.sample` with x_cond), as the output network saw in training; one code for all steps
  loses the input's global content with a progressive encoder, whose code changes with t. The
  stochastic part is fresh receiver sampling (Eq. 4 given z), i.e. exact p_R draws.

  Args:
    key: PRNG key.
    flow, net, params: the model.
    x0: (B, H, W, C) inputs.
    num_variations: V samples per input.
    n_steps: generation steps.

  Returns:
    SampleResult of B * V samples, input-major (input b's V samples are contiguous); its z is
    each input's code at t = 1.
  """
  flow.check_batch(x0)
  checks.check_static_int("num_variations", num_variations, 1)
  x_cond = jnp.repeat(x0, num_variations, axis=0)
  return sample(key, flow, net, params, data_shape=x_cond.shape, n_steps=n_steps, x_cond=x_cond)


conditional_sample = jax.jit(
  _conditional_sample, static_argnames=("flow", "net", "num_variations", "n_steps")
)


def _time_varying_reconstruction(
  key: jax.Array,
  flow: Flow,
  net: ParamReLNet,
  params,
  x0: jax.Array,
  times: jax.Array,
  *,
  n_steps: int,
  z_time=1.0,
) -> jax.Array:
  """Time-varying reconstruction (Sec. 5.2.2): x0's own subcodes with z from other flow times.

  The subcodes are encoded once (with z at z_time); each reconstruction replaces z by the
  progressive encoder's mean at time t for t in `times` (`encode_z`, one key shared by all times,
  so only t changes).

  Args:
    key: PRNG key.
    flow, net, params: the model.
    x0: (B, H, W, C) inputs.
    times: (T,) flow times, e.g. (0.1, 0.2, 0.3).
    n_steps: steps of the codes.
    z_time: flow time of the z the subcodes are encoded with.

  Returns:
    (T, B, H, W, C) reconstructions, one batch per time.
  """
  k_codes, k_t = jax.random.split(key)
  codes = encode(k_codes, flow, net, params, x0, n_steps=n_steps, z_time=z_time)

  def reconstruct_at(t: jax.Array) -> jax.Array:
    z_t = encode_z(k_t, flow, net, params, x0, t)
    return decode(flow, net, params, codes._replace(z=z_t)).x

  return jax.lax.map(reconstruct_at, jnp.asarray(times))  # encode_z casts t to float32


time_varying_reconstruction = jax.jit(
  _time_varying_reconstruction, static_argnames=("flow", "net", "n_steps")
)


def reconstruction_stats(flow: Flow, x0: jax.Array, rec: Reconstruction) -> dict[str, jax.Array]:
  """Per-example reconstruction quality, (B,) each, `flow.agreement` of `rec.x` with x0 (and of
  `rec.x_flow`, keys ending in '_flow').

  Continuous and discretised data: 'max_abs_error'; discretised and discrete data: 'accuracy',
  the fraction of elements reconstructed exactly (bits for K = 2); records: the same over their
  observed cells.
  """
  stats = {}
  for suffix, x in (("", rec.x), ("_flow", rec.x_flow)):
    stats.update({key + suffix: value for key, value in flow.agreement(x0, x).items()})
  return stats


def reconstruction_error_bound(
  sigma1: float, *, num_std: float = 6.0, eps_hat_max: float | None = None
) -> float:
  """High-probability bound on the elementwise continuous reconstruction error.

  Args:
    sigma1: the flow's sigma1.
    num_std: c, the number of standard deviations of the flow noise allowed (per element the
      bound fails with probability P(|N(0, 1)| > c)).
    eps_hat_max: None: the bound on |mu_n - x| (`Reconstruction.x_flow`),
      sigma1^2 + c sigma1 sqrt(1 - sigma1^2). A number: the bound on the network's
      |x_hat - x| (`Reconstruction.x`) given max |eps_hat| of its output at theta_n,
      sigma1 (c + eps_hat_max) / sqrt(1 - sigma1^2).

  Returns:
    The bound (derivation in the module docstring).
  """
  if not 0.0 < sigma1 < 1.0:
    raise ValueError(f"sigma1 must be in (0, 1), got {sigma1}.")
  gamma = 1.0 - sigma1**2
  if eps_hat_max is None:
    return sigma1**2 + num_std * sigma1 * math.sqrt(gamma)
  return sigma1 * (num_std + eps_hat_max) / math.sqrt(gamma)
