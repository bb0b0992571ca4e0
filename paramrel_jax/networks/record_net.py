"""RecordNet: ParamReL's self-encoder and output network for records (mixed-type tables).

The same interface as `ParamReLNet` (`encode`, `decode`, `encoder_input`, `config`), for the flat
network input of `bfn.mixed.MixedFlow` (B, sum of the columns' input channels, each column's
observed flag included) instead of images:

  tokens      each column's slice of the input, by its own dense layer, to one token of width
              `num_channels` (the layer's bias is the column's embedding);
  transformer `num_res_blocks` pre-norm blocks of self-attention over the column tokens and an
              MLP, each LayerNorm modulated by the conditioning vector (adaptive LayerNorm);
  heads       each column's token, by its own zero-initialised dense layer, to that column's
              output channels (float32).

Conditioning follows `config.conditioning`: 'adagn', the embeddings of t and z summed into the
vector that modulates every LayerNorm (the AdaGN of Eq. 11-12 for tokens); 'cross_attention',
z as tokens (`layers.LatentTokens`) that join the column tokens in every self-attention, t in
the modulation; 'content_mask' places z in an image's space and is refused
(`NetworkConfig.check_records`). The encoder has
the same tokens and blocks ('progressive': modulated by t; 'vanilla': by nothing), a mean over
the column tokens and the posterior head.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from paramrel_jax.config.network import NetworkConfig
from paramrel_jax.networks import layers


def _split(net_in: jax.Array, channels: tuple[int, ...]) -> list[jax.Array]:
  """(B, sum(channels)) -> one (B, c) slice per column."""
  if net_in.ndim != 2 or net_in.shape[1] != sum(channels):
    raise ValueError(
      f"net_in must have shape (B, {sum(channels)}) (the columns' input channels), "
      f"got {tuple(net_in.shape)}."
    )
  bounds = [0]
  for c in channels:
    bounds.append(bounds[-1] + c)
  return [net_in[:, a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class _Block(nn.Module):
  """Pre-norm transformer block with adaptive LayerNorms: h + attn(aLN(h)), then + mlp(aLN(h)).

  Extra tokens (z's, or none) are attended to and not updated.
  """

  config: NetworkConfig

  def _norm(self, h: jax.Array, cond: jax.Array | None, name: str) -> jax.Array:
    if cond is None:
      return nn.LayerNorm(name=f"{name}_norm")(h)
    h = nn.LayerNorm(use_scale=False, use_bias=False, name=f"{name}_norm")(h)
    scale, shift = jnp.split(nn.Dense(2 * h.shape[-1], name=f"{name}_film")(nn.silu(cond)), 2, -1)
    return (1 + scale[:, None]) * h + shift[:, None]

  @nn.compact
  def __call__(self, h, cond, extra, train: bool):
    cfg = self.config
    width = h.shape[-1]
    x = self._norm(h, cond, "attn")
    context = x if extra is None else jnp.concatenate([x, extra], axis=1)
    h = h + nn.MultiHeadDotProductAttention(
      cfg.num_heads, dropout_rate=cfg.dropout, deterministic=not train, name="attn"
    )(x, context)
    x = self._norm(h, cond, "mlp")
    x = nn.Dense(4 * width, name="mlp_in")(x)
    x = nn.Dropout(cfg.dropout, deterministic=not train)(nn.silu(x))
    return h + nn.Dense(width, kernel_init=nn.initializers.zeros, name="mlp_out")(x)


class _Trunk(nn.Module):
  """Column tokens and the transformer blocks: (B, sum Cin) -> (B, num_columns, width)."""

  config: NetworkConfig
  input_channels: tuple[int, ...]

  @nn.compact
  def __call__(self, net_in, cond, extra, train: bool):
    width = self.config.num_channels
    tokens = jnp.stack(
      [
        nn.Dense(width, name=f"column_{k}")(part)
        for k, part in enumerate(_split(net_in.astype(jnp.float32), self.input_channels))
      ],
      axis=1,
    )
    for block in range(self.config.num_res_blocks):
      tokens = _Block(self.config, name=f"block_{block}")(tokens, cond, extra, train)
    return nn.LayerNorm(name="out_norm")(tokens)


class RecordNet(nn.Module):
  """Self-encoder q_phi(z_t | e, t) and output network psi(theta_t, z_t, t) for records.

  Attributes:
    config: network settings; reads num_channels (token width), num_res_blocks (blocks),
      num_heads, dropout, latent_dim, encoder, encoder_input, conditioning, latent_group_size,
      posterior_logvar_init (the image-only fields are ignored).
    input_channels: each column's network-input channels (`MixedFlow`: its flow's, plus 1).
    output_channels: each column's output channels (its flow's `params_per_dim`).
  """

  config: NetworkConfig
  input_channels: tuple[int, ...]
  output_channels: tuple[int, ...]

  @property
  def encoder_input(self) -> str:
    """What `encode` reads: 'data', 'final_params' or 'theta_t' (`objective.encoder_input`)."""
    return self.config.encoder_input

  def setup(self):
    if len(self.input_channels) != len(self.output_channels) or not self.input_channels:
      raise ValueError(
        f"input_channels {self.input_channels} and output_channels {self.output_channels} must "
        "name the same, non-zero number of columns."
      )
    cfg = self.config
    cfg.check_records()
    self.time_embedding = layers.EmbeddingMLP(cfg.embedding_dim)
    self.decoder = _Trunk(cfg, self.input_channels)
    self.heads = [
      nn.Dense(c, kernel_init=nn.initializers.zeros, name=f"head_{k}")
      for k, c in enumerate(self.output_channels)
    ]
    if cfg.latent_dim > 0:
      self.encoder = _Trunk(cfg, self.input_channels)
      if cfg.encoder == "progressive":
        self.encoder_time_embedding = layers.EmbeddingMLP(cfg.embedding_dim)
      self.posterior = nn.Dense(
        2 * cfg.latent_dim, bias_init=layers.posterior_bias(cfg.posterior_logvar_init)
      )
      if cfg.conditioning == "adagn":
        self.latent_embedding = layers.EmbeddingMLP(cfg.embedding_dim)
      else:
        self.latent_tokens = layers.LatentTokens(cfg.latent_group_size, cfg.num_channels)

  def _check(self, net_in: jax.Array, t: jax.Array) -> None:
    if t.shape != net_in.shape[:1]:
      raise ValueError(f"t must have shape (B,) = {net_in.shape[:1]}, got {t.shape}.")

  def encode(self, net_in: jax.Array, t: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    """(mean, logvar) of q(z_t | e, t), each (B, latent_dim) float32 ((B, 0) without latents).

    Args:
      net_in: (B, sum input_channels) the encoder input e.
      t: (B,) flow time (ignored exactly by the 'vanilla' encoder).
      train: enables dropout.
    """
    self._check(net_in, t)
    if self.config.latent_dim == 0:
      empty = jnp.zeros((net_in.shape[0], 0), jnp.float32)
      return empty, empty
    cond = None
    if self.config.encoder == "progressive":
      cond = self.encoder_time_embedding(layers.timestep_embedding(t, self.config.num_channels))
    tokens = self.encoder(net_in, cond, None, train)
    mean, logvar = jnp.split(self.posterior(jnp.mean(tokens, axis=1)), 2, axis=-1)
    return mean, logvar

  def decode(self, net_in: jax.Array, z: jax.Array, t: jax.Array, *, train: bool) -> jax.Array:
    """psi(theta_t, z_t, t): (B, sum output_channels) float32, for `MixedFlow.output_dist`.

    Args:
      net_in: (B, sum input_channels) flow input theta_t (`MixedFlow.net_input`).
      z: (B, latent_dim) latent (a (B, 0) array without latents).
      t: (B,) flow time.
      train: enables dropout.
    """
    self._check(net_in, t)
    expected = (net_in.shape[0], self.config.latent_dim)
    if z.shape != expected:
      raise ValueError(f"z must have shape (B, latent_dim) = {expected}, got {z.shape}.")
    cond = self.time_embedding(layers.timestep_embedding(t, self.config.num_channels))
    extra = None
    if self.config.latent_dim > 0 and self.config.conditioning == "adagn":
      cond = cond + self.latent_embedding(z.astype(jnp.float32))
    elif self.config.latent_dim > 0:
      extra = self.latent_tokens(z)
    tokens = self.decoder(net_in, cond, extra, train)
    return jnp.concatenate(
      [head(tokens[:, k]) for k, head in enumerate(self.heads)], axis=-1
    ).astype(jnp.float32)

  def __call__(self, net_in, t, z, *, train: bool):
    """Runs both networks (creates all parameters at `init`): (mean, logvar, net_out)."""
    mean, logvar = self.encode(net_in, t, train=train)
    return mean, logvar, self.decode(net_in, z, t, train=train)
