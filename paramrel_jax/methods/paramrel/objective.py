"""The ParamReL objective (paper Eq. 3, 6 and 7).

For one example x the loss is

  L(x) = L_bfn(x | z_t)                                   BFN KL term (continuous / n-step)
       + kl_weight  * KL[q(z_t | e, t) || N(0, I)]        the rate, weight (1 - gamma)
       + mmd_weight * MMD(q(z) || N(0, I))                aggregate posterior, (gamma + lambda - 1)
       + tc_weight  * TC[q(z)]                            total correlation (not in the paper)
       + prior_recon_weight * L^inf(x | theta_0, z_t; t0)   z alone (not in the paper)

with theta_t ~ p_F(theta | x; t), z_t ~ q_phi(z_t | e, t) by reparameterisation and the
output network psi(theta_t, z_t, t) giving the output distribution. The MMD (Eq. 7) is a batch
statistic: it compares the batch of z_t with as many draws of the prior. The reconstruction term
of Eq. 6, ln p_O(x | psi(theta_1, z_1)), is left out of training as in the official BFN (it is
negligible at sigma1 / beta1 of the paper) and is evaluated by the likelihood evaluator.

The encoder's input e is `encoder_input`: the clean data x ('data'), theta_1 ~ p_F(theta | x; 1)
('final_params') or theta_t itself ('theta_t', Eq. 3 literally). With theta_t, z can only tell
the output network what its own input already holds, so a Bayes-optimal network ignores z; the
other two carry information about x that theta_t lacks. Every consumer of the encoder (training,
likelihood, latent export, reverse sampling, generation) calls `encoder_input`, so all see one e.

The total correlation (Chen et al., 2018; `total_correlation`, a batch estimate like the MMD) is
an option for disentanglement, 0 by default: the MMD pulls q(z) towards the isotropic N(0, I),
which any rotation of z matches as well, so neither it nor the small rate prefers axes that
separate the factors; TC[q(z)] is lowest when the units are independent.

The prior reconstruction (`prior_reconstruction`, 0 by default) asks the output network to
describe x from z alone: at the prior theta_0 its input holds nothing of x. The BFN term needs z
only while theta_t is vague (t <= 0.5 on scenes3d), where it pays for the big global factors;
this term makes z carry everything a VAE's code must.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from paramrel_jax.bfn import checks
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.config.network import ENCODER_INPUTS
from paramrel_jax.config.objective import MMD_KERNELS, ObjectiveConfig

# Apply function of the networks: (variables-free) callables closed over the params.
EncodeFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
DecodeFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

# The smallest flow time whose weight `latent_gradient_scale` divides by.
_MIN_WEIGHT_TIME = 1e-3


@flax.struct.dataclass
class LossTerms:
  """Per-example terms of the ParamReL loss, each of shape (B,) (mmd is broadcast)."""

  loss: jax.Array  # the weighted total that is minimised
  bfn: jax.Array  # BFN KL term in nats per example
  rate: jax.Array  # KL[q(z_t | e, t) || N(0, I)] in nats per example
  mmd: jax.Array  # the batch MMD, repeated per example
  tc: jax.Array  # the batch's total correlation (up to a constant), repeated; 0 when tc_weight is 0
  prior_recon: jax.Array  # L^inf(x | theta_0, z_t; t0); 0 when prior_recon_weight is 0
  t: jax.Array  # flow time of each example

  def means(self) -> dict[str, jax.Array]:
    """Scalar batch means of every term, for logging."""
    return {
      "loss": self.loss.mean(),
      "bfn": self.bfn.mean(),
      "rate": self.rate.mean(),
      "mmd": self.mmd.mean(),
      "tc": self.tc.mean(),
      "prior_recon": self.prior_recon.mean(),
    }


def gaussian_kl(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL[N(mean, exp(logvar)) || N(0, I)] summed over the last axis: (B, L) -> (B,)."""
  return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar, axis=-1)


def gaussian_kl_full(
  mean: jax.Array, logvar: jax.Array, prior_mean: jax.Array, prior_cov: jax.Array
) -> jax.Array:
  """KL[N(mean, diag exp(logvar)) || N(prior_mean, prior_cov)] per example: mean, logvar and
  prior_mean (B, L), prior_cov (B, L, L) positive definite -> (B,)."""
  chol = jnp.linalg.cholesky(prior_cov)
  eye = jnp.broadcast_to(jnp.eye(mean.shape[-1], dtype=mean.dtype), prior_cov.shape)
  inv_chol = solve_triangular(chol, eye, lower=True)  # C^-1 = inv^T inv
  diff = jnp.einsum("bij,bj->bi", inv_chol, prior_mean - mean)
  trace = jnp.sum(jnp.square(inv_chol) * jnp.exp(logvar)[:, None, :], axis=(1, 2))
  logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=-1)
  return 0.5 * (
    trace + jnp.sum(jnp.square(diff), -1) - mean.shape[-1] + logdet - jnp.sum(logvar, -1)
  )


