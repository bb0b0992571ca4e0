"""Sample-space autoencoder baselines of paper Tables 2 and 3: AE, VAE, beta-VAE and InfoVAE, and
beta-TCVAE for the disentanglement study.

All five share one network (`AutoencoderNet`): the ParamReL self-encoder in its 'vanilla' form
(`networks.encoder.SelfEncoder`, q(z | x), no time input) applied to the image in the form the
flow's network sees it (binary x -> 2 x - 1, images as they are), and the convolutional decoder of
`baselines.decoder`. Per example x the loss is

  L(x) = -ln p(x | z) + kl_weight * KL[q(z | x) || N(0, I)] + mmd_weight * MMD(q(z) || N(0, I))

with z = the posterior mean (AE, both weights 0) or a reparameterised draw (VAE: kl_weight 1;
beta-VAE: kl_weight beta (Higgins et al., 2017); InfoVAE: the ParamReL objective's kl_weight and
mmd_weight, i.e. (1 - alpha) and (alpha + lambda - 1) of Zhao et al. (2019), the MMD of Eq. 7
on the batch of z). beta-TCVAE (Chen et al., 2018) adds tc_weight * TC[q(z)] with tc_weight =
beta - 1 to the VAE's loss, so that the total correlation inside the KL weighs beta and its mutual
information and dimension-wise parts weigh 1 (`objective.total_correlation`). The likelihood
p(x | z) is Bernoulli (one logit per pixel) for binary data,
the discretised Normal of the BFN (`bfn.discretised.log_prob`) with a learned log-std per channel
for discretised data, and a Normal with the fixed std `CONTINUOUS_STD` for continuous data.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from paramrel_jax.bfn import discretised
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.methods.baselines.decoder import ConvDecoder
from paramrel_jax.methods.paramrel import objective
from paramrel_jax.networks import NetworkConfig, SelfEncoder

# Std of the Normal likelihood of continuous data (a fixed observation noise, as in most VAEs).
CONTINUOUS_STD = 0.1
# A posterior mean dimension is active when its variance over the batch exceeds this (Burda et
# al., 2016), as in `objective.latent_diagnostics`.
ACTIVE_THRESHOLD = 0.01


class DataSpace(abc.ABC):
  """Maps data to the float form the networks see, model outputs back to data, and scores data
  under the decoder's likelihood; one subclass per form of data (`data_space` picks it).

  Attributes:
    learn_std: the decoder holds a learned log-std per channel, params['log_std'] (C,).
  """

  learn_std: ClassVar[bool] = False

  def to_model(self, x: jax.Array) -> jax.Array:
    """(B, H, W, C) data -> float32 in [-1, 1]."""
    return x.astype(jnp.float32)

  @abc.abstractmethod
  def from_model(self, y: jax.Array) -> jax.Array:
    """Float (B, H, W, C) in model space (or the decoder's output) -> data of the same shape."""

  @abc.abstractmethod
  def log_prob(self, x: jax.Array, out: jax.Array, log_std: jax.Array | None) -> jax.Array:
    """ln p(x | decoder output) per element, x's shape."""


@dataclasses.dataclass(frozen=True)
class BinarySpace(DataSpace):
  """Binary int32 {0, 1} data: the networks see 2 x - 1; a Bernoulli with one logit per pixel."""

  def to_model(self, x: jax.Array) -> jax.Array:
    return 2.0 * x.astype(jnp.float32) - 1.0

  def from_model(self, y: jax.Array) -> jax.Array:
    """int32 [y > 0]."""
    return (y > 0).astype(jnp.int32)

  def log_prob(self, x: jax.Array, out: jax.Array, log_std: jax.Array | None) -> jax.Array:
    return -optax.sigmoid_binary_cross_entropy(out, x.astype(jnp.float32))


@dataclasses.dataclass(frozen=True)
class DiscretisedSpace(DataSpace):
  """float32 data on K bin centres in [-1, 1]: the BFN's discretised Normal
  (`bfn.discretised.log_prob`) with a learned log-std per channel."""

  num_bins: int
  learn_std: ClassVar[bool] = True

  def __post_init__(self):
    if self.num_bins < 2:
      raise ValueError(f"num_bins must be >= 2 for discretised data, got {self.num_bins}.")

  def from_model(self, y: jax.Array) -> jax.Array:
    """y clipped to [-1, 1] and moved to its bin centre."""
    return discretised.quantize(jnp.clip(y.astype(jnp.float32), -1.0, 1.0), self.num_bins)

  def log_prob(self, x: jax.Array, out: jax.Array, log_std: jax.Array | None) -> jax.Array:
    std = jnp.maximum(jnp.exp(log_std), discretised.MIN_STD)
    return discretised.log_prob(x, out, std, self.num_bins)


@dataclasses.dataclass(frozen=True)
class ContinuousSpace(DataSpace):
  """float32 data in [-1, 1]: a Normal with the fixed std `CONTINUOUS_STD`."""

  def from_model(self, y: jax.Array) -> jax.Array:
    """y clipped to [-1, 1]."""
    return jnp.clip(y.astype(jnp.float32), -1.0, 1.0)

  def log_prob(self, x: jax.Array, out: jax.Array, log_std: jax.Array | None) -> jax.Array:
    std = CONTINUOUS_STD
    return -0.5 * jnp.square((x - out) / std) - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi)


