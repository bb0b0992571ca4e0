"""Building blocks of the ParamReL networks (paper App. C).

Images are NHWC. Every module takes a compute `dtype` and keeps its parameters in `param_dtype`
(float32), so `dtype=jnp.bfloat16` gives bfloat16 activations with float32 weights.
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

# The official BFN / VDM U-Net uses the frequencies 2 pi 2^k for k = 5, 6.
FOURIER_EXPONENTS = (5, 6)
# Flow time t in [0, 1] is stretched to the [0, 1000] range of DDPM-style step embeddings.
TIME_SCALE = 1000.0


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
  """Sinusoidal embedding of the flow time.

  Args:
    t: flow times, shape (B,), in [0, 1]; scaled by `TIME_SCALE` before the sinusoids.
    dim: embedding size (even).
    max_period: the longest period of the sinusoids.

  Returns:
    (B, dim) float32 array [cos(TIME_SCALE t f_k), sin(TIME_SCALE t f_k)] with geometric
    frequencies f_k from 1 down to 1 / max_period.
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = TIME_SCALE * t.astype(jnp.float32)[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def fourier_features(x: jax.Array, exponents: Sequence[int] = FOURIER_EXPONENTS) -> jax.Array:
  """High-frequency Fourier features of the network input (official BFN continuous U-Net).

  Args:
    x: (B, H, W, C) network input.
    exponents: k of the frequencies 2 pi 2^k.

  Returns:
    (B, H, W, 2 * len(exponents) * C): sin of all frequencies, then cos.
  """
  freqs = 2.0 * jnp.pi * 2.0 ** jnp.asarray(exponents, dtype=x.dtype)
  features = (x[..., None, :] * freqs[:, None]).reshape(*x.shape[:-1], -1)
  return jnp.concatenate([jnp.sin(features), jnp.cos(features)], axis=-1)


def position_grid(height: int, width: int) -> jax.Array:
  """(height, width, 2) float32 grid of each pixel's (x, y) in [-1, 1], x along the width."""
  ys, xs = jnp.meshgrid(
    jnp.linspace(-1.0, 1.0, height), jnp.linspace(-1.0, 1.0, width), indexing="ij"
  )
  return jnp.stack([xs, ys], axis=-1)


class EmbeddingMLP(nn.Module):
  """Two-layer MLP embedding of a conditioning vector (the time sinusoids or the latent z).

  Attributes:
    features: output size.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps (B, D) to (B, features)."""
    x = nn.Dense(self.features, dtype=self.dtype, param_dtype=self.param_dtype, name="dense_0")(x)
    x = nn.silu(x)
    return nn.Dense(self.features, dtype=self.dtype, param_dtype=self.param_dtype, name="dense_1")(
      x
    )


def latent_map(
  z: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32, param_dtype: Dtype = jnp.float32
) -> jax.Array:
  """A learned linear map of z (B, L) to a feature map (B, *shape), e.g. (B, h, w, C).

  AdaGN gives z per-channel scales and shifts only, which cannot place content in space: where
  theta_t is (nearly) constant, e.g. t near 0, the output network could not draw x from z. This
  map, added to the bottleneck features, is a spatial path for z, as an autoencoder's decoder has.
  Called inside a compact module (its parameters are named 'latent_map').
  """
  h = nn.Dense(math.prod(shape), dtype=dtype, param_dtype=param_dtype, name="latent_map")(z)
  return h.reshape(z.shape[0], *shape)


def posterior_bias(logvar_init: float):
  """Initializer of a posterior head's bias (2 L,): 0 for the L means, logvar_init for the L
  log-variances."""

  def init(key, shape, dtype=jnp.float32):
    del key
    latent_dim = shape[0] // 2
    return jnp.concatenate(
      [jnp.zeros((latent_dim,), dtype), jnp.full((latent_dim,), logvar_init, dtype)]
    )

  return init


class AdaGroupNorm(nn.Module):
  """Adaptive group normalisation (paper App. C.1).

  With the time embedding only (Eq. 11):
    AdaGN(h, t) = (1 + s(t)) GroupNorm(h) + b(t).
  With the latent embedding as well, `form` picks how z enters:
    'paper' (Eq. 12): AdaGN(h, z, t) = (1 + s(t)) GroupNorm((1 + s(z)) GroupNorm(h) + b(z)) + b(t);
    'diffae' (DiffAE, Preechakul et al. 2022, Eq. 7): AdaGN(h, z, t) = (1 + s(z)) ((1 + s(t))
      GroupNorm(h) + b(t)).
  Eq. 12's outer GroupNorm removes every per-channel scale and shift that z applies inside a group:
  with one channel per group (e.g. 32 channels in 32 groups) z has no effect at all, with a few
  channels per group only their relative changes survive. The DiffAE form scales after the last
  normalisation, so z always reaches the features.
  With neither embedding it is a plain GroupNorm with a learned affine map. s and b are one dense
  layer on the SiLU of the embedding; the normalisations they follow carry no affine parameters of
  their own.

  Attributes:
    num_groups: groups of GroupNorm.
    form: 'paper' or 'diffae' (ADAGN_FORMS), how z enters.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  num_groups: int
  form: str = "paper"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _modulate(self, h: jax.Array, emb: jax.Array, name: str) -> jax.Array:
    """(1 + s(emb)) GroupNorm(h) + b(emb) for h (B, H, W, C) and emb (B, E)."""
    channels = h.shape[-1]
    h = nn.GroupNorm(
      self.num_groups,
      use_scale=False,
      use_bias=False,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name=f"{name}_norm",
    )(h)
    scale_shift = nn.Dense(
      2 * channels, dtype=self.dtype, param_dtype=self.param_dtype, name=f"{name}_scale_shift"
    )(nn.silu(emb))
    scale, shift = jnp.split(scale_shift[:, None, None, :], 2, axis=-1)
    return (1 + scale) * h + shift

  def _scale(self, h: jax.Array, emb: jax.Array, name: str) -> jax.Array:
    """(1 + s(emb)) h for h (B, H, W, C) and emb (B, E), without normalising h."""
    scale = nn.Dense(
      h.shape[-1], dtype=self.dtype, param_dtype=self.param_dtype, name=f"{name}_scale"
    )(nn.silu(emb))
    return (1 + scale[:, None, None, :]) * h

  @nn.compact
  def __call__(
    self, h: jax.Array, t_emb: jax.Array | None = None, z_emb: jax.Array | None = None
  ) -> jax.Array:
    """Normalises h (B, H, W, C) conditioned on t_emb (B, E) and / or z_emb (B, E)."""
    if t_emb is None and z_emb is None:
      return nn.GroupNorm(
        self.num_groups, dtype=self.dtype, param_dtype=self.param_dtype, name="norm"
      )(h)
    if z_emb is not None and self.form == "paper":
      h = self._modulate(h, z_emb, "z")
    if t_emb is not None:
      h = self._modulate(h, t_emb, "t")
    elif self.form == "diffae":
      h = nn.GroupNorm(
        self.num_groups,
        use_scale=False,
        use_bias=False,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name="z_norm",
      )(h)
    if z_emb is not None and self.form == "diffae":
      h = self._scale(h, z_emb, "z")
    return h


class ResBlock(nn.Module):
  """Residual block GN-SiLU-conv, AdaGN-SiLU-dropout-conv, plus a (1x1-projected) skip.

  The second convolution is zero-initialised, so a block starts as its skip path.

  Attributes:
    out_channels: channels of the output.
    num_groups: groups of the normalisations.
    dropout: dropout rate before the second convolution ('dropout' rng).
    adagn: how z enters the AdaGN ('paper' Eq. 12 or 'diffae', see AdaGroupNorm).
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  out_channels: int
  num_groups: int
  dropout: float = 0.0
  adagn: str = "paper"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(
    self,
    x: jax.Array,
    t_emb: jax.Array | None,
    z_emb: jax.Array | None,
    train: bool,
  ) -> jax.Array:
    """Maps x (B, H, W, C) to (B, H, W, out_channels); `train` enables dropout.

    `train` comes last and positionally so that `nn.remat` can mark it static.
    """
    conv = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    h = nn.GroupNorm(self.num_groups, name="norm_0", **conv)(x)
    h = nn.Conv(self.out_channels, (3, 3), name="conv_0", **conv)(nn.silu(h))
    h = AdaGroupNorm(self.num_groups, self.adagn, name="ada_norm", **conv)(h, t_emb, z_emb)
    h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
    h = nn.Conv(
      self.out_channels, (3, 3), kernel_init=nn.initializers.zeros, name="conv_1", **conv
    )(h)
    if x.shape[-1] != self.out_channels:
      x = nn.Conv(self.out_channels, (1, 1), name="skip", **conv)(x)
    return x + h


class AttentionBlock(nn.Module):
  """Residual multi-head attention of the H * W positions of a feature map: to each other, or
  (cross-attention) to a set of tokens.

  The queries are the normalised features; the keys and values are the same features, or the
  tokens when `context` is given. The output projection is zero-initialised, so the block starts
  as the identity.

  Attributes:
    num_heads: attention heads (must divide the channels).
    num_groups: groups of the input GroupNorm.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  num_heads: int
  num_groups: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
    """Maps x (B, H, W, C), and optionally tokens `context` (B, T, D), to (B, H, W, C)."""
    batch, height, width, channels = x.shape
    h = nn.GroupNorm(self.num_groups, dtype=self.dtype, param_dtype=self.param_dtype, name="norm")(
      x
    )
    h = h.reshape(batch, height * width, channels)
    h = nn.MultiHeadDotProductAttention(
      self.num_heads,
      qkv_features=channels,
      out_features=channels,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      out_kernel_init=nn.initializers.zeros,
      force_fp32_for_softmax=True,
      name="attention",
    )(h, context)
    return x + h.reshape(batch, height, width, channels)


class LatentTokens(nn.Module):
  """z as tokens: each group of `group_size` consecutive units gets its own two-layer MLP.

  Token k depends on units k * group_size ... (k + 1) * group_size - 1 of z and on no other, so
  a change of one unit reaches the output network through one token only (EncDiff's per-latent
  tokens).

  Attributes:
    group_size: units of z per token (must divide L).
    features: token width.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  group_size: int
  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """Maps z (B, L) to tokens (B, L / group_size, features)."""
    batch, latent_dim = z.shape
    if latent_dim % self.group_size:
      raise ValueError(
        f"model.latent_group_size={self.group_size} must divide latent_dim={latent_dim}."
      )
    num_tokens = latent_dim // self.group_size
    groups = z.reshape(batch, num_tokens, self.group_size).astype(self.dtype)

    def per_token_dense(x: jax.Array, name: str) -> jax.Array:
      fan_in = x.shape[-1]
      kernel = self.param(
        f"{name}_kernel",
        nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=1, out_axis=2),
        (num_tokens, fan_in, self.features),
        self.param_dtype,
      )
      bias = self.param(
        f"{name}_bias", nn.initializers.zeros, (num_tokens, self.features), self.param_dtype
      )
      return jnp.einsum("btf,tfd->btd", x, kernel.astype(self.dtype)) + bias.astype(self.dtype)

    return per_token_dense(nn.silu(per_token_dense(groups, "dense_0")), "dense_1")


