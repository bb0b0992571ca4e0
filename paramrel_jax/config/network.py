"""Network configuration and named size variants.

`NetworkConfig` sizes both ParamReL networks: the output U-Net psi(theta_t, z_t, t) and the
self-encoder q_phi(z_t | theta_t, t) (paper App. C). `get_variant(name, **overrides)` returns a
named size with some fields replaced, e.g. `get_variant("paper_celeba", dropout=0.1)`.

Variants ('paper_*' follow Table 5: data shape, channels, channel mult, latent dim; the paper
does not give the remaining fields, which follow the guided-diffusion U-Net the paper builds on):
  tiny            8 ch, mult (1, 2), 1 res block, 4 groups, latent 4: unit tests only.
  small           16 ch, mult (1, 2, 2), 1 res block, 8 groups, latent 16: CPU runs, 28x28 or 32x32.
  paper_mnist     28x28x1: 32 ch, mult (1, 2, 4), latent 32 (bMNIST and bFashionMNIST).
  paper_cifar10   32x32x3: 32 ch, mult (1, 2, 4), latent 32, dropout 0.1.
  paper_celeba    64x64x3: 64 ch, mult (1, 2, 2, 2), latent 64.
  paper_shapes3d  64x64x3: 64 ch, mult (1, 2, 2, 2), latent 32.
All paper variants use 2 res blocks per level, 32 groups, 4 heads and attention at the bottleneck
only (App. C.2). Our res blocks hold two convolutions where InfoDiffusion's hold three, which is
how we read the paper's "shallower" down and up paths.

Parameter counts (`parameter_counts`, exact, float32 MiB in brackets; output network for
continuous data, out_channels = C; the discretised / discrete heads add < 0.01M to the decoder):
  variant          input      encoder              decoder
  paper_mnist      28x28x1    1,608,544  (6.14)    4,158,369 (15.86)
  paper_cifar10    32x32x3    1,609,120  (6.14)    4,159,523 (15.87)
  paper_celeba     64x64x3    3,537,344 (13.49)   10,622,403 (40.52)
  paper_shapes3d   64x64x3    3,529,088 (13.46)   10,614,211 (40.49)
Paper Table 4 reports 245.41 MB (encoder) and 324.31 MB (decoder) for CelebA without saying what
the MB count, how many res blocks there are or where attention sits, so the sizes do not compare
directly; the encoder / decoder ratio differs as well (0.33 here, 0.76 there).
"""

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp

from paramrel_jax.bfn import checks