def data_space(flow: Flow) -> DataSpace:
  """The data space of a flow's data; discrete data must be binary (K = 2)."""
  if flow.integer_data:
    if flow.num_classes != 2:
      raise ValueError(
        f"the baselines model binary discrete data only, got flow.num_classes={flow.num_classes}."
      )
    return BinarySpace()
  if flow.finite_values:
    return DiscretisedSpace(flow.num_bins)
  return ContinuousSpace()


def vanilla_encoder_config(network: NetworkConfig) -> NetworkConfig:
  """The network config with the 'vanilla' self-encoder, q(z | x); needs latent_dim > 0."""
  if network.latent_dim < 1:
    raise ValueError(
      f"the baselines need model.latent_dim >= 1, got {network.latent_dim} (latent_dim = 0 is a "
      "plain BFN, which has no latents)."
    )
  return dataclasses.replace(network, encoder="vanilla")


class AutoencoderNet(nn.Module):
  """Encoder q(z | x) and decoder p(x | z) of the autoencoder baselines.

  Attributes:
    config: network sizes, with `encoder` = 'vanilla' and latent_dim > 0.
    image_shape: (H, W, C) of the data.
    learn_std: also hold a learned log-std per channel, params['log_std'] (C,) (discretised
      likelihood).
  """

  config: NetworkConfig
  image_shape: tuple[int, int, int]
  learn_std: bool

  def setup(self):
    height, width, channels = self.image_shape
    self.encoder = SelfEncoder(self.config)
    self.decoder = ConvDecoder(self.config, (height, width), channels)
    if self.learn_std:
      self.log_std = self.param("log_std", nn.initializers.zeros, (channels,), jnp.float32)

  def encode(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    """(mean, logvar) (B, latent_dim) of q(z | x) for x (B, H, W, C) in model space."""
    return self.encoder(x, jnp.zeros(x.shape[:1], jnp.float32), train=train)

  def decode(self, z: jax.Array, *, train: bool) -> jax.Array:
    """Decoder output (B, H, W, C) float32: logits (binary) or means (images)."""
    return self.decoder(z, train=train)

  def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Runs both networks (creates all parameters at `init`): (mean, logvar, decoder output)."""
    mean, logvar = self.encode(x, train=train)
    return mean, logvar, self.decode(mean, train=train)


@flax.struct.dataclass
class AutoencoderTerms:
  """Per-example terms of an autoencoder loss, each (B,) (mmd is the batch value, broadcast)."""

  loss: jax.Array  # the weighted total that is minimised
  recon: jax.Array  # -ln p(x | z) in nats; for the diffusion models the noise squared error
  rate: jax.Array  # KL[q(z | x) || N(0, I)] (0 for the deterministic AE)
  mmd: jax.Array  # MMD(batch of z || N(0, I))
  tc: jax.Array  # the batch's total correlation, up to a constant (beta-TCVAE; 0 otherwise)

  def means(self) -> dict[str, jax.Array]:
    """Scalar batch means of every term, for logging."""
    return {
      "loss": self.loss.mean(),
      "recon": self.recon.mean(),
      "rate": self.rate.mean(),
      "mmd": self.mmd.mean(),
      "tc": self.tc.mean(),
    }


def batch_mmd(key: jax.Array, z: jax.Array, kernel: str) -> jax.Array:
  """MMD (Eq. 7) between the batch of z (B, L) and as many prior draws, broadcast to (B,).

  0 for a batch of one example (the estimator needs two).
  """
  batch = z.shape[0]
  if batch < 2:
    return jnp.zeros((batch,), jnp.float32)
  value = objective.mmd(z, jax.random.normal(key, z.shape, z.dtype), kernel)
  return jnp.broadcast_to(value, (batch,))


def check_no_flow_time(kind: str, t) -> None:
  """A baseline's codes have no flow time: t must be 1 (a Python number, static under jit)."""
  if t != 1.0:
    raise ValueError(f"a {kind!r} model has no flow time; its codes need t = 1, got {t}.")


def active_dims(mean: jax.Array) -> jax.Array:
  """Number of latent dimensions whose posterior mean varies over the batch (mean (B, L))."""
  return jnp.sum(jnp.var(mean, axis=0) > ACTIVE_THRESHOLD)


@dataclasses.dataclass(frozen=True)
class Autoencoder:
  """AE / VAE / beta-VAE / InfoVAE as an `interface.Model` (module docstring).

  Attributes:
    kind: the model.kind it stands for ('ae', 'vae', 'beta_vae', 'beta_tcvae' or 'infovae').
    net: the encoder and decoder.
    space: the data type (likelihood and the data <-> model-space maps).
    variational: sample z by reparameterisation (VAEs) instead of taking the mean (AE).
    kl_weight: weight of KL[q(z | x) || N(0, I)].
    mmd_weight: weight of MMD(q(z) || N(0, I)).
    tc_weight: weight of the batch's total correlation (`objective.total_correlation`; beta-TCVAE).
    mmd_kernel: 'rbf' or 'imq'.
  """

  capabilities: ClassVar[frozenset[str]] = frozenset()

  net: AutoencoderNet
  space: DataSpace
  variational: bool
  kl_weight: float = 0.0
  mmd_weight: float = 0.0
  mmd_kernel: str = "imq"
  tc_weight: float = 0.0
  kind: str = "ae"

  @property
  def latent_dim(self) -> int:
    return self.net.config.latent_dim

  def __post_init__(self):
    if self.net.learn_std != self.space.learn_std:
      raise ValueError(
        f"AutoencoderNet.learn_std must be {self.space.learn_std} for "
        f"{type(self.space).__name__} data."
      )
    if self.kl_weight < 0 or self.mmd_weight < 0 or self.tc_weight < 0:
      raise ValueError(
        "kl_weight, mmd_weight and tc_weight must be >= 0, got "
        f"{self.kl_weight}, {self.mmd_weight}, {self.tc_weight}."
      )
    if not self.variational and (self.kl_weight or self.mmd_weight or self.tc_weight):
      raise ValueError(
        "a deterministic autoencoder (variational=False) takes no KL / MMD / TC terms."
      )

  def _check_shape(self, shape: tuple[int, ...], name: str) -> None:
    if tuple(shape[1:]) != tuple(self.net.image_shape):
      raise ValueError(
        f"{name} must have shape (B, *{tuple(self.net.image_shape)}), got {tuple(shape)}."
      )

  def init(self, key: jax.Array, data_shape: tuple[int, ...]) -> dict:
    """Parameters for data of shape (B, H, W, C)."""
    self._check_shape(data_shape, "data_shape")
    x = jnp.zeros(data_shape, jnp.float32)
    return self.net.init({"params": key}, x, train=False)["params"]

  def _apply(self, params: dict, method: str, *args, train: bool = False, rng=None):
    rngs = {"dropout": rng} if train else None
    return self.net.apply(
      {"params": params}, *args, train=train, rngs=rngs, method=getattr(self.net, method)
    )

  def log_likelihood(self, params: dict, x: jax.Array, out: jax.Array) -> jax.Array:
    """ln p(x | decoder output) (B,), summed over pixels and channels."""
    log_p = self.space.log_prob(x, out, params.get("log_std"))
    return jnp.sum(log_p, axis=(1, 2, 3))

  def _terms(
    self, params: dict, key: jax.Array, x: jax.Array, *, train: bool, rng=None
  ) -> tuple[AutoencoderTerms, dict[str, jax.Array]]:
    k_z, k_prior = jax.random.split(key)
    mean, logvar = self._apply(params, "encode", self.space.to_model(x), train=train, rng=rng)
    z = objective.reparameterise(k_z, mean, logvar) if self.variational else mean
    out = self._apply(params, "decode", z, train=train, rng=rng)
    nll = -self.log_likelihood(params, x, out)
    if self.variational:
      rate = objective.gaussian_kl(mean, logvar)
    else:
      rate = jnp.zeros_like(nll)
    mmd = batch_mmd(k_prior, z, self.mmd_kernel)
    tc = jnp.zeros_like(nll)
    if self.tc_weight:
      tc = jnp.broadcast_to(objective.total_correlation(z, mean, logvar), nll.shape)
    loss = nll + self.kl_weight * rate + self.mmd_weight * mmd + self.tc_weight * tc
    terms = AutoencoderTerms(loss=loss, recon=nll, rate=rate, mmd=mmd, tc=tc)
    return terms, {"mean": mean, "z": z}

  def loss(
    self, params: dict, key: jax.Array, batch: dict, dropout_key: jax.Array
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean training loss of a batch and the batch means of every term."""
    terms, _ = self._terms(params, key, batch["image"], train=True, rng=dropout_key)
    return terms.loss.mean(), terms.means()

  def diagnostics(self, params: dict, key: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Latent usage without dropout: the NLL gap under shuffled z and the active dimensions."""
    x = batch["image"]
    terms, aux = self._terms(params, key, x, train=False)
    out = self._apply(params, "decode", jnp.roll(aux["z"], shift=1, axis=0))
    nll_shuffled = -self.log_likelihood(params, x, out)
    return {
      "z_shuffle_gap": jnp.mean(nll_shuffled - terms.recon),
      "active_dims": active_dims(aux["mean"]),
    }

  def encode(self, params: dict, key: jax.Array, x: jax.Array, t: float = 1.0) -> jax.Array:
    """The posterior mean (B, latent_dim) float32 of data x (B, H, W, C); `key` is unused.

    Raises:
      ValueError: t != 1: the model has no flow times.
    """
    del key  # the code is deterministic
    check_no_flow_time(self.kind, t)
    self._check_shape(x.shape, "x")
    mean, _ = self._apply(params, "encode", self.space.to_model(x))
    return mean.astype(jnp.float32)

  def decode(self, params: dict, z: jax.Array) -> jax.Array:
    """The decoder's point estimate in data space (B, H, W, C) for z (B, latent_dim).

    Binary: the mode of the Bernoulli; images: the Normal mean (clipped, quantised if
    discretised).
    """
    return self.space.from_model(self._apply(params, "decode", z))

  def reconstruct(self, params: dict, key: jax.Array, x: jax.Array) -> jax.Array:
    """decode(encode(x)): data of x's shape and dtype convention."""
    return self.decode(params, self.encode(params, key, x))

  def sample(
    self, params: dict, key: jax.Array, num: int, z: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    """Decodes `num` prior draws z ~ N(0, I), or the given z: ((num, H, W, C) data, z (num, L)).

    Raises:
      ValueError: for the deterministic AE, which has no prior over z.
    """
    if not self.variational:
      raise ValueError(
        "the AE has no prior over its latents and cannot sample; use a VAE-type model."
      )
    if z is None:
      z = jax.random.normal(key, (num, self.net.config.latent_dim), jnp.float32)
    return self.decode(params, z), z
