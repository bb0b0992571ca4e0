"""Argument checks and the float-dtype contract shared by the flow modules of `bfn`.

Checks apply to static values only (tracers pass). `float_dtype` / `as_float` are the dtype
contract of every `bfn` function: floating inputs keep their dtype (at least float32), integer
inputs alone give the default float dtype (float64 under jax_enable_x64).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def is_traced(value) -> bool:
  return isinstance(value, jax.core.Tracer)


def check_open_unit(name: str, value) -> None:
  if is_traced(value):
    return
  v = np.asarray(value)
  if v.size == 0 or not np.all((v > 0) & (v < 1)):
    raise ValueError(f"{name} must lie in (0, 1), got {value}.")


def _is_number(value) -> bool:
  """True for one static real number (bools are not numbers here)."""
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_positive(name: str, value, *, setting: bool = False) -> None:
  """Raises ValueError unless every entry of `value` is > 0 (skipped when traced).

  With `setting=True` the value must be one static real number (a config setting: bools,
  strings and arrays refused).
  """
  if setting:
    if not _is_number(value) or not value > 0:
      raise ValueError(f"{name} must be a number > 0, got {value!r}.")
    return
  if is_traced(value):
    return
  v = np.asarray(value)
  if v.size == 0 or not np.all(v > 0):
    raise ValueError(f"{name} must be > 0, got {value}.")


def check_range(
  name: str, value, low: float, high: float = math.inf, *, open_high: bool = False
) -> None:
  """Raises ValueError unless `value` is one static real number in [low, high] (or [low, high)).

  The message reads "must be >= low" when `high` is infinite, else "must lie in [low, high]".
  """
  inside = _is_number(value) and low <= value and (value < high if open_high else value <= high)
  if not inside:
    close = ")" if open_high else "]"
    bound = f"be >= {low}" if high == math.inf else f"lie in [{low}, {high}{close}"
    raise ValueError(f"{name} must {bound}, got {value!r}.")


def check_choice(name: str, value, choices) -> None:
  """Raises ValueError unless `value` is one of `choices` (a setting's names; a dict's keys)."""
  if value not in choices:
    raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}.")


def check_static_int(name: str, value, minimum: int) -> int:
  """Returns value as a Python int, or raises ValueError if it is not a static int >= minimum."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be a static Python int, got {value!r}.")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}.")
  return int(value)


def check_num_steps(n) -> None:
  if is_traced(n):
    return
  v = np.asarray(n)
  if not np.issubdtype(v.dtype, np.number) or not np.all(v >= 1):
    raise ValueError(f"n must be >= 1, got {n}.")


def broadcast_shapes(**shapes: tuple[int, ...]) -> tuple[int, ...]:
  """Broadcast of the named shapes, or a ValueError naming the arguments."""
  try:
    return tuple(np.broadcast_shapes(*shapes.values()))
  except ValueError:
    listed = ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())
    raise ValueError(f"shapes do not broadcast: {listed}.") from None


def check_broadcast(**arrays: ArrayLike) -> tuple[int, ...]:
  """Broadcast shape of the named arrays, or a ValueError naming them."""
  return broadcast_shapes(**{name: jnp.shape(a) for name, a in arrays.items()})


def float_dtype(*arrays: ArrayLike) -> jnp.dtype:
  """The float dtype of results computed from the arrays: the dtype contract of `bfn`.

  Floating arrays keep their common dtype, promoted to at least float32 (never bfloat16 /
  float16); integer or bool arrays alone (e.g. step indices) give the default float dtype,
  float64 under jax_enable_x64 and float32 otherwise. Python scalars are weak and defer to the
  arrays.
  """
  dtype = jnp.result_type(*arrays)
  if not jnp.issubdtype(dtype, jnp.inexact):
    return jnp.result_type(float)
  return jnp.promote_types(dtype, jnp.float32)


def as_float(*arrays: ArrayLike) -> tuple[Array, ...]:
  """The arguments as arrays, the integer / bool ones cast to the float dtype of all of them.

  Floating arrays come back unchanged (so float inputs compute exactly as without the call), and
  Python numbers as weak-typed float arrays that defer to the others. Without the cast, integer
  arrays (step indices, class counts) enter exp / log / division as float32 even under x64.
  """
  arrays = [jnp.asarray(float(a) if isinstance(a, int) else a) for a in arrays]
  dtype = float_dtype(*arrays)
  return tuple(a if jnp.issubdtype(a.dtype, jnp.inexact) else a.astype(dtype) for a in arrays)
