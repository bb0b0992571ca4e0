"""ParamReLNet: self-encoder q_phi(z_t | e, t) and output network psi(theta_t, z_t, t).

e is the encoder's input, chosen by `config.encoder_input` and built by `objective.encoder_input`
(the clean data, theta_1, or theta_t as in Eq. 3), in the flow's network-input format.

Usage (`flow` from `paramrel_jax.bfn.flows`; C data channels):

  net = ParamReLNet(get_variant("tiny"), out_channels=C * flow.params_per_dim)
  params = net.init(key, net_in, t, z, train=False)["params"]
  mean, logvar = net.apply({"params": params}, net_in, t, train=False, method="encode")
  net_out = net.apply({"params": params}, net_in, z, t, train=True, method="decode",
                      rngs={"dropout": key})

The parameter tree is {'encoder': ..., 'decoder': ...}; with latent_dim == 0 it has no 'encoder'
and the decoder has no latent embedding, while `encode` still returns (B, 0) arrays.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from paramrel_jax.bfn import checks
from paramrel_jax.config.network import NetworkConfig
from paramrel_jax.networks import layers
from paramrel_jax.networks.encoder import SelfEncoder
from paramrel_jax.networks.unet import CONTENT_MASK_MODULE, OutputUNet


class ParamReLNet(nn.Module):
  """Self-encoder and output network of ParamReL (paper Sec. 3.1, App. C).

  Attributes:
    config: sizes of both networks (`latent_dim`, `encoder` kind, ...).
    out_channels: output channels of the output network, C * flow.params_per_dim.
  """

  config: NetworkConfig
  out_channels: int

  def setup(self):
    checks.check_static_int("out_channels", self.out_channels, 1)
    if self.config.latent_dim > 0:
      self.encoder = SelfEncoder(self.config)
    self.decoder = OutputUNet(self.config, self.out_channels)

  @property
  def encoder_input(self) -> str:
    """What `encode` reads: 'data', 'final_params' or 'theta_t' (`objective.encoder_input`)."""
    return self.config.encoder_input

  def _check_inputs(self, net_in: jax.Array, t: jax.Array) -> None:
    self.config.check_image_shape(net_in.shape, "net_in")
    if t.shape != net_in.shape[:1]:
      raise ValueError(f"t must have shape (B,) = {net_in.shape[:1]}, got {t.shape}.")

  def encode(self, net_in: jax.Array, t: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
    """Parameters of the Gaussian q_phi(z_t | e, t).

    Args:
      net_in: (B, H, W, Cin) the encoder input e (`objective.encoder_input`).
      t: (B,) flow time (ignored exactly by the 'vanilla' encoder).
      train: enables dropout ('dropout' rng).

    Returns:
      (mean, logvar), each (B, latent_dim) float32; (B, 0) when latent_dim == 0.
    """
    self._check_inputs(net_in, t)
    if self.config.latent_dim == 0:
      empty = jnp.zeros((net_in.shape[0], 0), jnp.float32)
      return empty, empty
    return self.encoder(net_in, t, train=train)

  def decode(self, net_in: jax.Array, z: jax.Array, t: jax.Array, *, train: bool) -> jax.Array:
    """The output network psi(theta_t, z_t, t).

    Args:
      net_in: (B, H, W, Cin) flow input theta_t (`Flow.net_input`).
      z: (B, latent_dim) latent z_t; ignored when latent_dim == 0 (pass a (B, 0) array).
      t: (B,) flow time.
      train: enables dropout ('dropout' rng).

    Returns:
      (B, H, W, out_channels) float32 network output, for `Flow.output_dist`.
    """
    self._check_inputs(net_in, t)
    expected = (net_in.shape[0], self.config.latent_dim)
    if z.shape != expected:
      raise ValueError(f"z must have shape (B, latent_dim) = {expected}, got {z.shape}.")
    return self.decoder(net_in, z if self.config.latent_dim > 0 else None, t, train=train)

  def __call__(
    self, net_in: jax.Array, t: jax.Array, z: jax.Array, *, train: bool
  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Runs both networks (creates all parameters at `init`).

    Returns:
      (mean, logvar, net_out) as from `encode(net_in, t)` and `decode(net_in, z, t)`.
    """
    mean, logvar = self.encode(net_in, t, train=train)
    return mean, logvar, self.decode(net_in, z, t, train=train)


def content_masks(
  config: NetworkConfig, params: dict, z: jax.Array, height: int, width: int
) -> jax.Array:
  """Where each token of z draws in the output network (`model.conditioning='content_mask'`).

  Args:
    config: the network's config.
    params: the `ParamReLNet` parameters ({'encoder': ..., 'decoder': ...}).
    z: (B, L) codes.
    height, width: the image size.

  Returns:
    float32 (B, K, height, width) masks of `layers.ContentMaskMap`, K = L / latent_group_size;
    they sum to 1 over K at every pixel.

  Raises:
    ValueError: the network takes z another way.
  """
  if config.conditioning != "content_mask":
    raise ValueError(
      "content masks need model.conditioning='content_mask'; this network takes z by "
      f"{config.conditioning!r}."
    )
  mask_map = layers.ContentMaskMap(
    config.latent_group_size,
    config.num_channels,
    temperature=config.mask_temperature,
    dtype=config.compute_dtype,
  )
  variables = {"params": params["decoder"][CONTENT_MASK_MODULE]}
  _, masks = mask_map.apply(variables, z.astype(config.compute_dtype), height, width)
  return masks


def parameter_counts(
  config: NetworkConfig, input_shape: tuple[int, int, int], out_channels: int
) -> dict[str, int]:
  """Parameter counts of both networks, from shapes only (`jax.eval_shape`, no compute).

  Args:
    config: network sizes.
    input_shape: (H, W, Cin) of the network input.
    out_channels: output channels of the output network.

  Returns:
    {'encoder': count (0 when latent_dim == 0), 'decoder': count}.
  """
  net = ParamReLNet(config, out_channels)
  net_in = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.float32)
  z = jax.ShapeDtypeStruct((1, config.latent_dim), jnp.float32)
  variables = jax.eval_shape(
    lambda *args: net.init(jax.random.key(0), *args, train=False), net_in, t, z
  )

  def count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))

  params = variables["params"]
  return {"encoder": count(params.get("encoder", {})), "decoder": count(params["decoder"])}
