"""Tests of paramrel_jax.viz.images: pixel mapping and PNG grids."""

import numpy as np
import pytest
from PIL import Image

from paramrel_jax.bfn.flows import ContinuousFlow, DiscreteFlow, DiscretisedFlow
from paramrel_jax.bfn.mixed import MixedFlow
from paramrel_jax.viz import images

FLOWS = {
  "continuous": ContinuousFlow(sigma1=0.02),
  "discretised": DiscretisedFlow(sigma1=0.02, num_bins=16),
  "discrete": DiscreteFlow(beta1=3.0, num_classes=2),
}


def test_to_uint8_maps_floats_and_classes():
  floats = np.array([-1.0, -0.5, 0.0, 1.0, 3.0], np.float32).reshape(1, 1, 5, 1)
  np.testing.assert_array_equal(
    images.to_uint8(floats, FLOWS["continuous"]).ravel(), [0, 64, 128, 255, 255]
  )
  binary = np.array([0, 1], np.int32).reshape(1, 1, 2, 1)
  np.testing.assert_array_equal(images.to_uint8(binary, FLOWS["discrete"]).ravel(), [0, 255])
  classes = np.array([0, 1, 2, 3], np.int32).reshape(1, 2, 2, 1)
  np.testing.assert_array_equal(
    images.to_uint8(classes, DiscreteFlow(beta1=3.0, num_classes=4)).ravel(), [0, 85, 170, 255]
  )


@pytest.mark.parametrize(
  "data_type, channels, mode",
  [("continuous", 1, "L"), ("discretised", 3, "RGB"), ("discrete", 1, "L")],
)
def test_save_grid_writes_png_of_expected_size(tmp_path, data_type, channels, mode):
  rng = np.random.default_rng(0)
  shape = (5, 28, 28, channels)
  if data_type == "discrete":
    batch = rng.integers(0, 2, shape).astype(np.int32)
  else:
    batch = rng.uniform(-1, 1, shape).astype(np.float32)
  path = tmp_path / "sub" / "grid.png"
  grid = images.save_grid(path, batch, nrow=3, flow=FLOWS[data_type], padding=2)
  # 28 px cells are upscaled by ceil(64 / 28) = 3 to 84 px; 2 rows x 3 columns with 2 px padding.
  width, height = 3 * (84 + 2) + 2, 2 * (84 + 2) + 2
  with Image.open(path) as png:
    assert png.format == "PNG"
    assert png.mode == mode
    assert png.size == (width, height)
    np.testing.assert_array_equal(np.asarray(png).reshape(grid.shape), grid)
  # The first cell holds the first image, upscaled by pixel repetition.
  cell = grid[2 : 2 + 84, 2 : 2 + 84]
  expected = images.to_uint8(batch[:1], FLOWS[data_type])[0].repeat(3, axis=0).repeat(3, axis=1)
  np.testing.assert_array_equal(cell, expected)
  # The unused last cell stays padding.
  assert np.all(grid[88:-2, 2 * 86 + 2 : -2] == 255)


def test_make_grid_keeps_large_images_unscaled():
  pixels = np.zeros((2, 64, 64, 3), np.uint8)
  grid = images.make_grid(pixels, nrow=4, padding=1, pad_value=7)
  assert grid.shape == (66, 2 * 65 + 1, 3)
  assert grid[0, 0, 0] == 7


@pytest.mark.parametrize(
  "batch, flow, match",
  [
    (np.zeros((2, 4, 4), np.float32), "continuous", "shape"),
    (np.zeros((2, 4, 4, 2), np.float32), "continuous", "C in"),
    (np.zeros((2, 4, 4, 1), np.float32), "discrete", "int array"),
    (np.full((2, 4, 4, 1), 2, np.int32), "discrete", "hold classes in"),
    (np.zeros((2, 4, 4, 1), np.int32), "continuous", "continuous images must be floats"),
    (np.zeros((2, 4, 4, 1), np.int32), "discretised", "discretised images must be floats"),
  ],
)
def test_to_uint8_rejects_bad_inputs(batch, flow, match):
  with pytest.raises(ValueError, match=match):
    images.to_uint8(batch, FLOWS[flow])


def test_records_have_no_pixels():
  flow = MixedFlow((("a", FLOWS["continuous"]), ("b", DiscreteFlow(beta1=3.0, num_classes=3))))
  with pytest.raises(ValueError, match="records have no pixels"):
    images.to_uint8(np.zeros((2, 4, 4, 1), np.float32), flow)


def test_make_grid_rejects_bad_nrow():
  with pytest.raises(ValueError, match="nrow"):
    images.make_grid(np.zeros((1, 4, 4, 1), np.uint8), nrow=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_labelled_grid_adds_margins_with_text(tmp_path, channels):
  batch = np.zeros((6, 28, 28, channels), np.float32)
  plain = images.save_grid(tmp_path / "plain.png", batch, nrow=3, flow=FLOWS["continuous"])
  labelled = images.save_grid(
    tmp_path / "labelled.png",
    batch,
    nrow=3,
    flow=FLOWS["continuous"],
    row_labels=["z[0]", "z[10]"],
    col_labels=["input", "-3", "+3"],
  )
  top = labelled.shape[0] - plain.shape[0]
  left = labelled.shape[1] - plain.shape[1]
  assert top > 0 and left >= 5 * 6  # one line of text; the longest row label, 5 characters
  np.testing.assert_array_equal(labelled[top:, left:], plain)
  assert labelled[:top, left:].min() < 128  # column labels drawn
  assert labelled[top:, :left].min() < 128  # row labels drawn
  with Image.open(tmp_path / "labelled.png") as png:
    assert png.size == (labelled.shape[1], labelled.shape[0])
