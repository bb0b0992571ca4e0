"""The ParamReL likelihood terms of a batch: the BFN test loss and the negative ELBO.

For one example x, with z_t drawn from the self-encoder q(z_t | e, t), e its input
(`objective.encoder_input`: the data, theta_1 or theta_t, as in training):

  bfn             L^n(x | z) (n = `loss_steps` > 0) or L^inf(x | z) (loss_steps = 0), estimated as
                  the official BFN does: one step i ~ U{1..n} (or t ~ U[0, 1)) per example,
                  theta_t ~ p_F(theta | x; t), the per-step loss scaled by n (BFN Eq. 96, 101);
  reconstruction  -ln p_O(x | psi(theta_1, z_1)) with theta_1 ~ p_F(theta | x; 1) (BFN Eq. 112);
  test_loss       bfn + reconstruction: the official BFN test loss (`test.py`), the plain BFN's
                  negative ELBO;
  rate            KL[q(z_t | e, t) || N(0, I)] at the same x and t as `bfn`: an unbiased
                  estimate of the rate averaged over the steps, (1 / n) sum_t KL (paper Eq. 6 with
                  gamma = 0, lambda = 1);
  neg_elbo        test_loss + rate: the ParamReL negative ELBO with the step-averaged rate.

For records of a table (`bfn.mixed.MixedFlow`), also each column's share of test_loss:
  column:<name>   that column's bfn and reconstruction terms (0 where the cell is missing); the
                  columns' shares sum to test_loss.

Given a prior fitted to the codes (`prior`: the Gaussian over code paths that sampling draws
from, `sampling.z_prior='fitted'`), also
  rate_fitted     KL[q(z_t | e, t) || p(z_t)] at the same x and t, p(z_t) the fitted prior's
                  marginal at t (`sampling.path_moments`);
  neg_elbo_fitted test_loss + rate_fitted: the same step-averaged bound for the model that samples
                  with the fitted prior.

z is a reparameterised draw of q (the ELBO's expectation; `sample_z=False` uses the posterior
mean instead). With an encoder of the data ('data', 'final_params'), `bfn` and `test_loss` are
losses given a z that encodes x, not likelihoods; `neg_elbo` is the bound to compare with the
plain BFN's `test_loss`. The literal Eq. 3 sums the n per-step rates; it equals
bfn + reconstruction + n * rate and has no continuous-time limit, so the step-averaged form of
Eq. 6 is reported.
Every term is in nats per example; `evaluation.likelihood.evaluate_likelihood` averages them over
a split and also reports nats and bits per dimension.
"""

from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np

from paramrel_jax.bfn.flows import Flow
from paramrel_jax.methods.paramrel import objective, sampling
from paramrel_jax.methods.paramrel.apply import net_fns
from paramrel_jax.networks import ParamReLNet

# Monte-Carlo sender samples of the n-step loss: the official BFN's `discrete_time_loss` default.
DEFAULT_LOSS_SAMPLES = 10
TERMS = ("bfn", "reconstruction", "test_loss", "rate", "neg_elbo")
FITTED_TERMS = ("rate_fitted", "neg_elbo_fitted")  # with a fitted prior
# Added to the fitted prior's covariance, so that a rank-deficient fit has a finite KL.
PRIOR_RIDGE = 1e-6


@flax.struct.dataclass
class LikelihoodTerms:
  """Per-example likelihood terms, each (B,) in nats per example (module docstring)."""

  bfn: jax.Array
  reconstruction: jax.Array
  rate: jax.Array
  rate_fitted: jax.Array | None = None
  columns: dict[str, jax.Array] | None = None  # records: each column's share of test_loss

  def as_dict(self) -> dict[str, jax.Array]:
    """All of `TERMS`, including the sums test_loss and neg_elbo, `FITTED_TERMS` when
    rate_fitted is given, and 'column:<name>' for records."""
    test_loss = self.bfn + self.reconstruction
    terms = {
      "bfn": self.bfn,
      "reconstruction": self.reconstruction,
      "test_loss": test_loss,
      "rate": self.rate,
      "neg_elbo": test_loss + self.rate,
    }
    if self.rate_fitted is not None:
      terms.update(rate_fitted=self.rate_fitted, neg_elbo_fitted=test_loss + self.rate_fitted)
    for name, share in (self.columns or {}).items():
      terms[f"column:{name}"] = share
    return terms


def _with_columns(total, columns, *args) -> tuple[jax.Array, dict[str, jax.Array]]:
  """(loss (B,), {column: (B,)}) of one of the flow's losses, traced once: a record's loss is
  the sum of its columns' shares (as `MixedFlow`'s totals are), an array's has no columns."""
  per_column = columns(*args)
  return (sum(per_column.values()) if per_column else total(*args)), per_column


