"""Tests of the generated datasets with known factors (paramrel_jax/data/generated.py)."""

import colorsys

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier

from paramrel_jax.data import generated

RENDER = {"shapes2d": generated.render_shapes2d, "scenes3d": generated.render_scenes3d}
CHANNELS = {"shapes2d": 1, "scenes3d": 3}


def _min_accuracy(num_values: int) -> float:
  """Accuracy a factor classifier must reach: twice chance and 0.3 above chance."""
  chance = 1.0 / num_values
  return max(2 * chance, chance + 0.3)


def _fit_and_score(features: np.ndarray, labels: np.ndarray, num_test: int) -> np.ndarray:
  """Trains on all but the last num_test examples; returns per-example test correctness."""
  classifier = ExtraTreesClassifier(n_estimators=100, random_state=0, n_jobs=1)
  classifier.fit(features[:-num_test], labels[:-num_test])
  return classifier.predict(features[-num_test:]) == labels[-num_test:]


def _centred_windows(images: np.ndarray, half: int) -> np.ndarray:
  """(N, 2 half, 2 half) windows of binary images (N, S, S) centred on each shape's centroid."""
  n, size, _ = images.shape
  mass = images.sum(axis=(1, 2))
  coords = np.arange(size)
  centre_y = np.rint((images.sum(axis=2) * coords).sum(axis=1) / mass).astype(int)
  centre_x = np.rint((images.sum(axis=1) * coords).sum(axis=1) / mass).astype(int)
  padded = np.pad(images, ((0, 0), (half, half), (half, half)))
  offsets = np.arange(-half, half)
  rows = (centre_y[:, None] + half + offsets)[:, :, None]
  cols = (centre_x[:, None] + half + offsets)[:, None, :]
  return padded[np.arange(n)[:, None, None], rows, cols]


def test_factor_specs_and_registry():
  assert generated.SHAPES2D_FACTORS.names == ("shape", "scale", "orientation", "pos_x", "pos_y")
  assert generated.SHAPES2D_FACTORS.sizes[:2] == (3, 6)
  assert generated.SCENES3D_FACTORS.names == (
    "floor_hue",
    "wall_hue",
    "object_hue",
    "scale",
    "shape",
    "orientation",
  )
  assert generated.SCENES3D_FACTORS.sizes == (10, 10, 10, 8, 4, 15)
  assert generated.GENERATED == {
    "shapes2d": (generated.make_shapes2d, generated.SHAPES2D_FACTORS),
    "scenes3d": (generated.make_scenes3d, generated.SCENES3D_FACTORS),
  }
  with pytest.raises(ValueError, match="sizes"):
    generated.FactorSpec(names=("a", "b"), sizes=(2,))
  with pytest.raises(ValueError, match="sizes"):
    generated.FactorSpec(names=("a",), sizes=(0,))


@pytest.mark.parametrize(
  "name, image_size",
  [("shapes2d", 28), ("shapes2d", 32), ("shapes2d", 64), ("scenes3d", 32), ("scenes3d", 64)],
)
def test_arrays_have_documented_shapes_dtypes_and_values(name, image_size):
  make, spec = generated.GENERATED[name]
  data = make(6, image_size=image_size, seed=3)
  assert set(data) == {"image", "factors"}
  assert data["image"].shape == (6, image_size, image_size, CHANNELS[name])
  assert data["image"].dtype == np.uint8
  assert data["factors"].shape == (6, spec.num_factors)
  assert data["factors"].dtype == np.int32
  np.testing.assert_array_equal(data["factors"], generated.sample_factors(spec, 6, seed=3))
  np.testing.assert_array_equal(data["image"], RENDER[name](data["factors"], image_size))
  if name == "shapes2d":
    assert set(np.unique(data["image"])) == {0, 255}
    assert (data["image"].max(axis=(1, 2, 3)) == 255).all()


@pytest.mark.parametrize("name", ["shapes2d", "scenes3d"])
def test_same_seed_gives_identical_arrays_and_other_seeds_differ(name):
  make, _ = generated.GENERATED[name]
  first = make(16, image_size=32, seed=7)
  again = make(16, image_size=32, seed=7)
  other = make(16, image_size=32, seed=8)
  for key in ("image", "factors"):
    assert first[key].tobytes() == again[key].tobytes()
    assert not np.array_equal(first[key], other[key])


@pytest.mark.parametrize("name", ["shapes2d", "scenes3d"])
def test_factors_are_uniform_and_independent(name):
  _, spec = generated.GENERATED[name]
  factors = generated.sample_factors(spec, 4000, seed=11)
  for column, size in enumerate(spec.sizes):
    counts = np.bincount(factors[:, column], minlength=size)
    assert len(counts) == size
    # Expected count 4000 / size; 25% is more than 4 standard deviations for every size here.
    np.testing.assert_allclose(counts, 4000 / size, rtol=0.25)
  correlation = np.corrcoef(factors.T.astype(np.float64))
  off_diagonal = correlation[~np.eye(spec.num_factors, dtype=bool)]
  assert np.abs(off_diagonal).max() < 0.1


def test_shapes2d_factors_are_recoverable_from_pixels():
  data = generated.make_shapes2d(2500, image_size=28, seed=1)
  images = data["image"][..., 0].astype(np.float32) / 255.0
  factors = data["factors"]
  spec = generated.SHAPES2D_FACTORS
  # Shape, scale and orientation from a window centred on the shape (translation removed);
  # positions from the raw pixels.
  centred = _centred_windows(images, half=8).reshape(len(images), -1)
  raw = images.reshape(len(images), -1)
  for column, name in enumerate(spec.names):
    features = raw if name.startswith("pos") else centred
    correct = _fit_and_score(features, factors[:, column], num_test=500)
    assert correct.mean() >= _min_accuracy(spec.sizes[column]), (name, correct.mean())
    if name == "orientation":
      # Each shape's orientations span its own symmetry period, so each must be recoverable.
      for shape in range(spec.sizes[0]):
        per_shape = correct[factors[-500:, 0] == shape].mean()
        assert per_shape >= _min_accuracy(spec.sizes[column]), (shape, per_shape)


