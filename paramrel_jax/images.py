"""Image grids for samples, reconstructions, interpolations and traversals.

Images follow the project convention (N, H, W, C): floats in [-1, 1] for continuous and
discretised data, int class indices in [0, K) for discrete data. A grid is written as an 8-bit PNG
(grey for C = 1, RGB for C = 3), each cell upscaled by an integer factor (nearest neighbour, so
pixels stay sharp) until it is at least `min_cell_size` pixels, cells separated by `padding`
pixels of `pad_value`.
"""

import math
import os

import numpy as np
from PIL import Image

DATA_TYPES = ("continuous", "discretised", "discrete")


def to_uint8(images, data_type: str, *, num_classes: int = 2) -> np.ndarray:
  """Maps model-space images to 8-bit pixels.

  Args:
    images: (N, H, W, C) array (numpy or jax): floats in [-1, 1] for 'continuous' and
      'discretised' (values outside are clipped), int classes in [0, num_classes) for 'discrete'.
    data_type: 'continuous' | 'discretised' | 'discrete'.
    num_classes: K of discrete data; class k maps to round(255 k / (K - 1)).

  Returns:
    uint8 array (N, H, W, C).

  Raises:
    ValueError: for a bad data_type, rank, channel count, dtype or class index.
  """
  images = np.asarray(images)
  if data_type not in DATA_TYPES:
    raise ValueError(f"data_type must be one of {DATA_TYPES}, got {data_type!r}.")
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must have shape (N, H, W, C) with C in (1, 3), got {images.shape}.")
  if data_type == "discrete":
    if num_classes < 2:
      raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    if not np.issubdtype(images.dtype, np.integer):
      raise ValueError(f"discrete images must hold integer classes, got dtype {images.dtype}.")
    if images.size and (images.min() < 0 or images.max() >= num_classes):
      raise ValueError(
        f"discrete images must lie in [0, {num_classes}), got [{images.min()}, {images.max()}]."
      )
    return np.rint(images.astype(np.float64) * (255.0 / (num_classes - 1))).astype(np.uint8)
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"{data_type} images must be floats in [-1, 1], got dtype {images.dtype}.")
  pixels = np.rint((np.clip(images.astype(np.float64), -1.0, 1.0) + 1.0) * 127.5)
  return pixels.astype(np.uint8)


def make_grid(
  pixels: np.ndarray,
  *,
  nrow: int,
  padding: int = 2,
  pad_value: int = 255,
  min_cell_size: int = 64,
) -> np.ndarray:
  """Tiles uint8 images into one padded, upscaled grid.

  Args:
    pixels: uint8 (N, H, W, C) images, filled row by row.
    nrow: images per grid row (the last row may be partly empty).
    padding: pixels between cells and around the border.
    pad_value: grey level (0..255) of the padding.
    min_cell_size: every cell is upscaled by s = ceil(min_cell_size / max(H, W)) (at least 1).

  Returns:
    uint8 (rows (s H + padding) + padding, cols (s W + padding) + padding, C) with
    cols = min(nrow, N) and rows = ceil(N / nrow).

  Raises:
    ValueError: for an empty batch or non-positive nrow, negative padding or bad pad_value.
  """
  if pixels.ndim != 4 or pixels.shape[0] == 0:
    raise ValueError(f"pixels must have shape (N, H, W, C) with N >= 1, got {pixels.shape}.")
  if nrow < 1:
    raise ValueError(f"nrow must be >= 1, got {nrow}.")
  if padding < 0:
    raise ValueError(f"padding must be >= 0, got {padding}.")
  if not 0 <= pad_value <= 255:
    raise ValueError(f"pad_value must be in [0, 255], got {pad_value}.")
  n, h, w, c = pixels.shape
  scale = max(1, math.ceil(min_cell_size / max(h, w)))
  pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
  h, w = h * scale, w * scale
  cols, rows = min(nrow, n), math.ceil(n / nrow)
  grid = np.full(
    (rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, np.uint8
  )
  for k in range(n):
    top = padding + (k // nrow) * (h + padding)
    left = padding + (k % nrow) * (w + padding)
    grid[top : top + h, left : left + w] = pixels[k]
  return grid


def save_grid(
  path: str | os.PathLike,
  images,
  *,
  nrow: int,
  data_type: str,
  num_classes: int = 2,
  padding: int = 2,
  pad_value: int = 255,
  min_cell_size: int = 64,
) -> np.ndarray:
  """Writes a PNG grid of images (grey for C = 1, RGB for C = 3).

  Args:
    path: output file; parent folders are created.
    images: (N, H, W, C) model-space images (see `to_uint8`).
    nrow: images per grid row.
    data_type: 'continuous' | 'discretised' | 'discrete'.
    num_classes: K of discrete data.
    padding: pixels between cells and around the border.
    pad_value: grey level of the padding.
    min_cell_size: minimum cell size in pixels after integer upscaling (28x28 -> 84x84 at 64).

  Returns:
    The uint8 grid that was written, (height, width, C).
  """
  grid = make_grid(
    to_uint8(images, data_type, num_classes=num_classes),
    nrow=nrow,
    padding=padding,
    pad_value=pad_value,
    min_cell_size=min_cell_size,
  )
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path, format="PNG")
  return grid
