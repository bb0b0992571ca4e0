"""The self-encoder and the output network closed over their parameters, in the form that the
objective, the likelihood and the samplers take (`objective.EncodeFn`, `objective.DecodeFn`)."""

from __future__ import annotations

import jax

from paramrel_jax.networks import ParamReLNet


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