def reparameterise(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """z = mean + exp(logvar / 2) * eps with eps ~ N(0, I); shapes (B, L)."""
  return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)


def total_correlation(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """Minibatch-weighted-sampling estimate of TC[q(z)] (Chen et al., 2018, Eq. 5 and App. C.1).

  With q(z_i | x_j) the Gaussian posterior of example j evaluated at example i's draw z_i,

    TC ~ mean_i [ logsumexp_j ln q(z_i | x_j) - sum_d logsumexp_j ln q(z_id | x_j) ]
         + (L - 1) ln(N M),

  for a batch of M from N examples. The constant (L - 1) ln(N M) carries no gradient and is left
  out, so the value is the estimate less that constant (it can be negative).

  Args:
    z: (M, L) draws, one per example.
    mean: (M, L) posterior means.
    logvar: (M, L) posterior log-variances.

  Returns:
    () the estimate, up to the constant.
  """
  # log q(z_i,d | x_j): (M_i, M_j, L)
  diff = z[:, None, :] - mean[None, :, :]
  log_q = -0.5 * (jnp.log(2 * jnp.pi) + logvar[None] + diff**2 * jnp.exp(-logvar[None]))
  joint = jax.nn.logsumexp(log_q.sum(axis=-1), axis=1)
  marginals = jax.nn.logsumexp(log_q, axis=1).sum(axis=-1)
  return jnp.mean(joint - marginals)


def _kernel(a: jax.Array, b: jax.Array, kind: str) -> jax.Array:
  """Kernel matrix (N, M) between rows of a (N, L) and b (M, L); scale 2 L as in InfoVAE/WAE."""
  scale = 2.0 * a.shape[-1]
  sq_dist = jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)
  if kind == "rbf":
    return jnp.exp(-sq_dist / scale)
  if kind == "imq":
    return scale / (scale + sq_dist)
  raise ValueError(f"the MMD kernel must be one of {MMD_KERNELS}, got {kind!r}.")


def mmd(z: jax.Array, prior_z: jax.Array, kernel: str = "imq") -> jax.Array:
  """Unbiased estimate of MMD^2 between the samples z (N, L) and prior_z (M, L) (Eq. 7).

  E_pp[k] - 2 E_qp[k] + E_qq[k], the within-sample averages excluding the diagonal. Needs N, M >= 2.
  """
  n, m = z.shape[0], prior_z.shape[0]
  k_qq = _kernel(z, z, kernel)
  k_pp = _kernel(prior_z, prior_z, kernel)
  k_qp = _kernel(z, prior_z, kernel)
  within_q = (k_qq.sum() - jnp.trace(k_qq)) / (n * (n - 1))
  within_p = (k_pp.sum() - jnp.trace(k_pp)) / (m * (m - 1))
  return within_p + within_q - 2.0 * k_qp.mean()


def mmd_weight(cfg: ObjectiveConfig, data_shape: tuple[int, ...]) -> float:
  """The MMD term's weight for data of shape (B, H, W, C): see ObjectiveConfig.mmd_scale."""
  if cfg.mmd_scale == "none":
    return cfg.mmd_weight
  return cfg.mmd_weight * math.prod(data_shape[1:])


def data_shape(x) -> tuple[int, int]:
  """(B, D) of a batch: an array (B, ...) (D = its dimensions per example) or a record, a dict of
  (B, 1) columns (`bfn.mixed`; D = its columns)."""
  leaves = jax.tree.leaves(x)
  return leaves[0].shape[0], sum(math.prod(leaf.shape[1:]) for leaf in leaves)


def latent_gradient_scale(flow: Flow, t: jax.Array) -> jax.Array:
  """Factor (B,) on the BFN term's gradient into z under latent_weighting='flat'.

  L^inf weights the squared error at t by `flow.ctime_weight(t)`: K beta1 t for discrete data,
  -ln(sigma1) sigma1^(-2t) for continuous and discretised data. Late times dominate, when theta_t
  already holds nearly all of x and z is rewarded for fine detail only. Scaling z's gradient by
  mean_weight / weight(t) gives the encoder the error of every t at one weight, the mean, so the
  early times, where z must carry the global content, count as much as the late ones.
  """
  weight = flow.ctime_weight(jnp.maximum(t, _MIN_WEIGHT_TIME))
  return (flow.mean_ctime_weight() / weight).astype(jnp.float32)


