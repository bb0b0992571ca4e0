"""The comparison models of paper Sec. 5 (Tables 2 and 3) as `interface.Model`s.

  kind            model                                                     module
  'ae'            deterministic autoencoder                                 autoencoders
  'vae'           VAE (KL weight 1)                                         autoencoders
  'beta_vae'      beta-VAE (KL weight `BaselineConfig.beta`)                autoencoders
  'infovae'       InfoVAE (objective.kl_weight, objective.mmd_weight)       autoencoders
  'diffae'        DiffAE-style diffusion autoencoder (deterministic z)      diffusion
  'infodiffusion' InfoDiffusion (stochastic z, KL + MMD as InfoVAE)         diffusion

Every baseline uses the ParamReL self-encoder ('vanilla': q(z | x)) with the run's network sizes
and latent_dim. Its `encode` is the posterior mean (t = 1 only: no flow times), `reconstruct`
decodes that code, and `sample` raises a ValueError for AE and DiffAE, which have no prior.
`registry.make_model` builds any of them from its kind.
"""

from __future__ import annotations

import dataclasses

from paramrel_jax.baselines.autoencoders import (
  Autoencoder,
  AutoencoderNet,
  DataSpace,
)
from paramrel_jax.baselines.decoder import ConvDecoder
from paramrel_jax.baselines.diffusion import DiffusionAutoencoder, DiffusionAutoencoderNet

BASELINE_KINDS = ("ae", "vae", "beta_vae", "infovae", "diffae", "infodiffusion")
MODEL_KINDS = ("paramrel", *BASELINE_KINDS)


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
  """Settings only the baselines use (config keys `model.beta`, `model.diffusion_steps`).

  Attributes:
    beta: KL weight of the beta-VAE (> 0).
    diffusion_steps: T of the DDPM of DiffAE and InfoDiffusion (>= 1).
  """

  beta: float = 4.0
  diffusion_steps: int = 1000

  def __post_init__(self):
    if not self.beta > 0:
      raise ValueError(f"model.beta must be > 0, got {self.beta}.")
    if isinstance(self.diffusion_steps, bool) or not isinstance(self.diffusion_steps, int):
      raise ValueError(f"model.diffusion_steps must be an integer, got {self.diffusion_steps!r}.")
    if self.diffusion_steps < 1:
      raise ValueError(f"model.diffusion_steps must be >= 1, got {self.diffusion_steps}.")


__all__ = [
  "BASELINE_KINDS",
  "MODEL_KINDS",
  "Autoencoder",
  "AutoencoderNet",
  "BaselineConfig",
  "ConvDecoder",
  "DataSpace",
  "DiffusionAutoencoder",
  "DiffusionAutoencoderNet",
]
