"""ParamReL as a trainable model: a Bayesian flow, the two networks and the objective (Eq. 6).

`ParamReL` is what the trainer optimises (see `train.Trainable`): it creates the parameters,
computes the loss of a batch and the latent-usage diagnostics. Sampling, reverse sampling and
evaluation use its `flow` and `net` with the EMA parameters.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from paramrel_jax import objective
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.models import ParamReLNet


def net_fns(net: ParamReLNet, params, *, train: bool = False, rng: jax.Array | None = None):
  """(encode, decode) callables closed over params, in the form the objective takes.

  encode(e (B,H,W,Cin), t (B,)) -> (mean, logvar) (B, L), e from `objective.encoder_input`;
  decode(net_in, z (B, L), t) -> net_out (B, H, W, C * P). `rng` feeds dropout when training.
  """
  rngs = {"dropout": rng} if train else None

  def encode(net_in, t):
    return net.apply({"params": params}, net_in, t, train=train, rngs=rngs, method=net.encode)

  def decode(net_in, z, t):
    return net.apply({"params": params}, net_in, z, t, train=train, rngs=rngs, method=net.decode)

  return encode, decode


@dataclasses.dataclass(frozen=True)
class ParamReL:
  """The flow, the self-encoder + output network, and the objective weights."""

  flow: Flow
  net: ParamReLNet
  objective: objective.ObjectiveConfig

  def init(self, key: jax.Array, data_shape: tuple[int, ...]) -> dict:
    """Network parameters for data of shape (B, H, W, C)."""
    net_in = self.flow.net_input(self.flow.prior(data_shape, jnp.float32))
    t = jnp.zeros(data_shape[:1], jnp.float32)
    z = jnp.zeros((data_shape[0], self.net.config.latent_dim), jnp.float32)
    return self.net.init({"params": key}, net_in, t, z, train=False)["params"]

  def loss(self, params: dict, key: jax.Array, batch: dict,
           dropout_key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean training loss of a batch and the batch means of every term."""
    encode, decode = net_fns(self.net, params, train=True, rng=dropout_key)
    terms, _ = objective.paramrel_loss(key, batch["image"], flow=self.flow, encode=encode,
                                       decode=decode, cfg=self.objective,
                                       encoder_input_mode=self.net.encoder_input)
    return terms.loss.mean(), terms.means()

  def diagnostics(self, params: dict, key: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Latent usage (shuffled-z loss gap, active dimensions), without dropout."""
    encode, decode = net_fns(self.net, params)
    terms, aux = objective.paramrel_loss(key, batch["image"], flow=self.flow, encode=encode,
                                         decode=decode, cfg=self.objective,
                                         encoder_input_mode=self.net.encoder_input)
    return objective.latent_diagnostics(batch["image"], terms, aux, flow=self.flow,
                                        decode=decode, cfg=self.objective)