def scale_gradient(x: jax.Array, scale: jax.Array) -> jax.Array:
  """x (B, ...) in the forward pass; its gradient times scale (B,) in the backward pass."""
  scale = scale.reshape(scale.shape + (1,) * (x.ndim - 1))
  return jax.lax.stop_gradient(x) + scale * (x - jax.lax.stop_gradient(x))


def encoder_input(
  flow: Flow, mode: str, key: jax.Array | None, x: jax.Array | None, t: jax.Array, theta_t=None
) -> jax.Array:
  """The self-encoder's input e of q(z_t | e, t), in the flow's network-input format (B, H, W, Cin).

  Args:
    flow: the Bayesian flow.
    mode: 'data': `flow.data_input(x)`; 'final_params': `flow.net_input(theta_1)`, theta_1 ~
      p_F(theta | x; 1) drawn with `key`; 'theta_t': `flow.net_input(theta_t)` (Eq. 3), theta_t
      as given or else drawn from p_F(theta | x; t) with `key`.
    key: PRNG key of the flow draw (not used by 'data' or a given theta_t).
    x: (B, H, W, C) data; None when there is none (generation from the prior), which only
      'theta_t' with a given theta_t allows.
    t: (B,) flow times.
    theta_t: the flow parameters at t when the caller has them (training, likelihood, sampling).

  Raises:
    ValueError: an unknown mode, or a mode that needs x without x.
  """
  checks.check_choice("model.encoder_input", mode, ENCODER_INPUTS)
  if mode == "theta_t" and theta_t is not None:
    return flow.net_input(theta_t)
  if x is None:
    raise ValueError(
      f"model.encoder_input={mode!r} encodes the data, but there is none here "
      "(e.g. sampling.z_source='encoder' while generating); use 'theta_t'."
    )
  if mode == "data":
    return flow.data_input(x)
  if mode == "final_params":
    t = jnp.ones_like(t)
  return flow.net_input(flow.sample_flow(key, x, t))


def _uniforms(key: jax.Array, batch: int, stratified: bool) -> jax.Array:
  """(B,) float32 u in [0, 1): iid, or stratified (one per stratum [b / B, (b + 1) / B) in batch
  order, a shared uniform offset: the low-discrepancy times of VDM, Kingma et al. 2021, App. I)."""
  if not stratified:
    return jax.random.uniform(key, (batch,), jnp.float32)
  offset = jax.random.uniform(key, (), jnp.float32)
  u = (offset + jnp.arange(batch, dtype=jnp.float32)) / batch
  return jnp.minimum(u, jnp.nextafter(jnp.float32(1), jnp.float32(0)))


def sample_time(
  key: jax.Array, batch: int, loss_steps: int, power: float = 1.0, stratified: bool = False
) -> tuple[jax.Array, jax.Array]:
  """Flow times for a batch: t = u ** power, u ~ U[0, 1) (continuous time; power 1 is the
  BFN's uniform t), or t = (i - 1) / n with i ~ U{1..n} (power 1) or i = floor(n u ** power) + 1.
  `stratified` draws the u of a batch one per stratum (`_uniforms`): each u is still U[0, 1).

  Returns:
    (t, i): float32 (B,) times and int32 (B,) step indices (i = 0 in continuous time).
  """
  if loss_steps == 0:
    u = _uniforms(key, batch, stratified)
    return (u if power == 1.0 else u**power), jnp.zeros((batch,), jnp.int32)
  if power == 1.0 and not stratified:
    i = jax.random.randint(key, (batch,), 1, loss_steps + 1, jnp.int32)
  else:
    u = _uniforms(key, batch, stratified) ** power
    i = jnp.minimum(jnp.floor(u * loss_steps).astype(jnp.int32), loss_steps - 1) + 1
  return (i - 1).astype(jnp.float32) / loss_steps, i