ENCODER_KINDS = ("vanilla", "progressive")
# What the self-encoder reads (`objective.encoder_input`): the clean data, theta_1 ~ p_F(. | x; 1),
# or the output network's own input theta_t (paper Eq. 3).
ENCODER_INPUTS = ("data", "final_params", "theta_t")
# How z enters the output network's AdaGN (`layers.AdaGroupNorm`): paper Eq. 12 or DiffAE's form.
ADAGN_FORMS = ("paper", "diffae")
# How z enters the output network: 'adagn', every unit of z scales and shifts every channel of
# every res block (Eq. 11-12, plus `latent_map`); 'cross_attention', z is split into tokens
# (`layers.LatentTokens`) that the features read by cross-attention after every res block, and
# z enters nowhere else (EncDiff's factorised form); 'content_mask', each token draws a content
# vector where its mask says (`layers.ContentMaskMap`, after FDAE's content and mask codes), a
# feature map added to every res block's input (images only), and z enters nowhere else.
CONDITIONINGS = ("adagn", "cross_attention", "content_mask")
# How the self-encoder reduces its last feature map to the posterior: 'mean' over positions (blind
# to where things are); 'flatten' (the map flattened, a dense layer of ENCODER_FLATTEN_UNITS, the
# head, as the VAE encoders of the disentanglement literature); 'attention' (one learned query per
# latent unit attends over the positions, with a learned position embedding on the keys).
ENCODER_POOLS = ("mean", "flatten", "attention")
ENCODER_FLATTEN_UNITS = 256
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
  """Sizes of the output U-Net and the self-encoder.

  Attributes:
    num_channels: base channels; level l has num_channels * channel_mult[l].
    channel_mult: channel multiplier per resolution level; H and W of the input must be divisible
      by 2 ** (len(channel_mult) - 1).
    num_res_blocks: residual blocks per level of the down path (the up path has one more).
    attention_resolutions: feature-map heights (pixels) at which self-attention follows each
      res block, besides the attention at the bottleneck that is always there.
    num_heads: attention heads.
    dropout: dropout rate inside the res blocks ('dropout' rng).
    num_groups: GroupNorm groups; must divide every level's channel count.
    latent_dim: size L of z_t; 0 builds no self-encoder and no z conditioning (plain BFN).
    encoder: 'progressive' (q(z_t | e, t), time-conditioned by AdaGN, Eq. 11) or 'vanilla'
      (q(z_t | e), no dependence on t), e the input chosen by `encoder_input`.
    encoder_input: what the self-encoder reads, one of ENCODER_INPUTS: 'data' (the clean x),
      'final_params' (theta_1 ~ p_F(theta | x; 1)) or 'theta_t' (the output network's input,
      Eq. 3); in the flow's network-input format either way, so the parameters are the same.
    encoder_channel_mult: channel multipliers of the encoder; None: the same as channel_mult.
    posterior_logvar_init: initial log-variance of q(z_t | e, t) (the bias of its head). 0 starts
      at the prior's variance, so z carries nothing until training shrinks it; a negative value
      starts nearly deterministic.
    latent_map: also add a learned linear map of z to the output network's bottleneck features
      (`layers.latent_map`), a spatial path for z besides AdaGN (conditioning 'adagn' only).
    adagn: how z conditions the output network, one of ADAGN_FORMS: 'paper' (Eq. 12, z modulates
      inside a second GroupNorm) or 'diffae' ((1 + s(z)) times the time-modulated features).
    conditioning: how z enters the output network, one of CONDITIONINGS ('adagn': by AdaGN, in
      the `adagn` form, and `latent_map`; 'cross_attention': by tokens alone; 'content_mask':
      by a spatial map of per-token contents and masks alone).
    latent_group_size: with 'cross_attention' or 'content_mask', units of z per token (must
      divide latent_dim).
    mask_temperature: with 'content_mask', the softmax temperature of the masks (below 1:
      sharper masks, each pixel drawn by fewer tokens).
    encoder_pool: how the self-encoder pools its feature map, one of ENCODER_POOLS.
    encoder_coords: concatenate two coordinate channels (x and y in [-1, 1]) to the encoder's
      input, so its features can say where they are.
    fourier_features: concatenate sin / cos Fourier features of the input (continuous data).
    dtype: compute dtype, 'float32' or 'bfloat16'; parameters, the output heads and the outputs
      stay float32.
    remat: rematerialise the res blocks in the backward pass (saves activation memory).
  """

  num_channels: int = 32
  channel_mult: tuple[int, ...] = (1, 2, 4)
  num_res_blocks: int = 2
  attention_resolutions: tuple[int, ...] = ()
  num_heads: int = 4
  dropout: float = 0.0
  num_groups: int = 32
  latent_dim: int = 32
  encoder: str = "progressive"
  encoder_input: str = "data"
  encoder_channel_mult: tuple[int, ...] | None = None
  adagn: str = "paper"
  conditioning: str = "adagn"
  latent_group_size: int = 1
  mask_temperature: float = 1.0
  encoder_pool: str = "mean"
  encoder_coords: bool = False
  posterior_logvar_init: float = 0.0
  latent_map: bool = False
  fourier_features: bool = False
  dtype: str = "float32"
  remat: bool = False

  def __post_init__(self):
    # Configs hand over lists; tuples keep the dataclass hashable (a static jit argument).
    for field in ("channel_mult", "attention_resolutions", "encoder_channel_mult"):
      value = getattr(self, field)
      if isinstance(value, Sequence) and not isinstance(value, str):
        object.__setattr__(self, field, tuple(value))
    self._validate()

  def _validate(self) -> None:
    def positive_ints(field: str, values: tuple[int, ...]) -> None:
      if not isinstance(values, tuple) or not values:
        raise ValueError(f"NetworkConfig.{field} must be a non-empty sequence, got {values!r}.")
      for value in values:
        checks.check_static_int(f"each of NetworkConfig.{field} {values!r}", value, 1)

    for field in ("num_channels", "num_res_blocks", "num_heads", "num_groups"):
      checks.check_static_int(f"NetworkConfig.{field}", getattr(self, field), 1)
    positive_ints("channel_mult", self.channel_mult)
    if self.encoder_channel_mult is not None:
      positive_ints("encoder_channel_mult", self.encoder_channel_mult)
    if self.attention_resolutions:
      positive_ints("attention_resolutions", self.attention_resolutions)
    for field in ("channel_mult", "encoder_channel_mult"):
      for mult in getattr(self, field) or ():
        channels = self.num_channels * mult
        if channels % self.num_groups:
          raise ValueError(
            f"NetworkConfig.num_groups={self.num_groups} must divide num_channels * {field}[l] "
            f"for every level, but {self.num_channels} * {mult} = {channels} is not divisible."
          )
        if channels % self.num_heads:
          raise ValueError(
            f"NetworkConfig.num_heads={self.num_heads} must divide num_channels * {field}[l] "
            f"for every level, but {self.num_channels} * {mult} = {channels} is not divisible."
          )
    checks.check_range("NetworkConfig.dropout", self.dropout, 0, 1, open_high=True)
    checks.check_static_int("NetworkConfig.latent_dim", self.latent_dim, 0)
    checks.check_choice("NetworkConfig.encoder", self.encoder, ENCODER_KINDS)
    checks.check_choice("model.encoder_input", self.encoder_input, ENCODER_INPUTS)
    checks.check_choice("model.adagn", self.adagn, ADAGN_FORMS)
    checks.check_choice("model.conditioning", self.conditioning, CONDITIONINGS)
    checks.check_static_int("model.latent_group_size", self.latent_group_size, 1)
    if self.conditioning != "adagn" and self.latent_dim % self.latent_group_size:
      raise ValueError(
        f"model.latent_group_size={self.latent_group_size} must divide "
        f"model.latent_dim={self.latent_dim} (one token per group of units)."
      )
    checks.check_positive("model.mask_temperature", self.mask_temperature, setting=True)
    checks.check_choice("model.encoder_pool", self.encoder_pool, ENCODER_POOLS)
    checks.check_choice("NetworkConfig.dtype", self.dtype, DTYPES)

  @property
  def compute_dtype(self) -> jnp.dtype:
    """The jnp dtype of the activations."""
    return jnp.dtype(DTYPES[self.dtype])

  @property
  def embedding_dim(self) -> int:
    """Width of the time and latent embeddings (4 * num_channels, as in guided diffusion)."""
    return 4 * self.num_channels

  @property
  def encoder_mult(self) -> tuple[int, ...]:
    """The encoder's channel multipliers."""
    return self.channel_mult if self.encoder_channel_mult is None else self.encoder_channel_mult

  def check_records(self) -> None:
    """Raises ValueError if this network cannot read a table's records (`RecordNet`)."""
    if self.conditioning == "content_mask":
      raise ValueError(
        "model.conditioning='content_mask' places z in an image's space; a table's records take "
        "'adagn' or 'cross_attention'."
      )

  def check_image_shape(self, shape: tuple[int, ...], name: str = "net_in") -> None:
    """Raises ValueError unless `shape` is (B, H, W, C) with H, W divisible by every down path.

    Args:
      shape: static shape of the network input.
      name: argument name used in the error message.
    """
    if len(shape) != 4:
      raise ValueError(f"{name} must have shape (B, H, W, C), got {shape}.")
    mults = [("channel_mult", self.channel_mult)]
    if self.latent_dim > 0:
      mults.append(("encoder_channel_mult", self.encoder_mult))
    for field, mult in mults:
      factor = 2 ** (len(mult) - 1)
      if shape[1] % factor or shape[2] % factor:
        raise ValueError(
          f"{name} has H x W = {shape[1]} x {shape[2]}, but NetworkConfig.{field}={mult} has "
          f"{len(mult)} levels, so H and W must be divisible by 2 ** {len(mult) - 1} = {factor}."
        )


