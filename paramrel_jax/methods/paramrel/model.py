"""ParamReL as an `interface.Model`: a Bayesian flow, the two networks and the objective (Eq. 6).

Besides the trainer's `init` / `loss` / `diagnostics` it encodes (the self-encoder mean at a flow
time), reconstructs (reverse sampling, Eq. 5, and replay) and samples (Eq. 4). It has the
capability `interface.FLOW` (`interface.FlowModel`): the codes and subcodes of reverse sampling,
their replay, conditional and time-varying generation and the BFN likelihood terms, all as
methods, so that no caller outside `methods/` needs its flow or its networks.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from paramrel_jax.bfn.flows import Flow
from paramrel_jax.methods import interface
from paramrel_jax.methods.paramrel import likelihood, objective, reverse_sampling, sampling
from paramrel_jax.methods.paramrel.apply import net_fns
from paramrel_jax.networks import ParamReLNet, content_masks


@dataclasses.dataclass(frozen=True)
class ParamReL:
  """The flow, the self-encoder + output network, the objective weights and the sampler settings.

  Attributes:
    flow: the Bayesian flow of the data type.
    net: the self-encoder and the output network.
    objective: the weights of Eq. 6.
    image_shape: (H, W, C) of the data (needed by `sample` only).
    sample_steps: n of the n-step sampler and of reverse sampling (`sample`, `reconstruct`).
    z_source: where `sample` takes z from ('prior' or 'encoder', `sampling.sample`).
  """

  capabilities: ClassVar[frozenset[str]] = frozenset({interface.FLOW})
  kind: ClassVar[str] = "paramrel"

  flow: Flow
  net: ParamReLNet
  objective: objective.ObjectiveConfig
  image_shape: tuple[int, int, int] | None = None
  sample_steps: int = 100
  z_source: str = "prior"

  @property
  def latent_dim(self) -> int:
    return self.net.config.latent_dim

  @property
  def encoder(self) -> str:
    """The self-encoder's kind: 'vanilla' (one code) or 'progressive' (a code per flow time)."""
    return self.net.config.encoder

  def init(self, key: jax.Array, data_shape: tuple[int, ...]) -> dict:
    """Network parameters for data of shape (B, H, W, C)."""
    net_in = self.flow.net_input(self.flow.prior(data_shape, jnp.float32))
    t = jnp.zeros(data_shape[:1], jnp.float32)
    z = jnp.zeros((data_shape[0], self.net.config.latent_dim), jnp.float32)
    return self.net.init({"params": key}, net_in, t, z, train=False)["params"]

  def _terms(self, params: dict, key: jax.Array, batch: dict, **net_kwargs):
    """(decode, LossTerms, aux) of the objective on a batch (Eq. 6), the networks as net_fns
    builds them with net_kwargs (training: dropout)."""
    encode, decode = net_fns(self.net, params, **net_kwargs)
    terms, aux = objective.paramrel_loss(
      key,
      interface.batch_data(batch),
      flow=self.flow,
      encode=encode,
      decode=decode,
      cfg=self.objective,
      encoder_input_mode=self.net.encoder_input,
    )
    return decode, terms, aux

  def loss(
    self, params: dict, key: jax.Array, batch: dict, dropout_key: jax.Array
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean training loss of a batch and the batch means of every term."""
    _, terms, _ = self._terms(params, key, batch, train=True, rng=dropout_key)
    return terms.loss.mean(), terms.means()

  def diagnostics(self, params: dict, key: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Latent usage (shuffled-z loss gap, active dimensions), without dropout."""
    decode, terms, aux = self._terms(params, key, batch)
    return objective.latent_diagnostics(
      interface.batch_data(batch), terms, aux, flow=self.flow, decode=decode, cfg=self.objective
    )

  def encode(self, params: dict, key: jax.Array, x: jax.Array, t: float = 1.0) -> jax.Array:
    """The mean float32 (B, L) of q(z_t | e, t), e the encoder input of training for x
    (`objective.encoder_input`; `key` draws theta for the 'final_params' and 'theta_t' inputs)."""
    z = reverse_sampling.encode_z(key, self.flow, self.net, params, x, t)
    return z.astype(jnp.float32)

  def content_masks(self, params: dict, z: jax.Array) -> jax.Array:
    """Where each of z's (B, L) K tokens draws: float32 (B, K, H, W) masks summing to 1 over K
    (`networks.content_masks`; needs model.conditioning='content_mask' and `image_shape`)."""
    return content_masks(self.net.config, params, z, *self.image_shape[:2])

  def reconstruct(self, params: dict, key: jax.Array, x: jax.Array) -> jax.Array:
    """Reverse sampling of x into (z, subcodes) over `sample_steps` steps (Eq. 5), then their
    replay; the output network's estimate at the end of x's own flow (B, H, W, C)."""
    codes = reverse_sampling.encode(key, self.flow, self.net, params, x, n_steps=self.sample_steps)
    return reverse_sampling.decode(self.flow, self.net, params, codes).x

  def sample(
    self, params: dict, key: jax.Array, num: int, z: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    """`num` samples of the `sample_steps`-step generative process (Eq. 4) and their z
    (given, or drawn from N(0, I))."""
    if self.image_shape is None:
      raise ValueError("sampling needs the image shape: build the model with image_shape.")
    result = sampling.sample(
      key,
      self.flow,
      self.net,
      params,
      data_shape=(num, *self.image_shape),
      n_steps=self.sample_steps,
      z_source=self.z_source,
      z=z,
    )
    return result.x, result.z

  def impute(
    self,
    params: dict,
    key: jax.Array,
    x: dict,
    *,
    draw: bool = True,
    num_draws: int = sampling.POINT_DRAWS,
  ) -> dict:
    """Records x {name: (B, 1)} with their missing cells filled given the observed ones, in
    `sample_steps` steps (`sampling.impute`: a draw, or with draw=False the point estimate of
    `num_draws` draws); a table run's flow only."""
    return sampling.impute(key, self.flow, self.net, params, x, self.sample_steps, draw, num_draws)

  # The capability interface.FLOW (interface.FlowModel).

  def codes(self, params: dict, key: jax.Array, x: jax.Array) -> reverse_sampling.Codes:
    """Reverse sampling (Eq. 5) of x (B, H, W, C) into z (B, L) and `sample_steps` subcodes."""
    return reverse_sampling.encode(key, self.flow, self.net, params, x, n_steps=self.sample_steps)

  def decode_codes(
    self, params: dict, codes: reverse_sampling.Codes
  ) -> reverse_sampling.Reconstruction:
    """The replay of codes (Eq. 5): `reverse_sampling.decode`."""
    return reverse_sampling.decode(self.flow, self.net, params, codes)

  def reconstruction_stats(
    self, x: jax.Array, rec: reverse_sampling.Reconstruction
  ) -> dict[str, jax.Array]:
    """Per-example (B,) errors of a replay of x: `reverse_sampling.reconstruction_stats`."""
    return reverse_sampling.reconstruction_stats(self.flow, x, rec)

  def conditional_sample(
    self, params: dict, key: jax.Array, x: jax.Array, num_variations: int
  ) -> jax.Array:
    """Sec. 5.2.1: `num_variations` samples (B * V, H, W, C) given each input's code, with fresh
    subcodes (`reverse_sampling.conditional_sample`)."""
    result = reverse_sampling.conditional_sample(
      key,
      self.flow,
      self.net,
      params,
      x,
      num_variations=num_variations,
      n_steps=self.sample_steps,
    )
    return result.x

  def time_varying_reconstruction(
    self, params: dict, key: jax.Array, x: jax.Array, times: jax.Array
  ) -> jax.Array:
    """Sec. 5.2.2: x (B, H, W, C) regenerated from its code at each of `times` (T,):
    (T, B, H, W, C). Needs the progressive encoder, whose code changes with t."""
    if self.encoder != "progressive":
      raise ValueError(
        f"time-varying reconstruction needs model.encoder='progressive', got {self.encoder!r}."
      )
    return reverse_sampling.time_varying_reconstruction(
      key, self.flow, self.net, params, x, times, n_steps=self.sample_steps
    )

  def latent_gap_by_time(
    self, params: dict, key: jax.Array, x: jax.Array, times: jax.Array
  ) -> dict[str, jax.Array]:
    """The BFN term at each of `times` (T,) with x's own z, a shuffled z and z = 0: each (T, B)
    (`objective.latent_gap_by_time`)."""
    encode, decode = net_fns(self.net, params)
    return objective.latent_gap_by_time(
      key,
      x,
      times,
      flow=self.flow,
      encode=encode,
      decode=decode,
      encoder_input_mode=self.net.encoder_input,
    )

  def likelihood_terms(
    self,
    params: dict,
    key: jax.Array,
    x: jax.Array,
    *,
    loss_steps: int,
    loss_samples: int = likelihood.DEFAULT_LOSS_SAMPLES,
    sample_z: bool = True,
    prior: tuple[jax.Array, jax.Array] | None = None,
  ) -> dict[str, jax.Array]:
    """{term: (B,) nats per example} of x (B, H, W, C), one Monte-Carlo draw
    (`likelihood.likelihood_batch`: the BFN test loss, the rate and the negative ELBO)."""
    return likelihood.likelihood_batch(
      params,
      key,
      x,
      flow=self.flow,
      net=self.net,
      loss_steps=loss_steps,
      loss_samples=loss_samples,
      sample_z=sample_z,
      prior=prior,
    )