def bfn_loss(
  key: jax.Array,
  flow: Flow,
  x: jax.Array,
  net_out: jax.Array,
  theta,
  t: jax.Array,
  i: jax.Array,
  cfg: ObjectiveConfig,
) -> jax.Array:
  """BFN KL term (B,) for network output net_out at theta_t: L^inf (ctime) or L^n (n-step)."""
  if cfg.loss_steps == 0:
    return ctime_bfn(flow, x, net_out, theta, t)
  out = flow.output_dist(net_out, theta, t)
  return flow.dtime_loss(key, x, out, i, cfg.loss_steps, cfg.loss_samples)


def ctime_bfn(flow: Flow, x: jax.Array, net_out: jax.Array, theta, t: jax.Array) -> jax.Array:
  """L^inf(x) (B,) nats: the continuous-time BFN term of raw network output net_out (cast to
  float32) at theta_t and times t (B,)."""
  return flow.ctime_loss(x, flow.output_dist(net_out.astype(jnp.float32), theta, t), t)


def prior_reconstruction(
  flow: Flow, x: jax.Array, z: jax.Array, decode: DecodeFn, t0: float
) -> jax.Array:
  """L^inf(x | theta_0, z; t0): (B,) nats, the continuous-time BFN term at time t0 with the
  network's input theta_t replaced by the prior theta_0, which holds nothing of x, so that the
  output network decodes z alone (a squared error of its estimate of x, weighted as at t0).

  Args:
    flow: the Bayesian flow; x: its data (B, H, W, C) or record; z: (B, L) codes.
    decode: (net_in, z, t) -> raw network output.
    t0: the flow time, above the flows' t_min (`ObjectiveConfig.prior_recon_time`).
  """
  theta0 = flow.batch_prior(x, jnp.float32)
  t = jnp.full(z.shape[:1], t0, jnp.float32)
  return ctime_bfn(flow, x, decode(flow.net_input(theta0), z, t), theta0, t)


def paramrel_loss(
  key: jax.Array,
  x: jax.Array,
  *,
  flow: Flow,
  encode: EncodeFn,
  decode: DecodeFn,
  cfg: ObjectiveConfig,
  encoder_input_mode: str,
) -> tuple[LossTerms, dict[str, jax.Array]]:
  """ParamReL loss terms for a batch (paper Eq. 6).

  Args:
    key: PRNG key.
    x: data (B, H, W, C): floats in [-1, 1] or int class indices (discrete); or a record
      {name: (B, 1)} of a `bfn.mixed.MixedFlow`.
    flow: the Bayesian flow of the data type.
    encode: (e, t) -> (mean, logvar) of q(z_t | e, t), each (B, L); L may be 0.
    decode: (net_in, z, t) -> raw network output (B, H, W, C * P).
    cfg: objective weights.
    encoder_input_mode: what the encoder reads (`encoder_input`), the net's `encoder_input`.

  Returns:
    (terms, aux): per-example LossTerms and auxiliaries (the posterior mean, the sampled z,
    the flow parameters and time) reused by diagnostics.
  """
  batch, dims = data_shape(x)
  k_t, k_flow, k_z, k_prior, k_loss, k_enc = jax.random.split(key, 6)
  t, i = sample_time(k_t, batch, cfg.loss_steps, cfg.time_power, cfg.time_sampling == "stratified")
  theta = flow.sample_flow(k_flow, x, t)
  net_in = flow.net_input(theta)
  x_enc = x
  if cfg.encoder_mask > 0:  # records: z learns to describe a record from part of its cells
    x_enc = flow.hide(jax.random.fold_in(k_enc, 1), x, cfg.encoder_mask)
  mean, logvar = encode(encoder_input(flow, encoder_input_mode, k_enc, x_enc, t, theta), t)
  mean, logvar = mean.astype(jnp.float32), logvar.astype(jnp.float32)
  if cfg.posterior == "deterministic":
    z, rate = mean, jnp.zeros((batch,), jnp.float32)
  else:
    z, rate = reparameterise(k_z, mean, logvar), gaussian_kl(mean, logvar)
  z_in = z
  if cfg.latent_weighting == "flat":
    z_in = scale_gradient(z, latent_gradient_scale(flow, t))
  net_out = decode(net_in, z_in, t).astype(jnp.float32)
  bfn = bfn_loss(k_loss, flow, x, net_out, theta, t, i, cfg)
  trained_bfn = bfn
  if cfg.latent_weighting == "flat_both":
    trained_bfn = bfn * latent_gradient_scale(flow, t)
  if z.shape[-1] > 0 and batch > 1:
    mmd_value = mmd(z, jax.random.normal(k_prior, z.shape, z.dtype), cfg.mmd_kernel)
  else:
    mmd_value = jnp.zeros((), jnp.float32)
  mmd_b = jnp.broadcast_to(mmd_value, (batch,))
  tc_value = jnp.zeros((), jnp.float32)
  if cfg.tc_weight > 0 and z.shape[-1] > 0 and batch > 1:
    tc_value = total_correlation(z, mean, logvar)
  tc_b = jnp.broadcast_to(tc_value, (batch,))
  prior_recon = jnp.zeros((batch,), jnp.float32)
  if cfg.prior_recon_weight > 0:
    prior_recon = prior_reconstruction(flow, x, z, decode, cfg.prior_recon_time)
  loss = (
    trained_bfn
    + cfg.kl_weight * rate
    + mmd_weight(cfg, (batch, dims)) * mmd_b
    + cfg.tc_weight * tc_b
    + cfg.prior_recon_weight * prior_recon
  )
  terms = LossTerms(loss=loss, bfn=bfn, rate=rate, mmd=mmd_b, tc=tc_b, prior_recon=prior_recon, t=t)
  aux = {"mean": mean, "z": z, "net_in": net_in, "theta": theta, "t": t, "i": i, "key": k_loss}
  return terms, aux