def likelihood_terms(
  key: jax.Array,
  x: jax.Array,
  *,
  flow: Flow,
  encode: objective.EncodeFn,
  decode: objective.DecodeFn,
  loss_steps: int,
  encoder_input_mode: str,
  loss_samples: int = DEFAULT_LOSS_SAMPLES,
  sample_z: bool = True,
  prior: tuple[jax.Array, jax.Array] | None = None,
) -> LikelihoodTerms:
  """One Monte-Carlo estimate of the likelihood terms of a batch (module docstring).

  Args:
    key: PRNG key.
    x: data (B, H, W, C): floats in [-1, 1] or int class indices (discrete); or a record
      {name: (B, 1)} of a MixedFlow.
    flow: the Bayesian flow of the data type.
    encode: (e, t) -> (mean, logvar) of q(z_t | e, t), each (B, L); L may be 0.
    decode: (net_in, z, t) -> raw network output (B, H, W, C * P).
    loss_steps: n > 0 for the n-step loss L^n, 0 for the continuous-time loss L^inf.
    encoder_input_mode: what the encoder reads (`objective.encoder_input`).
    loss_samples: sender samples of the n-step loss's Monte-Carlo KL.
    sample_z: z ~ q(z_t | theta_t, t) (True) or its mean (False).
    prior: a fitted prior (mean (K, L), covariance (K L, K L)) of code paths at
      linspace(0, 1, K) (K = 1: one code), for rate_fitted; None: N(0, I) only.

  Returns:
    LikelihoodTerms of shape (B,) each.
  """
  batch = objective.data_shape(x)[0]
  k_time, k_flow, k_z, k_loss, k_flow1, k_z1, k_enc, k_enc1 = jax.random.split(key, 8)

  def latent(k, k_e, theta, t):
    mean, logvar = encode(objective.encoder_input(flow, encoder_input_mode, k_e, x, t, theta), t)
    mean, logvar = mean.astype(jnp.float32), logvar.astype(jnp.float32)
    z = objective.reparameterise(k, mean, logvar) if sample_z else mean
    return z, mean, logvar

  t, i = objective.sample_time(k_time, batch, loss_steps)
  theta = flow.sample_flow(k_flow, x, t)
  net_in = flow.net_input(theta)
  z, mean, logvar = latent(k_z, k_enc, theta, t)
  rate, rate_fitted = objective.gaussian_kl(mean, logvar), None
  if prior is not None:
    prior_mean, prior_cov = sampling.path_moments(*prior, t)
    prior_cov = prior_cov + PRIOR_RIDGE * jnp.eye(prior_cov.shape[-1], dtype=prior_cov.dtype)
    rate_fitted = objective.gaussian_kl_full(mean, logvar, prior_mean, prior_cov)
  out = flow.output_dist(decode(net_in, z, t).astype(jnp.float32), theta, t)
  t1 = jnp.ones((batch,), jnp.float32)
  theta1 = flow.sample_flow(k_flow1, x, t1)
  net_in1 = flow.net_input(theta1)
  z1, _, _ = latent(k_z1, k_enc1, theta1, t1)
  out1 = flow.output_dist(decode(net_in1, z1, t1).astype(jnp.float32), theta1, t1)
  if loss_steps == 0:
    bfn, bfn_columns = _with_columns(flow.ctime_loss, flow.column_ctime_losses, x, out, t)
  else:
    bfn, bfn_columns = _with_columns(
      flow.dtime_loss, flow.column_dtime_losses, k_loss, x, out, i, loss_steps, loss_samples
    )
  reconstruction, reconstruction_columns = _with_columns(
    flow.reconstruction_loss, flow.column_reconstruction_losses, x, out1
  )
  return LikelihoodTerms(
    bfn=bfn,
    reconstruction=reconstruction,
    rate=rate,
    rate_fitted=rate_fitted,
    columns={name: bfn_columns[name] + reconstruction_columns[name] for name in bfn_columns}
    or None,
  )


@functools.partial(
  jax.jit, static_argnames=("flow", "net", "loss_steps", "loss_samples", "sample_z")
)
def likelihood_batch(
  params: dict,
  key: jax.Array,
  x: jax.Array,
  *,
  flow: Flow,
  net: ParamReLNet,
  loss_steps: int,
  loss_samples: int = DEFAULT_LOSS_SAMPLES,
  sample_z: bool = True,
  prior: tuple[jax.Array, jax.Array] | None = None,
) -> dict[str, jax.Array]:
  """The jitted batch function: {term: (B,) nats per example} for every term of `TERMS` (and
  `FITTED_TERMS` with a prior).

  Args:
    params: the network's parameters.
    key: PRNG key.
    x: data (B, H, W, C).
    flow: the Bayesian flow of the data type (static).
    net: the network of the run (static).
    loss_steps: n > 0 (n-step loss) or 0 (continuous time).
    loss_samples: sender samples of the n-step loss.
    sample_z, prior: see `likelihood_terms`.
  """
  encode, decode = net_fns(net, params)
  terms = likelihood_terms(
    key,
    x,
    flow=flow,
    encode=encode,
    decode=decode,
    loss_steps=loss_steps,
    encoder_input_mode=net.encoder_input,
    loss_samples=loss_samples,
    sample_z=sample_z,
    prior=prior,
  )
  return terms.as_dict()


def prior_arrays(mean, cov, latent_dim: int) -> tuple[jax.Array, jax.Array]:
  """A fitted prior as `likelihood_terms` takes it: float32 mean (K, L) (from (L,) or (K, L)) and
  covariance (K L, K L)."""
  mean, cov = np.asarray(mean, np.float32), np.asarray(cov, np.float32)
  return jnp.asarray(mean.reshape(-1, latent_dim)), jnp.asarray(cov)
