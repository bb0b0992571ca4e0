"""Flax linen networks of ParamReL: the self-encoder and the output network (paper App. C), for
images (`ParamReLNet`) and for records of mixed-type tables (`RecordNet`)."""

from paramrel_jax.config.network import VARIANTS, NetworkConfig, get_variant
from paramrel_jax.networks.encoder import SelfEncoder
from paramrel_jax.networks.paramrel_net import ParamReLNet, content_masks, parameter_counts
from paramrel_jax.networks.record_net import RecordNet
from paramrel_jax.networks.unet import OutputUNet

__all__ = [
  "VARIANTS",
  "NetworkConfig",
  "OutputUNet",
  "ParamReLNet",
  "RecordNet",
  "SelfEncoder",
  "content_masks",
  "get_variant",
  "parameter_counts",
]
