"""n-step generation with a trained ParamReL (paper Eq. 4).

Starting from the prior theta_0, step i = 1..n of the generative process at flow time
t = (i - 1) / n and accuracy alpha_i does

  z_i         = z (fixed, from the prior or given)  or  mean (or a draw) of q(z | theta_{i-1}, t)
  out_i       = p_O(. ; psi(theta_{i-1}, z_i, t))                       output distribution
  y_i         ~ p_R(. | out_i; alpha_i) = E_{x ~ out_i} p_S(. | x; alpha_i)     receiver sample
  theta_i     = h(theta_{i-1}, y_i, alpha_i)                            Bayesian update

and the sample is the data estimate of the output distribution at theta_n, t = 1. Eq. 4 draws
z_t ~ p(z_t) at every step; here z ~ N(0, I) is drawn once per sample and held fixed over the
trajectory (the latent is the sample's semantics, as in the paper's conditional generation). A
given z may instead be a path (B, K, L) of codes at the K times linspace(0, 1, K), read at each
step's time by linear interpolation (`path_at`): a progressive encoder's code changes with t,
and a path drawn from a prior fitted to such paths gives each step a code of its time. Or,
with z_source='encoder', the trained self-encoder q(z_t | theta_t, t) replaces the prior, as the
paper suggests after Eq. 4; that needs an encoder that reads theta_t (model.encoder_input =
'theta_t'), since generation has no data to encode.

The loop is a `jax.lax.scan` over the steps: one compilation per (shape, n), in which the step
is traced once however large n is. Every function here is jitted with the flow, the
network and the shapes static; `params` are the (EMA) parameters, `net.apply({'params': params})`.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from paramrel_jax.bfn import checks, generate
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.config.configuration import Z_SOURCES
from paramrel_jax.methods.paramrel import objective
from paramrel_jax.networks import ParamReLNet

POINT_DRAWS = 16  # imputations behind impute's point estimate (draw=False)


class SampleResult(NamedTuple):
  """Output of `sample`.

  Attributes:
    x: (B, H, W, C) the data estimate of the final output distribution (continuous: x_hat;
      discretised: its mean on the bin centres; discrete: int32 argmax classes).
    out: the final output distribution p_O(. ; psi(theta_n, z, 1)) (the flow's OutputDist).
    z: (B, L) the latent used at the final step.
    theta: the final input parameters theta_n.
  """

  x: jax.Array
  out: Any
  z: jax.Array
  theta: Any


def step_times(i: jax.Array, n_steps: int, batch: int) -> jax.Array:
  """Flow time t = (i - 1) / n of step i, as float32 (B,)."""
  return jnp.full((batch,), (i - 1) / n_steps, jnp.float32)


def posterior(net: ParamReLNet, params, enc_in: jax.Array, t: jax.Array):
  """Mean and log-variance of the self-encoder q(z | e, t), each float32 (B, L).

  Args:
    net, params: the model.
    enc_in: the encoder input e (B, H, W, Cin) from `objective.encoder_input`.
    t: (B,) flow times.
  """
  mean, logvar = net.apply({"params": params}, enc_in, t, train=False, method=net.encode)
  return mean.astype(jnp.float32), logvar.astype(jnp.float32)


def output_dist(flow: Flow, net: ParamReLNet, params, theta, t: jax.Array, z: jax.Array):
  """Output distribution p_O(. ; psi(theta, z, t)) of the decoder at input parameters theta."""
  net_out = net.apply(
    {"params": params}, flow.net_input(theta), z, t, train=False, method=net.decode
  )
  return flow.output_dist(net_out.astype(jnp.float32), theta, t)


def latent_dim(flow: Flow, net: ParamReLNet, params, data_shape: tuple[int, ...]) -> int:
  """L of the network's latent, read from the encoder's output shape (no computation)."""
  batch = data_shape[0]
  enc_in = flow.net_input(flow.prior(data_shape, jnp.float32))  # every encoder input's shape
  mean, _ = jax.eval_shape(
    lambda p: posterior(net, p, enc_in, jnp.zeros((batch,), jnp.float32)), params
  )
  return mean.shape[-1]


def _knots(t: jax.Array, k: int, dtype) -> tuple[jax.Array, jax.Array]:
  """For times t (B,) in [0, 1] on knots linspace(0, 1, k >= 2): the index (B,) int32 of the knot
  below each t and the weight (B, 1) of the knot above it."""
  position = jnp.clip(t, 0.0, 1.0) * (k - 1)
  low = jnp.clip(jnp.floor(position).astype(jnp.int32), 0, k - 2)
  return low, (position - low).astype(dtype)[:, None]


def path_at(path: jax.Array, t: jax.Array) -> jax.Array:
  """Codes (B, L) at times t (B,) in [0, 1] of paths (B, K >= 2, L) given at linspace(0, 1, K),
  linearly interpolated."""
  low, high = _knots(t, path.shape[1], path.dtype)
  rows = jnp.arange(path.shape[0])
  return path[rows, low] * (1.0 - high) + path[rows, low + 1] * high


def path_moments(mean: jax.Array, cov: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The law of `path_at(path, t)` for a Gaussian path N(mean, cov): its mean (B, L) and
  covariance (B, L, L) at times t (B,).

  Args:
    mean: (K >= 1, L), the path's mean at linspace(0, 1, K) (K = 1: one code for every t).
    cov: (K L, K L), the covariance of the flattened path.
    t: (B,) times in [0, 1].
  """
  k, latent = mean.shape
  blocks = cov.reshape(k, latent, k, latent)
  if k == 1:
    return (
      jnp.broadcast_to(mean[0], (t.shape[0], latent)),
      jnp.broadcast_to(blocks[0, :, 0], (t.shape[0], latent, latent)),
    )
  low, high = _knots(t, k, mean.dtype)
  m = mean[low] * (1.0 - high) + mean[low + 1] * high
  a, b = (1.0 - high)[:, :, None], high[:, :, None]
  cross = blocks[low, :, low + 1]  # (B, L, L): Cov(z_low, z_high)
  c = (
    a * a * blocks[low, :, low]
    + b * b * blocks[low + 1, :, low + 1]
    + a * b * (cross + jnp.swapaxes(cross, 1, 2))
  )
  return m, c


def _check_data_shape(data_shape: tuple[int, ...]) -> None:
  if len(data_shape) not in (2, 4) or any(int(d) < 1 for d in data_shape):
    raise ValueError(
      f"data_shape must be (B, H, W, C) of images or (B, columns) of records, of positive "
      f"ints, got {data_shape}."
    )


@functools.partial(
  jax.jit, static_argnames=("flow", "net", "data_shape", "n_steps", "z_source", "encoder_draw")
)
def sample(
  key: jax.Array,
  flow: Flow,
  net: ParamReLNet,
  params,
  *,
  data_shape: tuple[int, int, int, int],
  n_steps: int,
  z_source: str = "prior",
  z: jax.Array | None = None,
  encoder_draw: bool = False,
  x_cond: jax.Array | None = None,
) -> SampleResult:
  """Generates a batch with the n-step generative process of Eq. 4.

  Args:
    key: PRNG key; step i uses fold_in(key, i), the prior latent fold_in(key, 0), so a sample is
      a deterministic function of the key.
    flow: the Bayesian flow of the data type.
    net: the ParamReL network.
    params: its parameters (the EMA parameters of a trained model).
    data_shape: (B, H, W, C) of the batch to generate.
    n_steps: n >= 1 generation steps.
    z_source: 'prior': one z ~ N(0, I) per sample, fixed over the trajectory (or the given `z`);
      'encoder': z_i from the self-encoder q(z | theta_{i-1}, t_i) at every step (needs
      net.encoder_input == 'theta_t').
    z: optional (B, L) latent to condition on (z_source='prior' only), e.g. encoded from images,
      or a path (B, K >= 2, L) of latents at the times linspace(0, 1, K) (`path_at`).
    encoder_draw: with z_source='encoder', draw z_i ~ q(z | theta, t) instead of using its mean.
    x_cond: optional (B, H, W, C) inputs to condition on (z_source='prior', no z): at every step
      z_i is the mean of q(z | e, t_i), e the encoder input of x_cond (`objective.encoder_input`),
      as in training, where the output network at time t sees the code of time t. A progressive
      encoder's code changes with t, so one code for all steps would not be what it was trained
      with.

  Returns:
    SampleResult with x (B, H, W, C) and the final output distribution, latent and theta.

  Raises:
    ValueError: for a bad z_source, n_steps < 1, a bad data_shape, a z of the wrong shape, or
      z_source='encoder' with an encoder that reads the data.
  """
  checks.check_choice("z_source", z_source, Z_SOURCES)
  checks.check_static_int("n_steps", n_steps, 1)
  _check_data_shape(data_shape)
  batch = data_shape[0]
  dim = latent_dim(flow, net, params, data_shape)
  if z is not None and z_source != "prior":
    raise ValueError("z can only be given with z_source='prior'.")
  if x_cond is not None and (z is not None or z_source != "prior"):
    raise ValueError("x_cond can only be given with z_source='prior' and no z.")
  if x_cond is not None and x_cond.shape != tuple(data_shape):
    raise ValueError(f"x_cond must have shape {tuple(data_shape)}, got {x_cond.shape}.")
  if z is not None and not (
    z.shape == (batch, dim)
    or (z.ndim == 3 and z.shape[0] == batch and z.shape[1] >= 2 and z.shape[2] == dim)
  ):
    raise ValueError(
      f"z must have shape {(batch, dim)} or be a path (B, K >= 2, L) = "
      f"({batch}, K, {dim}), got {z.shape}."
    )
  if z is None and x_cond is None and z_source == "prior":
    z = jax.random.normal(jax.random.fold_in(key, 0), (batch, dim), jnp.float32)

  def latent(k: jax.Array, theta, t: jax.Array) -> jax.Array:
    if x_cond is not None:
      enc_in = objective.encoder_input(flow, net.encoder_input, k, x_cond, t)
      return posterior(net, params, enc_in, t)[0]
    if z_source == "prior":
      return path_at(z, t) if z.ndim == 3 else z
    enc_in = objective.encoder_input(flow, net.encoder_input, None, None, t, theta)
    mean, logvar = posterior(net, params, enc_in, t)
    if not encoder_draw:
      return mean
    return mean + jnp.exp(0.5 * logvar) * jax.random.normal(k, mean.shape, mean.dtype)

  def output_fn(theta, t: jax.Array, k: jax.Array):
    return output_dist(flow, net, params, theta, t, latent(k, theta, t))

  result = generate.generate(key, flow, output_fn, tuple(data_shape), n_steps, dtype=jnp.float32)
  t1 = jnp.ones((batch,), jnp.float32)
  z_final = latent(jax.random.fold_in(key, n_steps + 1), result.theta, t1)
  return SampleResult(x=result.x, out=result.out, z=z_final, theta=result.theta)


@functools.partial(jax.jit, static_argnames=("flow", "net", "n_steps", "draw", "num_draws"))
def impute(
  key: jax.Array,
  flow,
  net: ParamReLNet,
  params,
  x: dict,
  n_steps: int,
  draw: bool = True,
  num_draws: int = POINT_DRAWS,
) -> dict:
  """Fills the missing cells of records x {name: (B, 1)} (`bfn.mixed`) by generation given the
  observed ones: the n-step process of Eq. 4 runs with each observed cell's receiver sample
  replaced by a sender sample of its value (`MixedFlow.observe`), and every step i uses the code
  of the record as observed at its own time, z_i = the mean of q(z | e(x), t_i) (missing cells
  flagged, as in training), as the output network saw in training.

  Args:
    draw: True: a draw of the final output distribution (one imputation of many); False: the
      point estimate of the predictive distribution from `num_draws` independent imputations
      (`MixedFlow.point_of_draws`: the most frequent class of a discrete cell, the mean of a
      numeric one). One path's own output distribution is no such estimate: by t = 1 its
      missing cells are committed to the values its path drew.
    num_draws: imputations behind the point estimate (draw=False), K >= 1; K times the work.

  Returns:
    The records, observed cells as given, missing ones filled.
  """
  checks.check_static_int("num_draws", num_draws, 1)
  batch = jax.tree.leaves(x)[0].shape[0]
  observed = flow.observed(x)
  repeats = 1 if draw else num_draws
  # the records repeated: rows k * B ... (k + 1) * B - 1 are imputation k
  repeated = {name: jnp.tile(column, (repeats, 1)) for name, column in x.items()}

  def output_fn(theta, t: jax.Array, k: jax.Array):
    enc_in = objective.encoder_input(flow, net.encoder_input, jax.random.fold_in(k, 1), repeated, t)
    return output_dist(flow, net, params, theta, t, posterior(net, params, enc_in, t)[0])

  shape = (repeats * batch, len(flow.columns))
  result = generate.generate(
    key, flow, output_fn, shape, n_steps, dtype=jnp.float32, observe=flow.observe(repeated)
  )
  drawn = flow.sample_output(jax.random.fold_in(key, n_steps + 2), result.out)
  if not draw:
    drawn = flow.point_of_draws(
      {name: column.reshape(repeats, batch, 1) for name, column in drawn.items()}
    )
  return {
    name: jnp.where(observed[name][:, None], x[name], drawn[name].astype(x[name].dtype))
    for name in flow.names
  }
