"""Output network psi(theta_t, z_t, t): a U-Net conditioned by adaptive group norm (App. C)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from paramrel_jax.config.network import NetworkConfig
from paramrel_jax.networks import layers

# The name of the output network's `layers.ContentMaskMap` (model.conditioning='content_mask').
CONTENT_MASK_MODULE = "latent_content_mask"


def res_block_cls(config: NetworkConfig) -> type[layers.ResBlock]:
  """ResBlock, rematerialised when `config.remat` (its `train` argument is static)."""
  return nn.remat(layers.ResBlock, static_argnums=(4,)) if config.remat else layers.ResBlock


def stem(config: NetworkConfig, net_in: jax.Array, channels: int) -> jax.Array:
  """Optional Fourier features, then a 3x3 convolution to `channels` (compute dtype)."""
  h = net_in.astype(config.compute_dtype)
  if config.fourier_features:
    h = jnp.concatenate([h, layers.fourier_features(h)], axis=-1)
  return nn.Conv(
    channels, (3, 3), dtype=config.compute_dtype, param_dtype=jnp.float32, name="conv_in"
  )(h)


class OutputUNet(nn.Module):
  """The output network psi(theta_t, z_t, t) (paper App. C.1-C.2).

  Guided-diffusion U-Net: per level `num_res_blocks` res blocks (attention after each one at
  `attention_resolutions`) and a downsampling; a bottleneck res block - attention - res block; an
  up path of `num_res_blocks + 1` res blocks per level on the concatenated skips; and a
  GroupNorm-SiLU-conv head, zero-initialised and computed in float32. Every res block is
  conditioned by AdaGN on the time embedding (Eq. 11). With latent_dim > 0, z enters as
  `config.conditioning` says: 'adagn', by the latent embedding in every AdaGN (Eq. 12) and, with
  `latent_map`, a map into the bottleneck; 'cross_attention', by tokens of z
  (`layers.LatentTokens`) that a cross-attention block after every res block reads;
  'content_mask', by a feature map of per-token contents placed by per-token masks
  (`layers.ContentMaskMap`), average-pooled to each resolution and added, through a dense layer,
  to the input of every res block.

  Attributes:
    config: network sizes.
    out_channels: output channels, C * flow.params_per_dim.
  """

  config: NetworkConfig
  out_channels: int

  @nn.compact
  def __call__(
    self, net_in: jax.Array, z: jax.Array | None, t: jax.Array, *, train: bool
  ) -> jax.Array:
    """Computes the output network.

    Args:
      net_in: (B, H, W, Cin) flow input theta_t (`Flow.net_input`); H, W divisible by
        2 ** (len(channel_mult) - 1).
      z: (B, latent_dim) latent z_t, or None when latent_dim == 0.
      t: (B,) flow time.
      train: enables dropout.

    Returns:
      (B, H, W, out_channels) float32 network output.
    """
    cfg = self.config
    dtype = cfg.compute_dtype
    mods = dict(dtype=dtype, param_dtype=jnp.float32)
    res_block = res_block_cls(cfg)
    emb_dim = cfg.embedding_dim

    t_emb = layers.EmbeddingMLP(emb_dim, name="time_embedding", **mods)(
      layers.timestep_embedding(t, cfg.num_channels)
    )
    z_emb = tokens = z_map = None
    if z is not None and cfg.conditioning == "adagn":
      z_emb = layers.EmbeddingMLP(emb_dim, name="latent_embedding", **mods)(z.astype(dtype))
    elif z is not None and cfg.conditioning == "cross_attention":
      tokens = layers.LatentTokens(cfg.latent_group_size, emb_dim, name="latent_tokens", **mods)(z)
    elif z is not None:
      z_map, _ = layers.ContentMaskMap(
        cfg.latent_group_size,
        cfg.num_channels,
        temperature=cfg.mask_temperature,
        name=CONTENT_MASK_MODULE,
        **mods,
      )(z, *net_in.shape[1:3])

    pooled_maps = {}  # the z map average-pooled to each resolution, once

    def read_map(h: jax.Array, name: str) -> jax.Array:
      if z_map is None:
        return h
      size = h.shape[1]
      if size not in pooled_maps:
        factor = z_map.shape[1] // size
        pooled_maps[size] = nn.avg_pool(z_map, (factor, factor), strides=(factor, factor))
      return h + nn.Dense(h.shape[-1], name=f"{name}_z_map", **mods)(pooled_maps[size])

    def read_tokens(h: jax.Array, name: str) -> jax.Array:
      if tokens is None:
        return h
      return layers.AttentionBlock(
        cfg.num_heads, cfg.num_groups, name=f"{name}_cross_attn", **mods
      )(h, tokens)

    def block(h: jax.Array, channels: int, name: str) -> jax.Array:
      h = read_map(h, name)
      h = res_block(channels, cfg.num_groups, cfg.dropout, cfg.adagn, name=f"{name}_res", **mods)(
        h, t_emb, z_emb, train
      )
      h = read_tokens(h, name)
      if h.shape[1] in cfg.attention_resolutions:
        h = layers.AttentionBlock(cfg.num_heads, cfg.num_groups, name=f"{name}_attn", **mods)(h)
      return h

    levels = len(cfg.channel_mult)
    h = stem(cfg, net_in, cfg.num_channels * cfg.channel_mult[0])
    skips = [h]
    for level, mult in enumerate(cfg.channel_mult):
      for i in range(cfg.num_res_blocks):
        h = block(h, cfg.num_channels * mult, f"down_{level}_{i}")
        skips.append(h)
      if level < levels - 1:
        h = layers.Downsample(name=f"down_{level}_downsample", **mods)(h)
        skips.append(h)

    mid_channels = h.shape[-1]
    if z_emb is not None and cfg.latent_map:
      h = h + layers.latent_map(z.astype(dtype), h.shape[1:], **mods)
    h = res_block(mid_channels, cfg.num_groups, cfg.dropout, cfg.adagn, name="mid_res_0", **mods)(
      read_map(h, "mid_0"), t_emb, z_emb, train
    )
    h = read_tokens(h, "mid_0")
    h = layers.AttentionBlock(cfg.num_heads, cfg.num_groups, name="mid_attn", **mods)(h)
    h = res_block(mid_channels, cfg.num_groups, cfg.dropout, cfg.adagn, name="mid_res_1", **mods)(
      read_map(h, "mid_1"), t_emb, z_emb, train
    )
    h = read_tokens(h, "mid_1")

    for level in reversed(range(levels)):
      for i in range(cfg.num_res_blocks + 1):
        h = jnp.concatenate([h, skips.pop()], axis=-1)
        h = block(h, cfg.num_channels * cfg.channel_mult[level], f"up_{level}_{i}")
      if level > 0:
        h = layers.Upsample(name=f"up_{level}_upsample", **mods)(h)

    return layers.output_head(h, self.out_channels, cfg.num_groups)
