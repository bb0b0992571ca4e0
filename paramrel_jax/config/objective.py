"""`ObjectiveConfig`: the weights and forms of the ParamReL objective (paper Eq. 6 and 7).

The loss itself is `methods.paramrel.objective`.
"""

from __future__ import annotations

import dataclasses

from paramrel_jax.bfn import checks

MMD_KERNELS = ("rbf", "imq")
# How the BFN term's gradient reaches the encoder (`latent_gradient_scale`).
LATENT_WEIGHTINGS = ("elbo", "flat", "flat_both")
# q(z_t | e, t): a Gaussian (Eq. 6) or its mean alone (the authors' MMD-only variant).
POSTERIORS = ("gaussian", "deterministic")
# What multiplies mmd_weight: the number of data dimensions D = H * W * C, or nothing (legacy).
MMD_SCALES = ("data_dims", "none")
# How a batch's training times are drawn: independently, or one per stratum of [0, 1).
TIME_SAMPLINGS = ("iid", "stratified")


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
  """Weights and estimator settings of the ParamReL loss.

  Attributes:
    kl_weight: weight (1 - gamma) of the rate KL[q(z_t | e, t) || N(0, I)].
    mmd_weight: weight (gamma + lambda - 1) of MMD(q(z) || N(0, I)).
    mmd_kernel: 'rbf' or 'imq' (inverse multiquadric, as in WAE / InfoVAE).
    tc_weight: weight of the batch's total correlation TC[q(z)] in nats (Chen et al.'s
      minibatch-weighted estimate, as beta-TCVAE's beta - 1); not in the paper, 0 leaves it out.
      Needs posterior='gaussian' (the estimate reads the posterior's variance).
    prior_recon_weight: weight of the BFN term L^inf at time prior_recon_time with theta_t
      replaced by the prior theta_0: the output network sees nothing of x but z, so this is a
      decoder of z alone, as a VAE's reconstruction term (`objective.prior_reconstruction`). Not
      in the paper (the BFN term needs z only while theta_t is vague, experiments/README.md); 0
      leaves it out.
    prior_recon_time: the flow time t0 > 0 of that term. The Gaussian flows' output is
      x_hat = mu / gamma - B(t) eps_hat, with mu = 0 at theta_0 and B(t) = sqrt(sigma1^(2t) /
      gamma(t)): B = 1 at t0 = ln 2 / (2 ln(1 / sigma1)), 0.05 at sigma1 = 1e-3; below the
      flows' t_min (1e-6) the output is fixed and the term would not reach z.
    mmd_scale: 'data_dims': the MMD term is mmd_weight * D * MMD, D = H * W * C. The BFN term
      sums over the D dimensions and the rate over the L latent dimensions (both in nats, so
      kl_weight trades nats for nats at any image size), but the MMD is a unitless kernel
      distance: scaled by D, one mmd_weight means the same against the BFN term at 28x28x1 and
      64x64x3. 'none': mmd_weight * MMD (runs saved before this key).
    latent_weighting: 'elbo' (the encoder gets the BFN term's own gradient) or 'flat' (the
      encoder's gradient is re-weighted so every flow time counts equally, see
      `latent_gradient_scale`; the output network still gets the ELBO's gradient) or
      'flat_both' (the BFN term itself is re-weighted so, for both networks: not the ELBO).
    posterior: 'gaussian' (z_t ~ q(z_t | e, t)) or 'deterministic' (z_t = the mean, no rate term:
      the authors' released MMD-only variant). The likelihood evaluation then also uses the mean;
      its rate is that of the unused variance head, so its -ELBO is not a bound.
    time_power: training flow times t = u ** time_power, u ~ U[0, 1) (the n-step loss: step
      floor(n u ** time_power) + 1): 1 is the BFN's uniform t; p > 1 draws early times, where z
      must carry the global content, more often (density t^(1/p - 1) / p). Not the ELBO unless
      1; the likelihood evaluation keeps the uniform t.
    time_sampling: 'iid' (each example's u independent) or 'stratified' (the batch's u one per
      stratum [b / B, (b + 1) / B) with a shared random offset, as VDM's low-discrepancy
      sampler: each u is still uniform, the batch covers [0, 1) evenly, the loss varies less).
    encoder_mask: tables: the probability that each cell of a training record is hidden from
      the self-encoder (`MixedFlow.hide`; the flow and the loss keep it), so that z learns to
      describe a record from part of its cells, as imputation asks; 0 hides none. Needs
      records and an encoder of the data ('data' or 'final_params').
    loss_steps: 0 for the continuous-time loss, n > 0 for the n-step loss.
    loss_samples: Monte-Carlo sender samples of the n-step loss.
  """

  kl_weight: float = 1e-3
  mmd_weight: float = 0.1
  mmd_kernel: str = "imq"
  tc_weight: float = 0.0
  prior_recon_weight: float = 0.0
  prior_recon_time: float = 0.05
  mmd_scale: str = "data_dims"
  latent_weighting: str = "elbo"
  posterior: str = "gaussian"
  time_power: float = 1.0
  time_sampling: str = "iid"
  encoder_mask: float = 0.0
  loss_steps: int = 0
  loss_samples: int = 1

  def __post_init__(self):
    for name in ("kl_weight", "mmd_weight", "tc_weight", "prior_recon_weight"):
      checks.check_range(f"objective.{name}", getattr(self, name), 0)
    checks.check_range("objective.prior_recon_time", self.prior_recon_time, 1e-3, 1)
    checks.check_choice("objective.mmd_kernel", self.mmd_kernel, MMD_KERNELS)
    checks.check_choice("objective.mmd_scale", self.mmd_scale, MMD_SCALES)
    if self.latent_weighting not in LATENT_WEIGHTINGS:
      raise ValueError(
        f"objective.latent_weighting must be one of {LATENT_WEIGHTINGS}, got "
        f"{self.latent_weighting!r}."
      )
    checks.check_choice("objective.posterior", self.posterior, POSTERIORS)
    if self.tc_weight > 0 and self.posterior != "gaussian":
      raise ValueError(
        f"objective.tc_weight={self.tc_weight} needs objective.posterior='gaussian' (the total "
        f"correlation's estimate reads the posterior's variance), got {self.posterior!r}."
      )
    checks.check_positive("objective.time_power", self.time_power, setting=True)
    checks.check_choice("objective.time_sampling", self.time_sampling, TIME_SAMPLINGS)
    checks.check_range("objective.encoder_mask", self.encoder_mask, 0, 1, open_high=True)
    checks.check_range("flow.loss_steps", self.loss_steps, 0)
    checks.check_static_int("flow.loss_samples", self.loss_samples, 1)
