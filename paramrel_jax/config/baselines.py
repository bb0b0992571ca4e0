"""`BaselineConfig` and the model kinds: what `model.kind` can name (`methods.registry`)."""

from __future__ import annotations

import dataclasses

from paramrel_jax.bfn import checks

BASELINE_KINDS = ("ae", "vae", "beta_vae", "beta_tcvae", "infovae", "diffae", "infodiffusion")
MODEL_KINDS = ("paramrel", *BASELINE_KINDS)


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
  """Settings only the baselines use (config keys `model.beta`, `model.diffusion_steps`).

  Attributes:
    beta: KL weight of the beta-VAE, total-correlation weight of the beta-TCVAE (> 0).
    diffusion_steps: T of the DDPM of DiffAE and InfoDiffusion (>= 1).
  """

  beta: float = 4.0
  diffusion_steps: int = 1000

  def __post_init__(self):
    checks.check_positive("model.beta", self.beta, setting=True)
    checks.check_static_int("model.diffusion_steps", self.diffusion_steps, 1)
