"""The method registry: every `model.kind` built as an `interface.Model`.

  make_model(kind, ...)            any kind of `MODEL_KINDS` from its parts
  build_model(config, channels)    the run's model from a resolved experiment config
  has_prior(kind)                  whether the kind's `sample` works (an AE or DiffAE has no prior)

ParamReL ('paramrel', `paramrel.ParamReL`) and the baselines of `methods.baselines` share one
interface, so nothing outside this module needs to know which one it holds.
"""

from __future__ import annotations

from paramrel_jax.bfn.flows import Flow
from paramrel_jax.bfn.mixed import MixedFlow
from paramrel_jax.config.baselines import MODEL_KINDS, BaselineConfig
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.methods import paramrel
from paramrel_jax.methods.baselines.autoencoders import (
  Autoencoder,
  AutoencoderNet,
  data_space,
  vanilla_encoder_config,
)
from paramrel_jax.methods.baselines.diffusion import DiffusionAutoencoder, DiffusionAutoencoderNet
from paramrel_jax.methods.interface import Model
from paramrel_jax.methods.paramrel.objective import ObjectiveConfig
from paramrel_jax.networks import NetworkConfig, ParamReLNet, RecordNet

# Whether a baseline's z is drawn by reparameterisation against N(0, I), its prior (a VAE), or
# is the encoder's mean with no prior (AE, DiffAE).
_VARIATIONAL = {
  "ae": False,
  "vae": True,
  "beta_vae": True,
  "beta_tcvae": True,
  "infovae": True,
  "diffae": False,
  "infodiffusion": True,
}


def _image_net(network: NetworkConfig, flow: Flow, image_shape: tuple[int, ...]) -> ParamReLNet:
  return ParamReLNet(network, out_channels=image_shape[-1] * flow.params_per_dim)


def _record_net(network: NetworkConfig, flow: MixedFlow, image_shape: tuple[int, ...]) -> RecordNet:
  return RecordNet(
    network,
    tuple(column.input_channels_per_dim + 1 for _, column in flow.columns),
    tuple(column.params_per_dim for _, column in flow.columns),
  )


# ParamReL's output network psi by `flow.data_type`: images (B, H, W, C) unless listed here (a new
# kind of data adds its line); only image data have baselines.
_NETWORKS = {"mixed": _record_net}


def has_prior(kind: str) -> bool:
  """Whether models of `kind` can sample (the AE and DiffAE have no prior over their codes)."""
  return kind == "paramrel" or _VARIATIONAL.get(kind, False)


def make_model(
  kind: str,
  *,
  flow: Flow,
  network: NetworkConfig,
  objective: ObjectiveConfig,
  image_shape: tuple[int, int, int],
  settings: BaselineConfig | None = None,
  sample_steps: int = 100,
  z_source: str = "prior",
) -> Model:
  """The model `kind` of `MODEL_KINDS` for images of shape (H, W, C), or for records.

  A `MixedFlow` (tables of records) gets a `RecordNet`; image flows get a `ParamReLNet`.

  Args:
    kind: 'paramrel' or one of `BASELINE_KINDS`.
    flow: the run's flow (ParamReL) or data type (baselines; discrete data must be binary; no
      baseline models records).
    network: network sizes; the baselines use its `latent_dim` (>= 1) and a 'vanilla' encoder.
    objective: the ParamReL objective; InfoVAE / InfoDiffusion take its kl_weight, mmd_weight
      and mmd_kernel.
    image_shape: (H, W, C) of the data; (columns,) of records.
    settings: beta (beta-VAE) and diffusion_steps (DiffAE, InfoDiffusion); None for the
      defaults.
    sample_steps: steps of reconstruction and sampling (ParamReL's n, DDIM steps of DiffAE and
      InfoDiffusion).
    z_source: where ParamReL's `sample` takes z from (`sampling.sample`).

  Raises:
    ValueError: an unknown kind (naming it), latent_dim = 0 for a baseline, non-binary discrete
      data, or a bad setting.
  """
  if kind not in MODEL_KINDS:
    raise ValueError(f"unknown model.kind {kind!r}; known: {MODEL_KINDS}.")
  channels = image_shape[-1]
  if flow.data_type in _NETWORKS and kind != "paramrel":
    raise ValueError(
      f"model.kind={kind!r} models images only; flow.data_type={flow.data_type!r} needs "
      "model.kind='paramrel'."
    )
  if kind == "paramrel":
    net = _NETWORKS.get(flow.data_type, _image_net)(network, flow, tuple(image_shape))
    return paramrel.ParamReL(
      flow=flow,
      net=net,
      objective=objective,
      image_shape=tuple(image_shape),
      sample_steps=sample_steps,
      z_source=z_source,
    )

  settings = settings or BaselineConfig()
  space = data_space(flow)
  encoder_network = vanilla_encoder_config(network)
  weights = {  # (kl_weight, mmd_weight)
    "ae": (0.0, 0.0),
    "vae": (1.0, 0.0),
    "beta_vae": (settings.beta, 0.0),
    "beta_tcvae": (1.0, 0.0),
    "infovae": (objective.kl_weight, objective.mmd_weight),
    "diffae": (0.0, 0.0),
    "infodiffusion": (objective.kl_weight, objective.mmd_weight),
  }
  kl_weight, mmd_weight = weights[kind]
  common = dict(
    space=space,
    variational=_VARIATIONAL[kind],
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
      sample_steps=sample_steps,
      kind=kind,
      **common,
    )
  net = AutoencoderNet(encoder_network, tuple(image_shape), learn_std=space.learn_std)
  # beta-TCVAE: the VAE's loss plus (beta - 1) TC, so the TC inside the KL weighs beta.
  tc_weight = settings.beta - 1.0 if kind == "beta_tcvae" else 0.0
  if tc_weight < 0:
    raise ValueError(f"model.beta must be >= 1 for a beta-TCVAE, got {settings.beta}.")
  return Autoencoder(net=net, kind=kind, tc_weight=tc_weight, **common)


def build_model(config: ExperimentConfig, channels: int) -> Model:
  """The model of `config.model_kind` for images of C = `channels` (or a table's records).

  Reads config.flow, config.network, config.objective, config.data.image_size (or the columns
  of config.data.schema), config.sampling.num_steps and .z_source, and config.baseline.
  """
  size = config.data.image_size
  schema = config.data.schema
  return make_model(
    config.model_kind,
    flow=config.flow,
    network=config.network,
    objective=config.objective,
    image_shape=(len(schema.columns),) if schema else (size, size, channels),
    settings=config.baseline,
    sample_steps=config.sampling.num_steps,
    z_source=config.sampling.z_source,
  )
