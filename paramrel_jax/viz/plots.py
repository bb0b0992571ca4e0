"""PNG plots drawn with PIL (the project pins no plotting library): scatter plots, curves and
heat maps.

A figure is a grid of `COLUMNS` panels per row, each `PANEL_SIZE` pixels, on white. A scatter
panel shows 2-D points coloured by one integer annotation (a class label, an attribute, a
factor), with a legend of up to `MAX_LEGEND` values or the colour range of more; a curve panel
shows one logged scalar against the training step (`curve_panels`): the raw values in a light
line under their exponential moving average (`ema_weight`: at most `EMA_WEIGHT`, less for short
curves, so the average never lags far behind), both named in a legend, on a
log y-axis when the values are positive and span more than a decade (`curve_scale`). Text uses
PIL's default bitmap font.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL_SIZE = (320, 260)  # (width, height) in pixels
COLUMNS = 4
MAX_LEGEND = 10  # values listed one by one; more get the colour range
# Plot box inside a panel: left, top, right, bottom margins (room for the title and the ranges).
_BOX = (56, 22, 10, 34)
_POINT_RADIUS = 2
# Tableau's ten categorical colours, for up to MAX_LEGEND values.
_CATEGORICAL = np.array(
  [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
  ],
  np.float64,
)
# Viridis at five stops, interpolated linearly, for more values (ordered factors).
_SEQUENTIAL = np.array(
  [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], np.float64
)
_INK, _FRAME, _LINE = (0, 0, 0), (160, 160, 160), (31, 119, 180)
_RAW, _GRID = (174, 199, 232), (225, 225, 225)  # the raw curve under its EMA; log-axis decades
EMA_WEIGHT = 0.9  # s_k = w s_(k-1) + (1 - w) v_k over the logged points, s_0 = v_0
LOG_SPAN = 10.0  # a positive curve whose max / min exceeds this gets a log y-axis


def figure_size(num_panels: int) -> tuple[int, int]:
  """(width, height) in pixels of a figure of `num_panels` >= 1 panels."""
  cols = min(COLUMNS, num_panels)
  return cols * PANEL_SIZE[0], math.ceil(num_panels / COLUMNS) * PANEL_SIZE[1]


def value_colours(values: np.ndarray) -> dict[int, tuple[int, int, int]]:
  """RGB colour of every distinct value: categorical for up to MAX_LEGEND, else viridis."""
  distinct = np.unique(values)
  if len(distinct) <= MAX_LEGEND:
    rgb = _CATEGORICAL[: len(distinct)]
  else:
    stops = np.linspace(0.0, 1.0, len(_SEQUENTIAL))
    where = np.linspace(0.0, 1.0, len(distinct))
    rgb = np.stack([np.interp(where, stops, _SEQUENTIAL[:, c]) for c in range(3)], axis=1)
  return {
    int(v): tuple(int(round(c)) for c in colour) for v, colour in zip(distinct, rgb, strict=True)
  }


def _box() -> tuple[int, int, int, int]:
  width, height = PANEL_SIZE
  return _BOX[0], _BOX[1], width - _BOX[2], height - _BOX[3]


def _scaled(values: np.ndarray, low: float, high: float, start: int, end: int) -> np.ndarray:
  """Maps values in [low, high] linearly to pixel positions in [start, end]."""
  if high <= low:  # a single value: the middle
    return np.full(values.shape, (start + end) / 2)
  return start + (values - low) / (high - low) * (end - start)


def _panel(title: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
  image = Image.new("RGB", PANEL_SIZE, (255, 255, 255))
  draw = ImageDraw.Draw(image)
  draw.text((_BOX[0], 4), title, fill=_INK, font=ImageFont.load_default())
  draw.rectangle(_box(), outline=_FRAME)
  return image, draw


def _ranges(draw: ImageDraw.ImageDraw, x: tuple[float, float], y: tuple[float, float]) -> None:
  """Writes the x range under the box and the y range beside it."""
  left, top, right, bottom = _box()
  draw.text((2, top), f"{y[1]:.3g}", fill=_INK)
  draw.text((2, bottom - 10), f"{y[0]:.3g}", fill=_INK)
  draw.text((left, bottom + 2), f"{x[0]:.3g}", fill=_INK)
  text = f"{x[1]:.3g}"
  draw.text((right - 6 * len(text), bottom + 2), text, fill=_INK)


def _scatter_panel(
  points: np.ndarray, values: np.ndarray, title: str, order: np.ndarray
) -> Image.Image:
  image, draw = _panel(title)
  left, top, right, bottom = _box()
  x, y = points[:, 0], points[:, 1]
  pad = _POINT_RADIUS + 1
  px = _scaled(x, x.min(), x.max(), left + pad, right - pad)
  py = _scaled(y, y.min(), y.max(), bottom - pad, top + pad)  # y grows upwards
  colours = value_colours(values)
  for i in order:  # one fixed random order for all panels: no value is always drawn on top
    r = _POINT_RADIUS
    draw.ellipse((px[i] - r, py[i] - r, px[i] + r, py[i] + r), fill=colours[int(values[i])])
  _ranges(draw, (x.min(), x.max()), (y.min(), y.max()))
  legend_y = bottom + 16
  if len(colours) <= MAX_LEGEND:
    cursor = left
    for value, colour in colours.items():
      draw.rectangle((cursor, legend_y + 2, cursor + 7, legend_y + 9), fill=colour)
      draw.text((cursor + 10, legend_y), str(value), fill=_INK)
      cursor += 16 + 6 * len(str(value))
  else:
    low, high = min(colours), max(colours)
    draw.text((left, legend_y), str(low), fill=_INK)
    start = left + 8 + 6 * len(str(low))
    for k, colour in enumerate(colours.values()):
      x0 = start + k * 100 // len(colours)
      draw.rectangle(
        (x0, legend_y + 2, start + (k + 1) * 100 // len(colours), legend_y + 9), fill=colour
      )
    draw.text((start + 104, legend_y), str(high), fill=_INK)
  return image


@dataclasses.dataclass(frozen=True)
class CurvePanel:
  """What one curve panel draws: the raw values, their EMA, the y-axis scale and the labels."""

  name: str
  steps: np.ndarray  # (T,)
  values: np.ndarray  # (T,) raw
  smoothed: np.ndarray  # (T,) `ema(values)`
  scale: str  # 'log' or 'linear'
  title: str
  legend: tuple[str, ...]  # the raw line's label, then the EMA's; none for one point


def curve_scale(values) -> str:
  """'log' for values that are all positive and span more than a decade (max / min >
  `LOG_SPAN`), else 'linear' (zero or negative values have no place on a log axis)."""
  values = np.asarray(values, np.float64)
  return "log" if values.min() > 0 and values.max() > LOG_SPAN * values.min() else "linear"


def ema_weight(num_points: int) -> float:
  """The EMA weight of a curve of `num_points`: EMA_WEIGHT, or less so that the average's memory
  1 / (1 - w) spans at most a tenth of the points (0, no smoothing, below 12 points)."""
  return float(np.clip(1.0 - 10.0 / max(num_points, 1), 0.0, EMA_WEIGHT))


def ema(values, weight: float = EMA_WEIGHT) -> np.ndarray:
  """Exponential moving average over the points, started at the first value: (T,) -> (T,)."""
  values = np.asarray(values, np.float64)
  out, acc = np.empty_like(values), values[0]
  for k, value in enumerate(values):
    acc = weight * acc + (1.0 - weight) * value
    out[k] = acc
  return out


def curve_panels(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[CurvePanel]:
  """One `CurvePanel` per curve, as `save_curves` draws them (arguments and errors there)."""
  if not curves:
    raise ValueError("there are no curves to plot.")
  panels = []
  for name, (steps, values) in curves.items():
    steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    if steps.ndim != 1 or steps.shape != values.shape or steps.size == 0:
      raise ValueError(
        f"curve {name!r} needs steps and values of one equal length >= 1, got "
        f"{steps.shape} and {values.shape}."
      )
    if not (np.isfinite(steps).all() and np.isfinite(values).all()):
      raise ValueError(f"curve {name!r} has non-finite steps or values.")
    scale, weight = curve_scale(values), ema_weight(values.size)
    panels.append(
      CurvePanel(
        name=name,
        steps=steps,
        values=values,
        smoothed=ema(values, weight),
        scale=scale,
        title=f"{name}: {values[-1]:.4g}{' (log y)' if scale == 'log' else ''}",
        legend=("raw", f"EMA {weight:.2g} smoothed") if steps.size > 1 else (),
      )
    )
  return panels


def _curve_panel(curve: CurvePanel) -> Image.Image:
  """Draws a `CurvePanel`: the raw line, its EMA over it, a labelled line at each power of ten
  on a log axis, and the legend under the box (where no curve runs)."""
  image, draw = _panel(curve.title)
  left, top, right, bottom = _box()
  log = curve.scale == "log"
  shown = [np.log10(v) if log else v for v in (curve.values, curve.smoothed)]
  low, high = min(v.min() for v in shown), max(v.max() for v in shown)
  if log:
    for decade in range(math.ceil(low), math.floor(high) + 1):
      y = float(_scaled(np.array([decade]), low, high, bottom - 1, top + 1)[0])
      draw.line([(left + 1, y), (right - 1, y)], fill=_GRID)
      if top + 12 < y < bottom - 12:  # clear of the range labels at the ends
        draw.text((2, y - 5), f"1e{decade}", fill=_INK)
  px = _scaled(curve.steps, curve.steps.min(), curve.steps.max(), left + 1, right - 1)
  for values, colour, width in zip(shown, (_RAW, _LINE), (1, 2), strict=True):
    py = _scaled(values, low, high, bottom - 1, top + 1)
    if len(px) == 1:
      draw.ellipse((px[0] - 2, py[0] - 2, px[0] + 2, py[0] + 2), fill=colour)
    else:
      draw.line(list(zip(px.tolist(), py.tolist(), strict=True)), fill=colour, width=width)
  _ranges(draw, (curve.steps.min(), curve.steps.max()), (curve.values.min(), curve.values.max()))
  cursor, legend_y = left, bottom + 16
  for label, colour in zip(curve.legend, (_RAW, _LINE), strict=False):  # none for one point
    draw.line([(cursor, legend_y + 5), (cursor + 12, legend_y + 5)], fill=colour, width=2)
    draw.text((cursor + 16, legend_y), label, fill=_INK)
    cursor += 28 + 6 * len(label)
  return image


def _save(path: str | os.PathLike, panels: list[Image.Image]) -> np.ndarray:
  figure = Image.new("RGB", figure_size(len(panels)), (255, 255, 255))
  for k, panel in enumerate(panels):
    figure.paste(panel, ((k % COLUMNS) * PANEL_SIZE[0], (k // COLUMNS) * PANEL_SIZE[1]))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.save(path, format="PNG")
  return np.asarray(figure)


def save_scatter(
  path: str | os.PathLike, points, colourings: dict[str, np.ndarray], *, seed: int = 0
) -> np.ndarray:
  """Writes one scatter panel of `points` per colouring.

  Args:
    path: the PNG file; parent folders are created.
    points: (N, 2) finite coordinates, N >= 1.
    colourings: panel title -> (N,) integer values that colour the points; empty: one panel
      titled 'codes' with every point in the first colour.
    seed: seed of the order the points are drawn in.

  Returns:
    The uint8 RGB figure that was written, (height, width, 3) with `figure_size(panels)`.

  Raises:
    ValueError: points not (N, 2) finite with N >= 1, or a colouring not (N,) integers.
  """
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] != 2:
    raise ValueError(f"points must have shape (N, 2) with N >= 1, got {points.shape}.")
  if not np.isfinite(points).all():
    raise ValueError("points must be finite.")
  colourings = colourings or {"codes": np.zeros(len(points), np.int64)}
  for name, values in colourings.items():
    values = np.asarray(values)
    if values.shape != (len(points),) or not np.issubdtype(values.dtype, np.integer):
      raise ValueError(
        f"colouring {name!r} must be integers of shape ({len(points)},), got "
        f"{values.dtype} {values.shape}."
      )
  order = np.random.default_rng(seed).permutation(len(points))
  return _save(
    path,
    [
      _scatter_panel(points, np.asarray(values), name, order) for name, values in colourings.items()
    ],
  )


def save_curves(
  path: str | os.PathLike, curves: dict[str, tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
  """Writes one panel per curve, its values against its steps.

  Args:
    path: the PNG file; parent folders are created.
    curves: name -> (steps (T,), values (T,)), T >= 1, finite.

  Returns:
    The uint8 RGB figure that was written, (height, width, 3) with `figure_size(len(curves))`.

  Raises:
    ValueError: no curves, or a curve whose steps and values are not equal-length, non-empty
      and finite.
  """
  return _save(path, [_curve_panel(curve) for curve in curve_panels(curves)])


HEATMAP_CELL = 28  # pixels per cell of a heat map


def save_heatmap(
  path: str | os.PathLike, matrix, row_labels: list[str], col_labels: list[str], title: str
) -> np.ndarray:
  """Writes a labelled heat map of a non-negative matrix (white 0 to dark blue at its maximum).

  Each cell shows its value to two decimals; rows and columns are labelled, e.g. the DCI
  importance matrix with one row per latent unit and one column per factor.

  Args:
    path: the PNG file; parent folders are created.
    matrix: (R, K) finite, non-negative.
    row_labels: R labels.
    col_labels: K labels.
    title: drawn above the map.

  Returns:
    The uint8 RGB image that was written.

  Raises:
    ValueError: a matrix that is not 2-D, finite and non-negative, or labels that do not fit it.
  """
  matrix = np.asarray(matrix, np.float64)
  if matrix.ndim != 2 or not np.isfinite(matrix).all() or (matrix < 0).any():
    raise ValueError(f"matrix must be 2-D, finite and non-negative, got shape {matrix.shape}.")
  rows, cols = matrix.shape
  if len(row_labels) != rows or len(col_labels) != cols:
    raise ValueError(
      f"{len(row_labels)} row and {len(col_labels)} column labels for a {rows} x {cols} matrix."
    )
  font = ImageFont.load_default()
  left = 8 + 6 * max(len(label) for label in row_labels)
  top = 24 + 6 * max(len(label) for label in col_labels)
  cell = HEATMAP_CELL
  image = Image.new("RGB", (left + cols * cell + 8, top + rows * cell + 8), (255, 255, 255))
  draw = ImageDraw.Draw(image)
  draw.text((4, 4), title, fill=_INK, font=font)
  scale = matrix.max() if matrix.max() > 0 else 1.0
  dark = np.array((8, 48, 107), np.float64)
  for j, label in enumerate(col_labels):  # column labels, one character per line
    for k, char in enumerate(label):
      draw.text((left + j * cell + cell // 2 - 3, 22 + 6 * k), char, fill=_INK, font=font)
  for i, label in enumerate(row_labels):
    draw.text((4, top + i * cell + cell // 2 - 5), label, fill=_INK, font=font)
    for j in range(cols):
      share = matrix[i, j] / scale
      colour = tuple(int(round(c)) for c in 255 + share * (dark - 255))
      box = (left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
      draw.rectangle(box, fill=colour, outline=_FRAME)
      ink = (255, 255, 255) if share > 0.5 else _INK
      text = f"{matrix[i, j]:.2f}"
      draw.text(
        (box[0] + 3, box[1] + cell // 2 - 5),
        text[1:] if text[0] == "0" else text,
        fill=ink,
        font=font,
      )
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  image.save(path, format="PNG")
  return np.asarray(image)
