"""Tests of methods.paramrel.interpolation: lerp / slerp (App. E, Eq. 13) and traversal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramrel_jax.methods.paramrel.interpolation import interpolate_codes, lerp, slerp, traverse
from paramrel_jax.methods.paramrel.reverse_sampling import Codes


def _pair(shape=(3, 4, 5)):
  ka, kb = jax.random.split(jax.random.key(0))
  return jax.random.normal(ka, shape), jax.random.normal(kb, shape)


@pytest.mark.parametrize("fn", [lerp, slerp])
def test_endpoints_equal_inputs_exactly(fn):
  a, b = _pair()
  np.testing.assert_array_equal(fn(a, b, 0.0), a)
  np.testing.assert_array_equal(fn(a, b, 1.0), b)
  np.testing.assert_array_equal(jax.jit(fn)(a, b, jnp.array([0.0, 1.0, 0.0])), a.at[1].set(b[1]))


def test_slerp_follows_the_great_circle_per_example():
  # Orthogonal unit vectors: the midpoint has unit norm and equal weights 1 / sqrt(2).
  a = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  b = jnp.array([[0.0, 1.0], [2.0, 0.0]])
  mid = slerp(a, b, 0.5)
  np.testing.assert_allclose(mid, jnp.array([[1.0, 1.0], [2.0, 2.0]]) / jnp.sqrt(2.0), atol=1e-6)
  np.testing.assert_allclose(lerp(a, b, 0.5), jnp.array([[0.5, 0.5], [1.0, 1.0]]))
  # Each example uses its own angle: a batch gives the rows computed one by one.
  x, y = _pair((4, 6))
  rows = jnp.stack([slerp(x[i : i + 1], y[i : i + 1], 0.3)[0] for i in range(4)])
  np.testing.assert_allclose(slerp(x, y, 0.3), rows, rtol=1e-5, atol=1e-6)


def test_slerp_is_finite_for_degenerate_pairs():
  a = jnp.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
  b = jnp.array([[1.0, 2.0, 3.0 + 1e-6], [2.0, 4.0, 6.0], [-1.0, -2.0, -3.0], [1.0, 1.0, 1.0]])
  for w in (0.25, 0.5, 0.9):
    out = slerp(a, b, w)
    assert np.all(np.isfinite(out))
    # Parallel, opposite and zero vectors fall back to lerp (the slerp limit for parallel ones).
    np.testing.assert_allclose(out, lerp(a, b, w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_interpolate_codes_orders_pairs_and_keeps_endpoints(method):
  z_a, z_b = _pair((2, 3))
  u_a, u_b = _pair((2, 5, 4, 4, 1))
  codes = interpolate_codes(Codes(z_a, u_a), Codes(z_b, u_b), 4, method)
  assert codes.z.shape == (8, 3) and codes.subcodes.shape == (8, 5, 4, 4, 1)
  for b in range(2):
    np.testing.assert_array_equal(codes.z[4 * b], z_a[b])
    np.testing.assert_array_equal(codes.z[4 * b + 3], z_b[b])
    np.testing.assert_array_equal(codes.subcodes[4 * b], u_a[b])
    np.testing.assert_array_equal(codes.subcodes[4 * b + 3], u_b[b])
  fn = lerp if method == "lerp" else slerp
  np.testing.assert_allclose(codes.subcodes[1::4], fn(u_a, u_b, 1.0 / 3.0), rtol=1e-5, atol=1e-6)


def test_interpolate_codes_rejects_bad_arguments():
  codes = Codes(jnp.zeros((2, 3)), jnp.zeros((2, 5, 4, 4, 1)))
  with pytest.raises(ValueError, match="method"):
    interpolate_codes(codes, codes, 3, "cubic")
  with pytest.raises(ValueError, match="num_points"):
    interpolate_codes(codes, codes, 1)
  with pytest.raises(ValueError, match="codes_a.z"):
    interpolate_codes(codes, Codes(jnp.zeros((2, 4)), codes.subcodes), 3)


def test_traverse_changes_only_the_chosen_dimension():
  z = jnp.arange(5, dtype=jnp.float32)
  out = traverse(z, dims=[1, 3], num_steps=4, low=-3.0, high=3.0)
  assert out.shape == (2, 4, 5)
  values = np.linspace(-3.0, 3.0, 4)
  for d_index, d in enumerate([1, 3]):
    np.testing.assert_allclose(out[d_index, :, d], values, rtol=1e-6)
    others = np.delete(np.asarray(out[d_index]), d, axis=-1)
    np.testing.assert_array_equal(others, np.broadcast_to(np.delete(np.asarray(z), d), (4, 4)))
  batched = traverse(jnp.stack([z, -z]), num_steps=3)
  assert batched.shape == (2, 5, 3, 5)
  np.testing.assert_array_equal(batched[1, 2, :, 0], -z[0])


@pytest.mark.parametrize(
  "z, kwargs, match",
  [
    (jnp.zeros((1, 2, 3)), {}, "shape"),
    (jnp.zeros((0,)), {}, "latent_dim 0"),
    (jnp.zeros((3,)), {"dims": [3]}, "dims"),
    (jnp.zeros((3,)), {"dims": []}, "dims"),
    (jnp.zeros((3,)), {"num_steps": 0}, "num_steps"),
  ],
)
def test_traverse_rejects_bad_arguments(z, kwargs, match):
  with pytest.raises(ValueError, match=match):
    traverse(z, **kwargs)
