"""The comparison models of paper Sec. 5 (Tables 2 and 3) as `interface.Model`s.

  kind            model                                                     module
  'ae'            deterministic autoencoder                                 autoencoders
  'vae'           VAE (KL weight 1)                                         autoencoders
  'beta_vae'      beta-VAE (KL weight `BaselineConfig.beta`)                autoencoders
  'beta_tcvae'    beta-TCVAE (total-correlation weight `BaselineConfig.beta`) autoencoders
  'infovae'       InfoVAE (objective.kl_weight, objective.mmd_weight)       autoencoders
  'diffae'        DiffAE-style diffusion autoencoder (deterministic z)      diffusion
  'infodiffusion' InfoDiffusion (stochastic z, KL + MMD as InfoVAE)         diffusion

Every baseline uses the ParamReL self-encoder ('vanilla': q(z | x)) with the run's network sizes
and latent_dim. Its `encode` is the posterior mean (t = 1 only: no flow times), `reconstruct`
decodes that code, and `sample` raises a ValueError for AE and DiffAE, which have no prior.
`registry.make_model` builds any of them from its kind.
"""

from __future__ import annotations

from paramrel_jax.config.baselines import BASELINE_KINDS, MODEL_KINDS, BaselineConfig
from paramrel_jax.methods.baselines.autoencoders import (
  Autoencoder,
  AutoencoderNet,
  BinarySpace,
  ContinuousSpace,
  DataSpace,
  DiscretisedSpace,
  data_space,
)
from paramrel_jax.methods.baselines.decoder import ConvDecoder
from paramrel_jax.methods.baselines.diffusion import DiffusionAutoencoder, DiffusionAutoencoderNet

__all__ = [
  "BASELINE_KINDS",
  "MODEL_KINDS",
  "Autoencoder",
  "AutoencoderNet",
  "BaselineConfig",
  "ConvDecoder",
  "BinarySpace",
  "ContinuousSpace",
  "DataSpace",
  "DiscretisedSpace",
  "data_space",
  "DiffusionAutoencoder",
  "DiffusionAutoencoderNet",
]
