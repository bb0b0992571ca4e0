"""Image grids for samples, reconstructions, interpolations and traversals.

Images follow the project convention (N, H, W, C): floats in [-1, 1] for continuous and
discretised data, int class indices in [0, K) for discrete data. A grid is written as an 8-bit PNG
(grey for C = 1, RGB for C = 3), each cell upscaled by an integer factor (nearest neighbour, so
pixels stay sharp) until it is at least `min_cell_size` pixels, cells separated by `padding`
pixels of `pad_value`. `row_labels` / `col_labels` add white margins with a text label per grid
row (left) and column (top), e.g. the latent dimension and its value in a traversal.
"""

import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from paramrel_jax.bfn.flows import Flow


def to_uint8(images, flow: Flow) -> np.ndarray:
  """Maps model-space images to 8-bit pixels by their flow (`Flow.image_pixels`).

  Args:
    images: (N, H, W, C) array (numpy or jax) of the flow's data: floats in [-1, 1] for
      continuous and discretised data (values outside are clipped), int classes in [0, K) for
      discrete data (class k maps to round(255 k / (K - 1))).
    flow: the flow whose data the images are.

  Returns:
    uint8 array (N, H, W, C).

  Raises:
    ValueError: for a bad rank, channel count, dtype or class index, or a flow without images.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must have shape (N, H, W, C) with C in (1, 3), got {images.shape}.")
  return flow.image_pixels(images)


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


_CHAR_WIDTH, _LINE_HEIGHT = 6, 14  # PIL's default bitmap font, with a margin


def label_grid(
  grid: np.ndarray, *, cell: tuple[int, int], padding: int, row_labels=(), col_labels=()
) -> np.ndarray:
  """`grid` (from `make_grid`) with a left margin naming each row and a top one naming each column.

  Args:
    grid: uint8 (height, width, C) grid.
    cell: (h, w) of one upscaled cell.
    padding: the grid's padding.
    row_labels: one string per grid row (or none).
    col_labels: one string per grid column (or none).

  Returns:
    uint8 (height + top, left + width, C): white margins holding the labels in black.
  """
  h, w = cell
  left = (max(map(len, row_labels)) * _CHAR_WIDTH + 8) if row_labels else 0
  top = _LINE_HEIGHT + 4 if col_labels else 0
  canvas = np.full((grid.shape[0] + top, grid.shape[1] + left, grid.shape[2]), 255, np.uint8)
  canvas[top:, left:] = grid
  image = Image.fromarray(canvas[..., 0] if canvas.shape[-1] == 1 else canvas)
  draw, font = ImageDraw.Draw(image), ImageFont.load_default()
  ink = 0 if image.mode == "L" else (0, 0, 0)
  for r, text in enumerate(row_labels):
    draw.text(
      (4, top + padding + r * (h + padding) + h // 2 - _LINE_HEIGHT // 2),
      str(text),
      fill=ink,
      font=font,
    )
  for c, text in enumerate(col_labels):
    x = left + padding + c * (w + padding) + max(0, (w - len(str(text)) * _CHAR_WIDTH) // 2)
    draw.text((x, 2), str(text), fill=ink, font=font)
  return np.asarray(image).reshape(canvas.shape)


def save_grid(
  path: str | os.PathLike,
  images,
  *,
  nrow: int,
  flow: Flow,
  padding: int = 2,
  row_labels: Sequence[str] = (),
  col_labels: Sequence[str] = (),
) -> np.ndarray:
  """Writes a PNG grid of model-space images (N, H, W, C) of `flow`'s data (see `to_uint8`).

  The grid and its labels are `save_pixels`'s. Returns the uint8 grid that was written,
  (height, width, C).
  """
  pixels = to_uint8(images, flow)
  return save_pixels(
    path, pixels, nrow=nrow, padding=padding, row_labels=row_labels, col_labels=col_labels
  )


def save_pixels(
  path: str | os.PathLike,
  pixels: np.ndarray,
  *,
  nrow: int,
  padding: int = 2,
  pad_value: int = 255,
  min_cell_size: int = 64,
  row_labels=(),
  col_labels=(),
) -> np.ndarray:
  """Writes a PNG grid of uint8 images (grey for C = 1, RGB for C = 3).

  Args:
    path: output file; parent folders are created.
    pixels: uint8 (N, H, W, C) images, filled row by row.
    nrow: images per grid row.
    padding: pixels between cells and around the border.
    pad_value: grey level of the padding.
    min_cell_size: minimum cell size in pixels after integer upscaling (28x28 -> 84x84 at 64).
    row_labels: text per grid row, drawn in a left margin (`label_grid`).
    col_labels: text per grid column, drawn in a top margin.

  Returns:
    The uint8 grid that was written, (height, width, C).
  """
  grid = make_grid(
    pixels,
    nrow=nrow,
    padding=padding,
    pad_value=pad_value,
    min_cell_size=min_cell_size,
  )
  if row_labels or col_labels:
    scale = max(1, math.ceil(min_cell_size / max(pixels.shape[1:3])))
    grid = label_grid(
      grid,
      cell=(pixels.shape[1] * scale, pixels.shape[2] * scale),
      padding=padding,
      row_labels=row_labels,
      col_labels=col_labels,
    )
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path, format="PNG")
  return grid