class ContentMaskMap(nn.Module):
  """z as a feature map of contents placed by masks (after FDAE's content and mask codes).

  Each group k of `group_size` consecutive units gives a content vector c_k (a `LatentTokens`
  MLP) and a mask code m_k (another), which a small MLP over the position p = (x, y) in [-1, 1]^2
  turns into a logit l_k(p) = MLP(m_k + P p); a softmax over k at temperature T makes the logits
  masks, and the map is F(p) = sum_k softmax_k(l(p) / T) c_k. A unit of group k moves what its
  token draws and where, and nothing of the other tokens: the map places content in space, which
  AdaGN cannot.

  Attributes:
    group_size: units of z per token (must divide L).
    features: width of the map.
    hidden: width of the mask MLP.
    temperature: T of the masks' softmax (below 1: sharper masks).
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  group_size: int
  features: int
  hidden: int = 32
  temperature: float = 1.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """Maps z (B, L) to the map (B, height, width, features) and its masks (B, K, height, width).

    Returns:
      (map, masks), K = L / group_size tokens; the masks sum to 1 over K at every position.
    """
    mods = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    content = LatentTokens(self.group_size, self.features, name="content", **mods)(z)
    mask_code = LatentTokens(self.group_size, self.hidden, name="mask_code", **mods)(z)
    position = nn.Dense(self.hidden, name="position", **mods)(position_grid(height, width))
    h = nn.silu(mask_code[:, :, None, None, :] + position)  # (B, K, H, W, hidden)
    h = nn.silu(nn.Dense(self.hidden, name="mask_hidden", **mods)(h))
    logits = nn.Dense(1, name="mask_logit", **mods)(h)[..., 0].astype(jnp.float32)
    masks = jax.nn.softmax(logits / self.temperature, axis=1)
    return jnp.einsum("bkhw,bkf->bhwf", masks.astype(self.dtype), content), masks


class Downsample(nn.Module):
  """Halves H and W with a stride-2 3x3 convolution (H and W must be even).

  Attributes:
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps (B, H, W, C) to (B, H / 2, W / 2, C)."""
    return nn.Conv(
      x.shape[-1],
      (3, 3),
      strides=(2, 2),
      padding=((1, 1), (1, 1)),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="conv",
    )(x)


class Upsample(nn.Module):
  """Doubles H and W by nearest-neighbour repetition followed by a 3x3 convolution.

  Attributes:
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """

  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Maps (B, H, W, C) to (B, 2 H, 2 W, C)."""
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return nn.Conv(
      x.shape[-1], (3, 3), dtype=self.dtype, param_dtype=self.param_dtype, name="conv"
    )(x)


def output_head(h: jax.Array, out_channels: int, num_groups: int) -> jax.Array:
  """GroupNorm-SiLU-conv to `out_channels`, zero-initialised and in float32.

  Call inside a compact method: the layers are named `out_norm` and `conv_out` in the caller's
  scope. The head runs in float32 because the flow math downstream (e.g. Eq. 10) amplifies
  output errors.
  """
  h = nn.silu(nn.GroupNorm(num_groups, name="out_norm", dtype=jnp.float32)(h))
  return nn.Conv(
    out_channels, (3, 3), kernel_init=nn.initializers.zeros, dtype=jnp.float32, name="conv_out"
  )(h)