VARIANTS: dict[str, NetworkConfig] = {
  "tiny": NetworkConfig(
    num_channels=8,
    channel_mult=(1, 2),
    num_res_blocks=1,
    num_heads=1,
    num_groups=4,
    latent_dim=4,
  ),
  "small": NetworkConfig(
    num_channels=16,
    channel_mult=(1, 2, 2),
    num_res_blocks=1,
    num_heads=2,
    num_groups=8,
    latent_dim=16,
  ),
  "paper_mnist": NetworkConfig(num_channels=32, channel_mult=(1, 2, 4), latent_dim=32),
  "paper_cifar10": NetworkConfig(
    num_channels=32, channel_mult=(1, 2, 4), latent_dim=32, dropout=0.1
  ),
  "paper_celeba": NetworkConfig(num_channels=64, channel_mult=(1, 2, 2, 2), latent_dim=64),
  "paper_shapes3d": NetworkConfig(num_channels=64, channel_mult=(1, 2, 2, 2), latent_dim=32),
  # RecordNet (tables): tokens of width 64, 3 transformer blocks of 4 heads (channel_mult and
  # num_groups are image-only fields)
  "record": NetworkConfig(
    num_channels=64, channel_mult=(1,), num_res_blocks=3, num_heads=4, num_groups=8, latent_dim=8
  ),
}


def get_variant(name: str, **overrides) -> NetworkConfig:
  """Returns the named size variant with `overrides` replacing some of its fields.

  Args:
    name: a key of `VARIANTS`.
    **overrides: NetworkConfig fields to replace (the result is validated again).

  Raises:
    ValueError: unknown variant name or field, or an invalid resulting configuration.
  """
  if name not in VARIANTS:
    raise ValueError(f"Unknown network variant name={name!r}; known: {sorted(VARIANTS)}.")
  fields = {f.name for f in dataclasses.fields(NetworkConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f"Unknown NetworkConfig field(s) {unknown} in overrides of {name!r}.")
  return dataclasses.replace(VARIANTS[name], **overrides)
