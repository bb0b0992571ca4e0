"""Flax linen networks of ParamReL: the self-encoder and the output network (paper App. C)."""

from paramrel_jax.models.encoder import SelfEncoder
from paramrel_jax.models.paramrel import ParamReLNet, parameter_counts
from paramrel_jax.models.unet import OutputUNet
from paramrel_jax.models.variants import VARIANTS, NetworkConfig, get_variant

__all__ = [
  "VARIANTS",
  "NetworkConfig",
  "OutputUNet",
  "ParamReLNet",
  "SelfEncoder",
  "get_variant",
  "parameter_counts",
]
