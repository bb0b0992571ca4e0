"""Latent interpolation (paper App. E, Eq. 13) and latent traversal (Sec. 5.2.4).

Interpolation works on the codes of two inputs (`reverse_sampling.Codes`): both the semantic
latent z and the stochastic subcodes are interpolated, example by example, and the interpolated
codes are decoded with `reverse_sampling.decode`. Vectors are flattened per example (all axes but
the first), so the whole subcode trajectory of one example is one vector for `slerp`.
"""

import functools

import jax
import jax.numpy as jnp

from paramrel_jax.bfn import checks
from paramrel_jax.config.configuration import INTERPOLATION_METHODS
from paramrel_jax.methods.paramrel.reverse_sampling import Codes


def _per_example(w, a: jax.Array) -> jax.Array:
  """Weights w (scalar or (B,)) broadcast against a (B, ...)."""
  w = jnp.asarray(w, a.dtype)
  return w.reshape(w.shape + (1,) * (a.ndim - w.ndim))


@jax.jit
def lerp(a: jax.Array, b: jax.Array, w) -> jax.Array:
  """Linear interpolation (1 - w) a + w b (Eq. 13, first line).

  Args:
    a, b: arrays of one shape (B, ...).
    w: weight, a scalar or shape (B,); w = 0 gives a and w = 1 gives b exactly.

  Returns:
    Array of the shape of a.
  """
  w = _per_example(w, a)
  return (1.0 - w) * a + w * b


@functools.partial(jax.jit, static_argnames="eps")
def slerp(a: jax.Array, b: jax.Array, w, *, eps: float = 1e-4) -> jax.Array:
  """Spherical interpolation per example (Eq. 13, second line; Shoemake, 1985).

    slerp(a, b; w) = sin((1 - w) omega) / sin(omega) a + sin(w omega) / sin(omega) b

  with omega the angle between the flattened examples a_b and b_b. omega is computed as
  2 atan2(|a' - b'|, |a' + b'|) of the unit vectors a', b', which is accurate for nearly parallel
  and nearly opposite vectors (arccos of the cosine is not). Where sin(omega) < eps (parallel,
  opposite or zero vectors, for which the great circle is undefined or degenerate) the result is
  `lerp`, which slerp approaches as omega -> 0.

  Args:
    a, b: arrays of one shape (B, ...), flattened per example over all axes but the first.
    w: weight, a scalar or shape (B,); w = 0 gives a and w = 1 gives b exactly.
    eps: threshold on sin(omega) below which lerp is used.

  Returns:
    Array of the shape of a.
  """
  batch = a.shape[0]
  fa, fb = a.reshape(batch, -1), b.reshape(batch, -1)
  na = jnp.linalg.norm(fa, axis=-1, keepdims=True)
  nb = jnp.linalg.norm(fb, axis=-1, keepdims=True)
  ua = fa / jnp.where(na > 0, na, 1.0)
  ub = fb / jnp.where(nb > 0, nb, 1.0)
  omega = 2.0 * jnp.arctan2(jnp.linalg.norm(ua - ub, axis=-1), jnp.linalg.norm(ua + ub, axis=-1))
  sin_omega = jnp.sin(omega)
  degenerate = (sin_omega < eps) | (na[:, 0] == 0) | (nb[:, 0] == 0)
  safe_sin = jnp.where(degenerate, 1.0, sin_omega)
  wv = jnp.broadcast_to(jnp.asarray(w, a.dtype), (batch,))
  coef_a = jnp.sin((1.0 - wv) * omega) / safe_sin
  coef_b = jnp.sin(wv * omega) / safe_sin
  spherical = (coef_a[:, None] * fa + coef_b[:, None] * fb).reshape(a.shape)
  out = jnp.where(_per_example(degenerate, a), lerp(a, b, wv), spherical)
  out = jnp.where(_per_example(wv == 1.0, a), b, out)
  return jnp.where(_per_example(wv == 0.0, a), a, out)


@functools.partial(jax.jit, static_argnames=("num_points", "method"))
def interpolate_codes(
  codes_a: Codes, codes_b: Codes, num_points: int, method: str = "slerp"
) -> Codes:
  """Interpolates z and subcodes between two batches of codes (App. E).

  Args:
    codes_a, codes_b: codes of B inputs each, with equal shapes.
    num_points: P >= 2 points per pair at weights linspace(0, 1, P); point 0 equals codes_a and
      point P - 1 equals codes_b exactly.
    method: 'lerp' or 'slerp', used for both z and the subcodes.

  Returns:
    Codes of B * P examples ordered pair-major (example b's P points are contiguous), so that
    `images.save_grid(..., nrow=P)` shows one pair per row.

  Raises:
    ValueError: for an unknown method, num_points < 2 or mismatched shapes.
  """
  checks.check_choice("method", method, INTERPOLATION_METHODS)
  checks.check_static_int("num_points", num_points, 2)
  for name, a, b in zip(Codes._fields, codes_a, codes_b, strict=True):
    if a.shape != b.shape:
      raise ValueError(
        f"codes_a.{name} and codes_b.{name} differ in shape: {a.shape} vs {b.shape}."
      )
  fn = lerp if method == "lerp" else slerp
  weights = jnp.linspace(0.0, 1.0, num_points)

  def interpolate(a: jax.Array, b: jax.Array) -> jax.Array:
    points = jax.vmap(lambda w: fn(a, b, w))(weights)  # (P, B, ...)
    points = jnp.swapaxes(points, 0, 1)
    return points.reshape((a.shape[0] * num_points,) + a.shape[1:])

  return Codes(*(interpolate(a, b) for a, b in zip(codes_a, codes_b, strict=True)))


def traverse(
  z: jax.Array,
  *,
  dims=None,
  num_steps: int = 7,
  low: float = -3.0,
  high: float = 3.0,
) -> jax.Array:
  """Latent traversal (Sec. 5.2.4): vary one dimension at a time, keep the others fixed.

  Args:
    z: latent (L,) or a batch (B, L).
    dims: the D dimensions to traverse (sequence of ints in [0, L)); None: all L.
    num_steps: M values per dimension, linspace(low, high, M).
    low, high: traversal range (the paper uses [-3, 3]).

  Returns:
    (D, M, L), or (B, D, M, L) for batched z: entry [d, m] equals z except that dimension
    dims[d] is set to the m-th value.

  Raises:
    ValueError: for a bad rank of z, an empty latent, num_steps < 1 or a dimension out of range.
  """
  if z.ndim not in (1, 2):
    raise ValueError(f"z must have shape (L,) or (B, L), got {z.shape}.")
  latent_dim = z.shape[-1]
  if latent_dim == 0:
    raise ValueError("z has latent_dim 0: there is nothing to traverse.")
  checks.check_static_int("num_steps", num_steps, 1)
  dims = list(range(latent_dim)) if dims is None else [int(d) for d in dims]
  if not dims or any(not 0 <= d < latent_dim for d in dims):
    raise ValueError(f"dims must be a non-empty list of ints in [0, {latent_dim}), got {dims}.")
  values = jnp.linspace(low, high, num_steps, dtype=z.dtype)
  mask = jax.nn.one_hot(jnp.asarray(dims), latent_dim, dtype=bool)[:, None, :]  # (D, 1, L)
  base = z[..., None, None, :]  # (..., 1, 1, L)
  return jnp.where(mask, values[:, None], base)
