"""`Model`, the one interface of ParamReL and every baseline, and the capability check.

The trainer, the evaluators, the CLI modes and the Python API call a model only through `Model`.
What only a Bayesian flow can do (codes at flow times t < 1, the BFN likelihood, reverse
sampling into z and subcodes, Eq. 5) is the capability `FLOW`; `require` turns its absence into
one clear error instead of a type switch at each call site.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import jax

FLOW = "bayesian_flow"  # flow times, the BFN likelihood and reverse-sampling codes (Eq. 5)


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