def test_scenes3d_factors_are_recoverable_from_pixels():
  data = generated.make_scenes3d(2500, image_size=32, seed=1)
  features = data["image"].reshape(2500, -1).astype(np.float32) / 255.0
  spec = generated.SCENES3D_FACTORS
  for column, name in enumerate(spec.names):
    correct = _fit_and_score(features, data["factors"][:, column], num_test=500)
    assert correct.mean() >= _min_accuracy(spec.sizes[column]), (name, correct.mean())


@pytest.mark.parametrize(
  "name, image_size, min_changed",
  [
    ("shapes2d", 64, 1.0),
    # At 28 pixels one orientation or scale step of the smallest shapes can fall below the
    # binarisation threshold in rare cases.
    ("shapes2d", 28, 0.98),
    ("scenes3d", 32, 1.0),
    ("scenes3d", 64, 1.0),
  ],
)
def test_changing_one_factor_changes_the_image(name, image_size, min_changed):
  _, spec = generated.GENERATED[name]
  render = RENDER[name]
  base = generated.sample_factors(spec, 200, seed=5)
  base_images = render(base, image_size)
  for column, size in enumerate(spec.sizes):
    changed = base.copy()
    changed[:, column] = (changed[:, column] + 1) % size
    differs = (render(changed, image_size) != base_images).any(axis=(1, 2, 3))
    assert differs.mean() >= min_changed, (spec.names[column], differs.mean())


def test_shapes2d_factors_move_and_grow_the_shape():
  # shape, scale, orientation, pos_x, pos_y
  def render(factors):
    return generated.render_shapes2d(np.array(factors), 64)[..., 0] / 255.0

  sizes = generated.SHAPES2D_FACTORS.sizes
  coords = np.arange(64)
  along_x = render([[0, 2, 0, x, 8] for x in range(sizes[3])])
  np.testing.assert_array_less(0, np.diff((along_x.sum(1) * coords).sum(1) / along_x.sum((1, 2))))
  along_y = render([[0, 2, 0, 8, y] for y in range(sizes[4])])
  np.testing.assert_array_less(0, np.diff((along_y.sum(2) * coords).sum(1) / along_y.sum((1, 2))))
  for shape in range(sizes[0]):
    growing = render([[shape, s, 0, 8, 8] for s in range(sizes[1])])
    np.testing.assert_array_less(0, np.diff(growing.sum(axis=(1, 2))))


def test_scenes3d_hues_colour_floor_walls_and_object():
  size = 32
  hues = np.arange(10)
  factors = generated.sample_factors(generated.SCENES3D_FACTORS, 10, seed=2)
  factors[:, 0] = hues  # floor
  factors[:, 1] = (hues + 3) % 10  # wall
  factors[:, 2] = (hues + 6) % 10  # object
  images = generated.render_scenes3d(factors, size).astype(np.float64)
  # Unit RGB directions of the ten fully saturated hues 0, 0.1, ..., 0.9.
  directions = np.array([colorsys.hsv_to_rgb(h / 10, 1.0, 1.0) for h in hues])
  directions /= np.linalg.norm(directions, axis=1, keepdims=True)

  def closest_hue(pixels):
    return np.argmax(pixels @ directions.T / np.linalg.norm(pixels, axis=1, keepdims=True), 1)

  np.testing.assert_array_equal(closest_hue(images[:, -1, 0]), factors[:, 0])  # floor
  np.testing.assert_array_equal(closest_hue(images[:, 0, 0]), factors[:, 1])  # left wall
  np.testing.assert_array_equal(closest_hue(images[:, 0, -1]), factors[:, 1])  # right wall
  # Every object at every scale covers the point at 3/4 height in the middle.
  object_pixel = images[:, int(0.75 * size), size // 2]
  np.testing.assert_array_equal(closest_hue(object_pixel), factors[:, 2])


@pytest.mark.parametrize("name", ["shapes2d", "scenes3d"])
@pytest.mark.parametrize(
  "kwargs, argument",
  [
    ({"num_examples": 0}, "num_examples"),
    ({"num_examples": 2.5}, "num_examples"),
    ({"image_size": 15}, "image_size"),
    ({"image_size": 32.0}, "image_size"),
    ({"image_size": True}, "image_size"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
  ],
)
def test_make_rejects_bad_arguments(name, kwargs, argument):
  make, _ = generated.GENERATED[name]
  with pytest.raises(ValueError, match=argument):
    make(**{"num_examples": 2, **kwargs})


@pytest.mark.parametrize("name", ["shapes2d", "scenes3d"])
def test_render_rejects_bad_factors(name):
  _, spec = generated.GENERATED[name]
  render = RENDER[name]
  good = generated.sample_factors(spec, 3, seed=0)
  too_big = good.copy()
  too_big[1, -1] = spec.sizes[-1]
  negative = good.copy()
  negative[0, 0] = -1
  for bad in (too_big, negative, good[:, :-1], good[0], good[:0], good.astype(np.float32)):
    with pytest.raises(ValueError, match="factors"):
      render(bad, 32)
  with pytest.raises(ValueError, match="image_size"):
    render(good, 8)
