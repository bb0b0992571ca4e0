"""The comparison models of paper Sec. 5 (Tables 2 and 3) as `train.Trainable`s.

  kind            model                                                     module
  'ae'            deterministic autoencoder                                 autoencoders
  'vae'           VAE (KL weight 1)                                         autoencoders
  'beta_vae'      beta-VAE (KL weight `BaselineConfig.beta`)                autoencoders
  'infovae'       InfoVAE (objective.kl_weight, objective.mmd_weight)       autoencoders
  'diffae'        DiffAE-style diffusion autoencoder (deterministic z)      diffusion
  'infodiffusion' InfoDiffusion (stochastic z, KL + MMD as InfoVAE)         diffusion

Every baseline uses the ParamReL self-encoder ('vanilla': q(z | x)) with the run's network sizes
and latent_dim, and has, besides `init`, `loss` and `diagnostics`:
  encode_latents(params, key, x (B, H, W, C)) -> z (B, latent_dim) float32, the posterior mean;
  reconstruct(params, key, x) -> data of x's shape and dtype;
  sample(params, key, num) -> (num, H, W, C) data (ValueError for AE and DiffAE: no prior).
`build_model(kind, config, channels)` builds any of them (and ParamReL, kind 'paramrel') from a
resolved experiment config.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from paramrel_jax import paramrel
from paramrel_jax.baselines.autoencoders import (
  Autoencoder,
  AutoencoderNet,
  DataSpace,
  vanilla_encoder_config,
)
from paramrel_jax.baselines.decoder import ConvDecoder
from paramrel_jax.baselines.diffusion import DiffusionAutoencoder, DiffusionAutoencoderNet
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.models import NetworkConfig, ParamReLNet
from paramrel_jax.objective import ObjectiveConfig

if TYPE_CHECKING:  # configuration and train import this package: no import cycle at run time
  from paramrel_jax.configuration import ExperimentConfig
  from paramrel_jax.train import Trainable

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


def make_model(
  kind: str,
  *,
  flow: Flow,
  network: NetworkConfig,
  objective: ObjectiveConfig,
  image_shape: tuple[int, int, int],
  settings: BaselineConfig = BaselineConfig(),
  ddim_steps: int = 100,
) -> Trainable:
  """The model `kind` of `MODEL_KINDS` for images of shape (H, W, C).

  Args:
    kind: 'paramrel' or one of `BASELINE_KINDS`.
    flow: the run's flow (ParamReL) or data type (baselines; discrete data must be binary).
    network: network sizes; the baselines use its `latent_dim` (>= 1) and a 'vanilla' encoder.
    objective: the ParamReL objective; InfoVAE / InfoDiffusion take its kl_weight, mmd_weight
      and mmd_kernel.
    image_shape: (H, W, C) of the data.
    settings: beta (beta-VAE) and diffusion_steps (DiffAE, InfoDiffusion).
    ddim_steps: DDIM steps of reconstruction and sampling (DiffAE, InfoDiffusion).

  Raises:
    ValueError: an unknown kind (naming it), latent_dim = 0 for a baseline, non-binary discrete
      data, or a bad setting.
  """
  if kind not in MODEL_KINDS:
    raise ValueError(f"unknown model.kind {kind!r}; known: {MODEL_KINDS}.")
  channels = image_shape[-1]
  if kind == "paramrel":
    net = ParamReLNet(network, out_channels=channels * flow.params_per_dim)
    return paramrel.ParamReL(flow=flow, net=net, objective=objective)

  space = DataSpace.from_flow(flow)
  encoder_network = vanilla_encoder_config(network)
  weights = {
    "ae": (False, 0.0, 0.0),
    "vae": (True, 1.0, 0.0),
    "beta_vae": (True, settings.beta, 0.0),
    "infovae": (True, objective.kl_weight, objective.mmd_weight),
    "diffae": (False, 0.0, 0.0),
    "infodiffusion": (True, objective.kl_weight, objective.mmd_weight),
  }
  variational, kl_weight, mmd_weight = weights[kind]
  common = dict(
    space=space,
    variational=variational,
    kl_weight=kl_weight,
    mmd_weight=mmd_weight,
    mmd_kernel=objective.mmd_kernel,
  )
  if kind in ("diffae", "infodiffusion"):
    net = DiffusionAutoencoderNet(encoder_network, channels)
    return DiffusionAutoencoder(
      net=net,
      image_shape=tuple(image_shape),
      diffusion_steps=settings.diffusion_steps,
      ddim_steps=ddim_steps,
      **common,
    )
  net = AutoencoderNet(
    encoder_network, tuple(image_shape), learn_std=space.data_type == "discretised"
  )
  return Autoencoder(net=net, **common)


def build_model(kind: str, config: ExperimentConfig, channels: int) -> Trainable:
  """`make_model` from a resolved experiment config, for images of C = `channels`.

  Reads config.flow, config.network, config.objective, config.data.image_size,
  config.sampling.num_steps (DDIM steps) and config.baseline (a `BaselineConfig`).
  """
  size = config.data.image_size
  return make_model(
    kind,
    flow=config.flow,
    network=config.network,
    objective=config.objective,
    image_shape=(size, size, channels),
    settings=config.baseline,
    ddim_steps=config.sampling.num_steps,
  )


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
  "build_model",
  "make_model",
]
