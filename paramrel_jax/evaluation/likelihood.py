"""Test likelihood of a trained model: the BFN test loss and the ParamReL negative ELBO.

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
Every term is in nats per example; `evaluate_likelihood` also reports nats and bits per dimension.
"""

from __future__ import annotations

import functools
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from paramrel_jax import data
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.data import sources
from paramrel_jax.methods import paramrel
from paramrel_jax.methods.paramrel import objective, sampling
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

  def as_dict(self) -> dict[str, jax.Array]:
    """All of `TERMS`, including the sums test_loss and neg_elbo, and `FITTED_TERMS` when
    rate_fitted is given."""
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
    return terms


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
    x: data (B, H, W, C): floats in [-1, 1] or int class indices (discrete).
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
  batch = x.shape[0]
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
  if loss_steps == 0:
    bfn = flow.ctime_loss(x, out, t)
  else:
    bfn = flow.dtime_loss(k_loss, x, out, i, loss_steps, loss_samples)

  t1 = jnp.ones((batch,), jnp.float32)
  theta1 = flow.sample_flow(k_flow1, x, t1)
  net_in1 = flow.net_input(theta1)
  z1, _, _ = latent(k_z1, k_enc1, theta1, t1)
  out1 = flow.output_dist(decode(net_in1, z1, t1).astype(jnp.float32), theta1, t1)
  return LikelihoodTerms(
    bfn=bfn, reconstruction=flow.reconstruction_loss(x, out1), rate=rate, rate_fitted=rate_fitted
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
  encode, decode = paramrel.net_fns(net, params)
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


def split_size(data_cfg: data.DataConfig, split: str) -> int:
  """Number of examples of `split` of the configured dataset."""
  return len(sources.open_split(data_cfg, split))


def _sum_over_processes(values: np.ndarray) -> np.ndarray:
  if jax.process_count() == 1:
    return values
  return np.asarray(multihost_utils.process_allgather(values)).sum(axis=0)


def evaluate_likelihood(
  flow: Flow,
  net: ParamReLNet,
  params: dict,
  data_cfg: data.DataConfig,
  *,
  split: str,
  batch_size: int,
  num_examples: int,
  loss_steps: int,
  n_repeats: int,
  seed: int = 0,
  loss_samples: int = DEFAULT_LOSS_SAMPLES,
  sample_z: bool = True,
  prior: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
  """Test likelihood over the first `num_examples` examples of a split, each exactly once a pass.

  Each of the `n_repeats` passes draws fresh noise (times, flows, z, sender samples); the result
  is the mean over passes and its standard error std / sqrt(n_repeats), as the official BFN's
  `test.py`. Processes share the examples (`data.create_eval_iterator`) and sum their totals.

  Args:
    flow: the Bayesian flow of the data type.
    net: the network of the run.
    params: its (EMA) parameters.
    data_cfg: data settings.
    split: the split to evaluate (e.g. data_cfg.eval_split).
    batch_size: global batch size (the last batch is padded and masked).
    num_examples: examples to cover; more than the split has means the whole split.
    loss_steps: n > 0 for the n-step loss, 0 for continuous time.
    n_repeats: passes over the examples.
    seed: seed of the noise.
    loss_samples: sender samples of the n-step loss.
    sample_z: see `likelihood_terms`.
    prior: a fitted prior of code paths, (mean (K, L) or (L,), covariance (K L, K L)), for
      `FITTED_TERMS` (`likelihood_terms`).

  Returns:
    A JSON-able dict: 'nats_per_image', 'nats_per_dim', 'bits_per_dim' and
    'stderr_nats_per_image' (each {term: float} over `TERMS`, and `FITTED_TERMS` with a
    prior), and 'split', 'num_examples', 'dims_per_example', 'loss_steps', 'n_repeats',
    'loss_samples', 'z' ('sample' or 'mean').

  Raises:
    ValueError: loss_steps < 0, loss_samples, n_repeats or num_examples < 1, or a bad data
      setting.
  """
  for name, value, minimum in (
    ("loss_steps", loss_steps, 0),
    ("loss_samples", loss_samples, 1),
    ("n_repeats", n_repeats, 1),
    ("num_examples", num_examples, 1),
  ):
    if value < minimum:
      raise ValueError(f"{name} must be >= {minimum}, got {value}.")
  num_examples = min(num_examples, split_size(data_cfg, split))
  terms = TERMS
  if prior is not None:
    prior = prior_arrays(*prior, net.config.latent_dim)
    terms = TERMS + FITTED_TERMS
  settings = {
    "flow": flow,
    "net": net,
    "loss_steps": loss_steps,
    "loss_samples": loss_samples,
    "sample_z": sample_z,
    "prior": prior,
  }
  base_key = jax.random.fold_in(jax.random.key(seed), jax.process_index())
  per_repeat = []
  dims = 0
  for repeat in range(n_repeats):
    totals = np.zeros(len(terms) + 1)  # the term sums, then the number of examples
    batches = data.create_eval_iterator(
      data_cfg, split=split, batch_size=batch_size, num_examples=num_examples
    )
    for index, batch in enumerate(batches):
      key = jax.random.fold_in(jax.random.fold_in(base_key, repeat), index)
      x = jnp.asarray(batch["image"])
      values = jax.device_get(likelihood_batch(params, key, x, **settings))
      mask = batch["mask"]
      totals[:-1] += [float(values[term][mask].sum()) for term in terms]
      totals[-1] += mask.sum()
      dims = math.prod(batch["image"].shape[1:])
    totals = _sum_over_processes(totals)
    per_repeat.append(totals[:-1] / totals[-1])
  per_repeat = np.asarray(per_repeat)  # (n_repeats, len(terms)) nats per example
  mean = per_repeat.mean(axis=0)
  stderr = per_repeat.std(axis=0) / math.sqrt(n_repeats)
  return {
    "nats_per_image": dict(zip(terms, mean.tolist(), strict=True)),
    "nats_per_dim": dict(zip(terms, (mean / dims).tolist(), strict=True)),
    "bits_per_dim": dict(zip(terms, (mean / (dims * math.log(2))).tolist(), strict=True)),
    "stderr_nats_per_image": dict(zip(terms, stderr.tolist(), strict=True)),
    "split": split,
    "num_examples": int(num_examples),
    "dims_per_example": int(dims),
    "loss_steps": int(loss_steps),
    "n_repeats": int(n_repeats),
    "loss_samples": int(loss_samples),
    "z": "sample" if sample_z else "mean",
  }
