"""Self-encoder q_phi(z_t | theta_t, t): a Gaussian posterior over z_t (Sec. 3.1, App. C.3)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from paramrel_jax.config.network import NetworkConfig
from paramrel_jax.networks import layers
from paramrel_jax.networks.unet import res_block_cls, stem


class SelfEncoder(nn.Module):
  """The down path and bottleneck of the output U-Net, pooled to a diagonal Gaussian over z_t.

  `config.encoder` picks the variant of paper Fig. 8: 'progressive' conditions every res block on
  the time embedding by AdaGN (Eq. 11), giving q(z_t | theta_t, t); 'vanilla' builds no time
  embedding and uses plain GroupNorm, giving q(z_t | theta_t), exactly independent of t.

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
    h = nn.Dense(2 * cfg.latent_dim, dtype=jnp.float32, bias_init=self._posterior_bias,
                 name="posterior")(jnp.mean(h, axis=(1, 2)))
    mean, logvar = jnp.split(h, 2, axis=-1)
    return mean, logvar

  def _posterior_bias(self, key, shape, dtype=jnp.float32):
    """Posterior head bias: 0 for the means, `posterior_logvar_init` for the log-variances."""
    del key
    latent_dim = shape[0] // 2
    return jnp.concatenate([jnp.zeros((latent_dim,), dtype),
                            jnp.full((latent_dim,), self.config.posterior_logvar_init, dtype)])
