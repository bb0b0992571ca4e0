"""`Model`, the one interface of ParamReL and every baseline, and the capability check.

The trainer, the evaluators, the CLI modes and the Python API call a model only through `Model`.
What only a Bayesian flow can do (codes at flow times t < 1, the BFN likelihood, reverse
sampling into z and subcodes, Eq. 5) is the capability `FLOW`, whose methods `FlowModel` names;
`require` turns its absence into one clear error instead of a type switch at each call site.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import jax

FLOW = "bayesian_flow"  # flow times, the BFN likelihood and reverse-sampling codes (Eq. 5)
# The key of a batch's data: images (B, H, W, C), or records {name: (B, 1)} of a mixed flow.
DATA_KEYS = ("image", "record")


def batch_data(batch: dict):
  """The data of a batch: batch['image'], or batch['record'] for tables of records."""
  for key in DATA_KEYS:
    if key in batch:
      return batch[key]
  raise ValueError(f"a batch must hold one of {DATA_KEYS}, got the keys {sorted(batch)}.")


class Model(Protocol):
  """What a method (ParamReL or a baseline) offers, all pure functions of the parameters.

  Attributes:
    kind: the `model.kind` it was built for ('paramrel', 'ae', 'beta_vae', ...).
    capabilities: optional abilities beyond this interface, e.g. `FLOW`.
    latent_dim: L, the size of a code (0 for a plain BFN).
  """

  capabilities: ClassVar[frozenset[str]]

  @property
  def kind(self) -> str: ...

  @property
  def latent_dim(self) -> int: ...

  def init(self, key: jax.Array, data_shape: tuple[int, ...]) -> dict:
    """Parameters for data of shape (B, H, W, C)."""

  def loss(
    self, params: dict, key: jax.Array, batch: dict, dropout_key: jax.Array
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(scalar loss to minimise, batch means of its terms incl. 'loss')."""

  def diagnostics(self, params: dict, key: jax.Array, batch: dict) -> dict[str, jax.Array]:
    """Extra scalars computed at logging steps (latent usage)."""

  def encode(self, params: dict, key: jax.Array, x: jax.Array, t: float = 1.0) -> jax.Array:
    """The posterior mean float32 (B, L) of data x (B, H, W, C) at flow time t (static).

    Raises:
      ValueError: no latents, or t != 1 for a model without `FLOW`.
    """

  def reconstruct(self, params: dict, key: jax.Array, x: jax.Array) -> jax.Array:
    """x (B, H, W, C) encoded and decoded again: data of x's shape and dtype convention."""

  def sample(
    self, params: dict, key: jax.Array, num: int, z: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    """(samples (num, H, W, C) data, the codes z (num, L) they were generated from).

    `z` (num, L), when given, replaces the draws from the standard normal prior (e.g. draws of
    a prior fitted to the codes, `evaluation.latents.fit_prior`).

    Raises:
      ValueError: the model has no prior over its codes (AE, DiffAE).
    """


class FlowModel(Model, Protocol):
  """A `Model` with the capability `FLOW` (ParamReL): what a Bayesian flow adds.

  Codes are (z (B, L), subcodes (B, n, H, W, C[, K])) of n = `sample_steps` reverse-sampling
  steps (Eq. 5); a reconstruction holds the replayed data `x` and the flow's end point `x_flow`.

  Attributes:
    sample_steps: n of the n-step sampler and of reverse sampling.
    encoder: the self-encoder's kind ('vanilla' or 'progressive').
  """

  sample_steps: int

  @property
  def encoder(self) -> str: ...

  def codes(self, params: dict, key: jax.Array, x: jax.Array) -> Any:
    """Reverse sampling (Eq. 5) of x (B, H, W, C) into its codes."""

  def decode_codes(self, params: dict, codes: Any) -> Any:
    """The replay of codes (Eq. 5): a reconstruction (x, x_flow, ...)."""

  def reconstruction_stats(self, x: jax.Array, rec: Any) -> dict[str, jax.Array]:
    """Per-example (B,) errors of a replay of x."""

  def conditional_sample(
    self, params: dict, key: jax.Array, x: jax.Array, num_variations: int
  ) -> jax.Array:
    """`num_variations` samples (B * V, H, W, C) given each input's code (Sec. 5.2.1)."""

  def time_varying_reconstruction(
    self, params: dict, key: jax.Array, x: jax.Array, times: jax.Array
  ) -> jax.Array:
    """x regenerated from its code at each of `times` (T,): (T, B, H, W, C) (Sec. 5.2.2)."""

  def latent_gap_by_time(
    self, params: dict, key: jax.Array, x: jax.Array, times: jax.Array
  ) -> dict[str, jax.Array]:
    """The BFN term at each of `times` (T,) with x's own z, another example's and z = 0:
    {'own', 'shuffled', 'zero'}, each (T, B) nats per example."""

  def likelihood_terms(
    self,
    params: dict,
    key: jax.Array,
    x: jax.Array,
    *,
    loss_steps: int,
    loss_samples: int = ...,
    sample_z: bool = True,
    prior: tuple[jax.Array, jax.Array] | None = None,
  ) -> dict[str, jax.Array]:
    """{term: (B,) nats per example}: the BFN test loss, the rate and the negative ELBO."""

  def content_masks(self, params: dict, z: jax.Array) -> jax.Array:
    """Where each of z's (B, L) K tokens draws: (B, K, H, W) masks (conditioning 'content_mask')."""


def has(model: Model, capability: str) -> bool:
  """Whether `model` offers `capability` (e.g. `FLOW`)."""
  return capability in model.capabilities


def require(model: Model, capability: str, what: str) -> Model:
  """`model` itself if it offers `capability`; otherwise a ValueError naming `what` and the kind."""
  if not has(model, capability):
    if capability == FLOW:
      raise ValueError(
        f"{what} needs a ParamReL run; this run is model kind {model.kind!r}, "
        "which has no Bayesian flow."
      )
    raise ValueError(f"{what} needs {capability!r}; this run is model kind {model.kind!r}.")
  return model