def latent_diagnostics(
  x: jax.Array,
  terms: LossTerms,
  aux: dict,
  *,
  flow: Flow,
  decode: DecodeFn,
  cfg: ObjectiveConfig,
  active_threshold: float = 0.01,
) -> dict[str, jax.Array]:
  """Whether the decoder uses z: the BFN loss gap under shuffled z, and active latent dims.

  The gap is L_bfn(x | z of another example) - L_bfn(x | own z), same theta, t and loss noise;
  a gap near 0 means the output network ignores z. A dimension is active when the variance of
  its posterior mean over the batch exceeds `active_threshold` (Burda et al., 2016).
  """
  z_shuffled = jnp.roll(aux["z"], shift=1, axis=0)
  net_out = decode(aux["net_in"], z_shuffled, aux["t"]).astype(jnp.float32)
  bfn_shuffled = bfn_loss(aux["key"], flow, x, net_out, aux["theta"], aux["t"], aux["i"], cfg)
  return {
    "z_shuffle_gap": jnp.mean(bfn_shuffled - terms.bfn),
    "active_dims": jnp.sum(jnp.var(aux["mean"], axis=0) > active_threshold),
  }


def latent_gap_by_time(
  key: jax.Array,
  x: jax.Array,
  times: jax.Array,
  *,
  flow: Flow,
  encode: EncodeFn,
  decode: DecodeFn,
  encoder_input_mode: str,
) -> dict[str, jax.Array]:
  """Where along the flow the output network reads z: the BFN term L^inf at fixed times.

  At each time t of `times` one theta_t ~ p_F(theta | x; t) is drawn per example and the
  output network sees it with three codes: the example's own z (the posterior mean of
  q(z_t | e, t)), another example's (the batch rolled by one), and z = 0, the prior's mean. The
  continuous-time loss at t already carries the ELBO's weight of t, so the mean over uniform
  times of a difference is that difference's share of the bound.

  Args:
    key: PRNG key (theta_t draws, and the encoder's for 'final_params' / 'theta_t').
    x: (B, H, W, C) data, or a record {name: (B, 1)}; B >= 2.
    times: (T,) flow times in [0, 1].
    flow, encode, decode, encoder_input_mode: as in `paramrel_loss`.

  Returns:
    {'own', 'shuffled', 'zero'}: each (T, B), nats per example.
  """
  batch, _ = data_shape(x)
  if batch < 2:
    raise ValueError(f"latent_gap_by_time needs a batch of at least 2 examples, got {batch}.")

  def at(args):
    t_value, k = args
    k_flow, k_enc = jax.random.split(k)
    t = jnp.full((batch,), t_value, jnp.float32)
    theta = flow.sample_flow(k_flow, x, t)
    net_in = flow.net_input(theta)
    mean, _ = encode(encoder_input(flow, encoder_input_mode, k_enc, x, t, theta), t)
    mean = mean.astype(jnp.float32)

    def loss(z):
      return ctime_bfn(flow, x, decode(net_in, z, t), theta, t)

    return {
      "own": loss(mean),
      "shuffled": loss(jnp.roll(mean, shift=1, axis=0)),
      "zero": loss(jnp.zeros_like(mean)),
    }

  times = jnp.asarray(times, jnp.float32)
  return jax.lax.map(at, (times, jax.random.split(key, times.shape[0])))
