"""Convolutional decoder z -> image of the autoencoder baselines, built from the U-Net's blocks.

The decoder mirrors the up path of the output U-Net (`networks.unet.OutputUNet`) without skips and
without time conditioning: a dense map of z to the bottleneck feature map, the bottleneck res
block - attention - res block, per level `num_res_blocks + 1` res blocks (attention at
`attention_resolutions`) and an upsampling, and the GroupNorm-SiLU-conv head, zero-initialised
and computed in float32. With the same `NetworkConfig` it has the U-Net's up path, so AE / VAE
decoders and the ParamReL output network differ in the skips and the down path only.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from paramrel_jax.config.network import NetworkConfig
from paramrel_jax.networks import layers
from paramrel_jax.networks.unet import res_block_cls


class ConvDecoder(nn.Module):
  """Decoder psi(z) of the AE / VAE baselines.

  Attributes:
    config: network sizes (`channel_mult`, `num_res_blocks`, groups, heads, dropout, dtype).
    image_shape: (H, W) of the output; divisible by 2 ** (len(channel_mult) - 1).
    out_channels: output channels (C * parameters per data channel).
  """

  config: NetworkConfig
  image_shape: tuple[int, int]
  out_channels: int

  @nn.compact
  def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
    """Decodes latents.

    Args:
      z: (B, latent_dim) latents.
      train: enables dropout ('dropout' rng).

    Returns:
      (B, H, W, out_channels) float32 network output.
    """
    cfg = self.config
    dtype = cfg.compute_dtype
    mods = dict(dtype=dtype, param_dtype=jnp.float32)
    res_block = res_block_cls(cfg)
    levels = len(cfg.channel_mult)
    factor = 2 ** (levels - 1)
    height, width = self.image_shape
    if height % factor or width % factor:
      raise ValueError(
        f"image_shape {self.image_shape} must be divisible by 2 ** (len(channel_mult) - 1) = "
        f"{factor} (NetworkConfig.channel_mult={cfg.channel_mult})."
      )

    def block(h: jax.Array, channels: int, name: str) -> jax.Array:
      h = res_block(channels, cfg.num_groups, cfg.dropout, name=f"{name}_res", **mods)(
        h, None, None, train
      )
      if h.shape[1] in cfg.attention_resolutions:
        h = layers.AttentionBlock(cfg.num_heads, cfg.num_groups, name=f"{name}_attn", **mods)(h)
      return h

    mid_channels = cfg.num_channels * cfg.channel_mult[-1]
    shape = (height // factor, width // factor, mid_channels)
    h = nn.Dense(shape[0] * shape[1] * shape[2], name="dense_in", **mods)(z.astype(dtype))
    h = h.reshape(z.shape[0], *shape)
    h = res_block(mid_channels, cfg.num_groups, cfg.dropout, name="mid_res_0", **mods)(
      h, None, None, train
    )
    h = layers.AttentionBlock(cfg.num_heads, cfg.num_groups, name="mid_attn", **mods)(h)
    h = res_block(mid_channels, cfg.num_groups, cfg.dropout, name="mid_res_1", **mods)(
      h, None, None, train
    )
    for level in reversed(range(levels)):
      for i in range(cfg.num_res_blocks + 1):
        h = block(h, cfg.num_channels * cfg.channel_mult[level], f"up_{level}_{i}")
      if level > 0:
        h = layers.Upsample(name=f"up_{level}_upsample", **mods)(h)

    return layers.output_head(h, self.out_channels, cfg.num_groups)
