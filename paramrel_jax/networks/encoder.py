"""Self-encoder q_phi(z_t | theta_t, t): a Gaussian posterior over z_t (Sec. 3.1, App. C.3)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from paramrel_jax.config.network import ENCODER_FLATTEN_UNITS, NetworkConfig
from paramrel_jax.networks import layers
from paramrel_jax.networks.unet import res_block_cls, stem


class SelfEncoder(nn.Module):
  """The down path and bottleneck of the output U-Net, pooled to a diagonal Gaussian over z_t.

  `config.encoder` picks the variant of paper Fig. 8: 'progressive' conditions every res block on
  the time embedding by AdaGN (Eq. 11), giving q(z_t | theta_t, t); 'vanilla' builds no time
  embedding and uses plain GroupNorm, giving q(z_t | theta_t), exactly independent of t.
  `config.encoder_pool` picks how the last feature map reaches the posterior head (a mean over
  positions, the flattened map, or attention pooling; `network.ENCODER_POOLS`), and
  `config.encoder_coords` adds coordinate channels to the input.

  Attributes:
    config: network sizes (uses `encoder_mult` for the channel multipliers; latent_dim > 0).
  """

  config: NetworkConfig

  @nn.compact
  def __call__(
    self, net_in: jax.Array, t: jax.Array, *, train: bool
  ) -> tuple[jax.Array, jax.Array]:
    """Computes the posterior parameters.

    Args:
      net_in: (B, H, W, Cin) flow input theta_t; H, W divisible by
        2 ** (len(encoder_mult) - 1).
      t: (B,) flow time (unused by the vanilla encoder).
      train: enables dropout.

    Returns:
      (mean, logvar), each (B, latent_dim) float32.
    """
    cfg = self.config
    mods = dict(dtype=cfg.compute_dtype, param_dtype=jnp.float32)
    res_block = res_block_cls(cfg)

    t_emb = None
    if cfg.encoder == "progressive":
      t_emb = layers.EmbeddingMLP(cfg.embedding_dim, name="time_embedding", **mods)(
        layers.timestep_embedding(t, cfg.num_channels)
      )

    mults = cfg.encoder_mult
    if cfg.encoder_coords:
      net_in = jnp.concatenate([net_in, coordinate_channels(net_in)], axis=-1)
    h = stem(cfg, net_in, cfg.num_channels * mults[0])
    for level, mult in enumerate(mults):
      for i in range(cfg.num_res_blocks):
        name = f"down_{level}_{i}"
        h = res_block(
          cfg.num_channels * mult, cfg.num_groups, cfg.dropout, name=f"{name}_res", **mods
        )(h, t_emb, None, train)
        if h.shape[1] in cfg.attention_resolutions:
          h = layers.AttentionBlock(cfg.num_heads, cfg.num_groups, name=f"{name}_attn", **mods)(h)
      if level < len(mults) - 1:
        h = layers.Downsample(name=f"down_{level}_downsample", **mods)(h)

    mid_channels = h.shape[-1]
    h = res_block(mid_channels, cfg.num_groups, cfg.dropout, name="mid_res_0", **mods)(
      h, t_emb, None, train
    )
    h = layers.AttentionBlock(cfg.num_heads, cfg.num_groups, name="mid_attn", **mods)(h)
    h = res_block(mid_channels, cfg.num_groups, cfg.dropout, name="mid_res_1", **mods)(
      h, t_emb, None, train
    )

    # The head runs in float32, like the output network's.
    h = nn.silu(nn.GroupNorm(cfg.num_groups, name="out_norm", dtype=jnp.float32)(h))
    if cfg.encoder_pool == "attention":
      return self._attention_head(h)
    if cfg.encoder_pool == "flatten":
      pooled = nn.silu(
        nn.Dense(ENCODER_FLATTEN_UNITS, dtype=jnp.float32, name="flatten_dense")(
          h.reshape(h.shape[0], -1)
        )
      )
    else:
      pooled = jnp.mean(h, axis=(1, 2))
    h = nn.Dense(
      2 * cfg.latent_dim,
      dtype=jnp.float32,
      bias_init=layers.posterior_bias(cfg.posterior_logvar_init),
      name="posterior",
    )(pooled)
    mean, logvar = jnp.split(h, 2, axis=-1)
    return mean, logvar

  def _attention_head(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One learned query per latent unit attends over the positions of h (B, H', W', C).

    A learned position embedding is added to the keys (attention alone is blind to position);
    unit l's mean and log-variance are a linear map of its query's output.
    """
    batch, height, width, channels = h.shape
    latent_dim = self.config.latent_dim
    positions = self.param(
      "position_embedding", nn.initializers.normal(0.02), (height * width, channels)
    )
    queries = self.param("queries", nn.initializers.normal(1.0), (latent_dim, channels))
    keys = h.reshape(batch, height * width, channels) + positions
    read = nn.MultiHeadDotProductAttention(
      self.config.num_heads, dtype=jnp.float32, force_fp32_for_softmax=True, name="pool"
    )(jnp.broadcast_to(queries, (batch, latent_dim, channels)), keys)
    kernel = self.param(
      "posterior_kernel",
      nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=1, out_axis=2),
      (latent_dim, channels, 2),
    )
    bias = (
      layers.posterior_bias(self.config.posterior_logvar_init)(None, (2 * latent_dim,))
      .reshape(2, latent_dim)
      .T
    )
    out = jnp.einsum("blc,lco->blo", read, kernel) + self.param(
      "posterior_bias", lambda key, shape: bias, bias.shape
    )
    return out[..., 0], out[..., 1]


def coordinate_channels(x: jax.Array) -> jax.Array:
  """(B, H, W, 2) channels holding each pixel's x and y in [-1, 1] (CoordConv), dtype of x."""
  batch, height, width = x.shape[:3]
  coords = layers.position_grid(height, width).astype(x.dtype)
  return jnp.broadcast_to(coords, (batch, height, width, 2))
