"""Shared pieces of the sampling tests: flows of every data type and a tiny ParamReL network.

`TinyNet` has ParamReLNet's interface (encode / decode / __call__) in a few convolutions, so the
many small jitted programs of the tests compile in well under a second each. The sampling and
reverse-sampling properties under test hold for any network.
"""

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from paramrel_jax.bfn import discretised
from paramrel_jax.bfn.flows import Flow, make_flow

# (id, data_type, overrides): continuous, discretised, discrete K = 2 and K > 2.
FLOW_CASES = {
  "continuous": ("continuous", {}),
  "discretised": ("discretised", {}),
  "binary": ("discrete", {"num_classes": 2}),
  "categorical": ("discrete", {"num_classes": 3}),
}
DATA_SHAPE = (2, 8, 8, 1)
LATENT_DIM = 3


def flow_of(case: str, **overrides) -> Flow:
  data_type, case_overrides = FLOW_CASES[case]
  kwargs = dict(sigma1=0.02, beta1=3.0, num_bins=16, num_classes=2)
  kwargs.update(case_overrides)
  kwargs.update(overrides)
  return make_flow(data_type, **kwargs)


FIXED_GAIN = 0.25


def _fixed(z: jax.Array, channels: int) -> jax.Array:
  """FIXED_GAIN sum(z) (1, 2, ..., C) per example, (B, 1, 1, C): distinct per channel, so that it
  also moves the softmax of a categorical output (an equal shift of every logit would not)."""
  gains = FIXED_GAIN * jnp.arange(1, channels + 1, dtype=z.dtype)
  return jnp.sum(z, axis=-1)[:, None, None, None] * gains


class TinyNet(nn.Module):
  """A few convolutions with ParamReLNet's methods; every output depends on theta, z and t.

  Besides the learned weights, z and t also enter through fixed paths (`_fixed`, FIXED_GAIN), so
  that a change of z moves every output logit and a change of t every latent mean by
  construction: tests assert on that with stated margins, whatever the random initialisation.
  """

  out_channels: int
  latent_dim: int = LATENT_DIM
  features: int = 8
  encoder_input: str = "theta_t"  # what `encode` reads (ParamReLNet.encoder_input)

  def setup(self):
    self.enc_conv = nn.Conv(self.features, (3, 3))
    self.enc_time = nn.Dense(self.features)
    self.enc_head = nn.Dense(2 * self.latent_dim)
    self.dec_conv = nn.Conv(self.features, (3, 3))
    self.dec_cond = nn.Dense(self.features)
    self.dec_out = nn.Conv(self.out_channels, (3, 3))

  def encode(self, net_in, t, *, train):
    del train
    h = jnp.tanh(self.enc_conv(net_in)).mean(axis=(1, 2)) + self.enc_time(t[:, None])
    mean, logvar = jnp.split(self.enc_head(jnp.tanh(h)), 2, axis=-1)
    return mean + FIXED_GAIN * t[:, None], logvar

  def decode(self, net_in, z, t, *, train):
    del train
    cond = self.dec_cond(jnp.concatenate([z, t[:, None]], axis=-1))
    out = self.dec_out(jnp.tanh(self.dec_conv(net_in) + cond[:, None, None, :]))
    return out + _fixed(z, self.out_channels)

  def __call__(self, net_in, t, z, *, train):
    mean, logvar = self.encode(net_in, t, train=train)
    return mean, logvar, self.decode(net_in, z, t, train=train)


class CountingNet(TinyNet):
  """TinyNet that counts how often `decode` is traced (a Python side effect runs per trace)."""

  traces: ClassVar[list[int]] = []

  def decode(self, net_in, z, t, *, train):
    CountingNet.traces.append(1)
    return super().decode(net_in, z, t, train=train)


def tiny_model(flow: Flow, data_shape=DATA_SHAPE, net_cls=TinyNet, seed: int = 0):
  """(net, params) for the flow, randomly initialised."""
  batch, height, width, channels = data_shape
  net = net_cls(out_channels=channels * flow.params_per_dim)
  net_in = jnp.zeros((batch, height, width, channels * flow.input_channels_per_dim))
  t = jnp.zeros((batch,))
  z = jnp.zeros((batch, net.latent_dim))
  params = net.init(jax.random.key(seed), net_in, t, z, train=False)["params"]
  return net, params


def data_batch(flow: Flow, data_shape=DATA_SHAPE, seed: int = 0) -> jax.Array:
  """A batch of valid data of the flow's type."""
  key = jax.random.key(seed)
  if flow.data_type == "discrete":
    return jax.random.randint(key, data_shape, 0, flow.num_classes, jnp.int32)
  x = jax.random.uniform(key, data_shape, jnp.float32, -1.0, 1.0)
  if flow.data_type == "discretised":
    x = discretised.quantize(x, flow.num_bins)
  return x
