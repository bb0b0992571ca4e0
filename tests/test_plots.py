"""Pictures: PNG scatter plots and curves, the 2-D projections of codes, the logged curves."""

import json

import numpy as np
import pytest
from PIL import Image

from paramrel_jax.evaluation import latent_plots
from paramrel_jax.training import logging_utils
from paramrel_jax.viz import plots


def _png(path) -> np.ndarray:
  with Image.open(path) as png:
    assert png.format == "PNG" and png.mode == "RGB"
    return np.asarray(png)


def test_pca_of_points_on_a_line_lies_on_the_first_axis():
  rng = np.random.default_rng(0)
  direction = rng.normal(size=5)
  t = rng.uniform(-2.0, 3.0, size=40)
  z = (t[:, None] * direction + rng.normal(size=5)).astype(np.float32)
  coords = latent_plots.pca_2d(z)
  assert coords.shape == (40, 2) and coords.dtype == np.float32
  np.testing.assert_allclose(coords[:, 1], 0.0, atol=1e-5)
  # The first coordinate is the position along the line, centred, up to the axis's sign.
  along = (t - t.mean()) * np.linalg.norm(direction)
  sign = np.sign(direction[np.argmax(np.abs(direction))])  # the largest loading is positive
  np.testing.assert_allclose(coords[:, 0], sign * along, rtol=1e-4, atol=1e-4)


def test_pca_of_planar_codes_keeps_their_distances():
  rng = np.random.default_rng(1)
  plane = rng.normal(size=(30, 2))
  basis = np.linalg.qr(rng.normal(size=(6, 2)))[0].T  # two orthonormal rows in 6-D
  coords = latent_plots.pca_2d(plane @ basis)
  distances = lambda p: np.linalg.norm(p[:, None] - p[None], axis=-1)  # noqa: E731
  np.testing.assert_allclose(distances(coords), distances(plane), atol=1e-5)


def test_tsne_keeps_clusters_apart_and_is_seeded():
  rng = np.random.default_rng(2)
  z = np.concatenate([rng.normal(size=(20, 4)), rng.normal(size=(20, 4)) + 50.0])
  coords = latent_plots.tsne_2d(z, seed=3)
  assert coords.shape == (40, 2) and coords.dtype == np.float32
  np.testing.assert_array_equal(coords, latent_plots.tsne_2d(z, seed=3))
  a, b = coords[:20], coords[20:]
  spread = max(np.ptp(a, axis=0).max(), np.ptp(b, axis=0).max())
  assert np.linalg.norm(a.mean(0) - b.mean(0)) > spread


@pytest.mark.parametrize(
  "z, match",
  [
    (np.zeros(10, np.float32), r"shape \(N, L\).*got \(10,\)"),
    (np.zeros((2, 4), np.float32), r"N >= 3.*got \(2, 4\)"),
    (np.zeros((10, 1), np.float32), r"L >= 2.*got \(10, 1\)"),
    (np.zeros((10, 4), np.int32), "finite floats"),
    (np.full((10, 4), np.nan, np.float32), "finite floats"),
  ],
)
def test_bad_codes_are_named(z, match):
  for project in (latent_plots.pca_2d, latent_plots.tsne_2d):
    with pytest.raises(ValueError, match=match):
      project(z)


def test_save_projections_needs_codes_and_matching_annotations(tmp_path):
  with pytest.raises(ValueError, match="no codes to plot"):
    latent_plots.save_projections(str(tmp_path), "test", {"label": np.zeros(5, np.int32)})
  z = np.zeros((5, 3), np.float32)
  with pytest.raises(ValueError, match="'label' has 4 rows but there are 5 codes"):
    latent_plots.save_projections(str(tmp_path), "test", {"z": z, "label": np.zeros(4, np.int32)})
  assert not list(tmp_path.iterdir())


def test_save_projections_writes_a_panel_per_factor(tmp_path):
  rng = np.random.default_rng(4)
  arrays = {
    "z": rng.normal(size=(60, 4)).astype(np.float32),
    "factors": rng.integers(0, 16, size=(60, 3)).astype(np.int32),
  }
  paths = latent_plots.save_projections(
    str(tmp_path), "test", arrays, factor_names=("a", "b"), max_points=25
  )
  assert paths == {m: str(tmp_path / f"test_{m}.png") for m in latent_plots.METHODS}
  width, height = plots.figure_size(3)  # unnamed columns still get a panel each
  for path in paths.values():
    assert _png(path).shape == (height, width, 3)
  assert list(latent_plots.colourings(arrays, factor_names=("a", "b"))) == [
    "factor 0",
    "factor 1",
    "factor 2",
  ]
  assert list(latent_plots.colourings(arrays, factor_names=("a", "b", "c"))) == ["a", "b", "c"]


def test_scatter_colours_the_classes_differently(tmp_path):
  # Two classes in opposite corners: the left half of the plot box holds class 0's colour
  # only, the right half class 1's.
  rng = np.random.default_rng(5)
  points = np.concatenate([rng.uniform(0, 1, (30, 2)), rng.uniform(9, 10, (30, 2))])
  labels = np.repeat([0, 1], 30)
  figure = plots.save_scatter(tmp_path / "s.png", points, {"label": labels})
  assert figure.shape == (*plots.figure_size(1)[::-1], 3)
  np.testing.assert_array_equal(_png(tmp_path / "s.png"), figure)
  colours = plots.value_colours(labels)
  left, top, right, bottom = plots._box()
  middle = (left + right) // 2

  def drawn(region):
    pixels = {tuple(p) for p in region.reshape(-1, 3)}
    return pixels & set(colours.values())

  assert drawn(figure[top + 1 : bottom, left + 1 : middle]) == {colours[0]}
  assert drawn(figure[top + 1 : bottom, middle:right]) == {colours[1]}
  assert colours[0] != colours[1]


def test_many_values_get_a_colour_range():
  colours = plots.value_colours(np.arange(16))
  assert len(set(colours.values())) == 16
  assert colours[0] == (68, 1, 84) and colours[15] == (253, 231, 37)  # viridis ends


@pytest.mark.parametrize(
  "points, colourings, match",
  [
    (np.zeros((0, 2)), {}, r"\(N, 2\) with N >= 1, got \(0, 2\)"),
    (np.zeros((4, 3)), {}, r"\(N, 2\) with N >= 1, got \(4, 3\)"),
    (np.full((4, 2), np.inf), {}, "finite"),
    (
      np.zeros((4, 2)),
      {"label": np.zeros(3, np.int32)},
      r"'label' must be integers of shape \(4,\)",
    ),
    (np.zeros((4, 2)), {"label": np.zeros(4)}, "integers"),
  ],
)
def test_bad_scatter_input_is_named(tmp_path, points, colourings, match):
  with pytest.raises(ValueError, match=match):
    plots.save_scatter(tmp_path / "s.png", points, colourings)


def test_curves_png_has_a_panel_per_curve(tmp_path):
  steps = np.arange(1, 51)
  curves = {"loss": (steps, 3000.0 / steps), "kl": (steps, np.sin(steps)), "one": ([7], [1.0])}
  figure = plots.save_curves(tmp_path / "c.png", curves)
  width, height = plots.figure_size(3)
  assert figure.shape == (height, width, 3)
  np.testing.assert_array_equal(_png(tmp_path / "c.png"), figure)
  assert len({tuple(p) for p in figure.reshape(-1, 3)}) > 3  # lines and text, not blank
  with pytest.raises(ValueError, match="no curves"):
    plots.save_curves(tmp_path / "c.png", {})
  with pytest.raises(ValueError, match=r"'kl' needs steps and values of one equal length"):
    plots.save_curves(tmp_path / "c.png", {"kl": ([1, 2], [1.0])})


def test_figure_size_tiles_columns_then_rows():
  assert plots.figure_size(1) == plots.PANEL_SIZE
  assert plots.figure_size(plots.COLUMNS + 1) == (
    plots.COLUMNS * plots.PANEL_SIZE[0],
    2 * plots.PANEL_SIZE[1],
  )


def test_curves_of_a_resumed_log_keep_the_last_value_per_step(tmp_path):
  rows = [
    {"step": 2, "loss": 9.0, "kl": float("nan")},
    {"step": 4, "loss": 8.0, "kl": float("nan")},
    {"step": 4, "loss": 7.0, "kl": 1.0},  # re-logged after a resume from step 2
    {"step": 6, "loss": 6.0, "kl": 0.5},
  ]
  (tmp_path / logging_utils.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
  curves = logging_utils.read_curves(str(tmp_path))
  np.testing.assert_array_equal(curves["loss"][0], [2, 4, 6])
  np.testing.assert_array_equal(curves["loss"][1], [9.0, 7.0, 6.0])
  np.testing.assert_array_equal(curves["kl"][0], [4, 6])
  path = logging_utils.save_curves(str(tmp_path))
  assert path == str(tmp_path / logging_utils.CURVES_FILE)
  assert _png(path).shape == (*plots.figure_size(2)[::-1], 3)
  with pytest.raises(ValueError, match="no metrics.jsonl"):
    logging_utils.read_curves(str(tmp_path / "empty"))


def _logged(tmp_path, **curves) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Writes the curves as metrics.jsonl rows, one per step, and reads them back."""
  steps = np.arange(1, len(next(iter(curves.values()))) + 1) * 50
  rows = [
    {"step": int(s), **{k: float(v[i]) for k, v in curves.items()}} for i, s in enumerate(steps)
  ]
  (tmp_path / logging_utils.METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
  return logging_utils.read_curves(str(tmp_path))


def test_a_curve_spanning_decades_gets_a_log_axis_and_a_narrow_one_stays_linear(tmp_path):
  rng = np.random.default_rng(6)
  t = np.arange(1, 201)
  curves = _logged(
    tmp_path,
    loss=3000.0 / t**1.3 + 1.0,  # from 3001 to ~2: three decades
    grad_norm=50.0 * t**-0.6,  # 50 to ~2.1: more than a decade
    kl=4.0 + 0.5 * rng.normal(size=t.size),  # positive, within a factor of two
    delta=rng.normal(size=t.size),  # crosses zero: never log
    spread=np.linspace(1.0, 9.0, t.size),  # positive, less than a decade
  )
  panels = {p.name: p for p in plots.curve_panels(curves)}
  assert {n: p.scale for n, p in panels.items()} == {
    "loss": "log",
    "grad_norm": "log",
    "kl": "linear",
    "delta": "linear",
    "spread": "linear",
  }
  assert panels["loss"].title.endswith("(log y)") and "log" not in panels["kl"].title
  assert plots.curve_scale([0.0, 100.0]) == "linear"  # a zero has no place on a log axis
  assert plots.curve_scale([1.0, 10.0]) == "linear"  # exactly a decade: not more
  assert plots.curve_scale([1.0, 10.01]) == "log"
  # The figure written for the run: loss first, one panel per scalar, not blank.
  figure = _png(logging_utils.save_curves(str(tmp_path)))
  assert figure.shape == (*plots.figure_size(5)[::-1], 3)


def test_curves_draw_the_raw_values_under_a_labelled_ema(tmp_path):
  values = np.array([10.0, 0.0, 0.0, 0.0, 10.0])
  np.testing.assert_allclose(plots.ema(values, 0.9), [10.0, 9.0, 8.1, 7.29, 7.561])
  long = np.tile(values, 40)  # 200 points: the full weight
  (panel,) = plots.curve_panels({"loss": (np.arange(200), long)})
  np.testing.assert_array_equal(panel.values, long)  # the raw values are drawn too
  np.testing.assert_allclose(panel.smoothed, plots.ema(long, plots.EMA_WEIGHT))
  assert panel.legend == ("raw", f"EMA {plots.EMA_WEIGHT:g} smoothed")
  assert "EMA 0.9" in panel.legend[1]
  # A short curve is smoothed less, so that the average does not lag behind it: the quickstart's
  # 12 logged points of a loss falling from 2,000 to 100 end within 10 % of the last value.
  assert plots.ema_weight(12) == pytest.approx(1 - 10 / 12) and plots.ema_weight(5) == 0.0
  falling = np.geomspace(2000, 100, 12)
  (short,) = plots.curve_panels({"loss": (np.arange(12), falling)})
  assert abs(short.smoothed[-1] - 100) < 10 and short.legend[1] == "EMA 0.17 smoothed"
  (single,) = plots.curve_panels({"one": ([7], [1.0])})
  assert single.legend == () and single.scale == "linear"  # one point: nothing to smooth
  # Both lines are in the picture: the light raw colour and the smoothed one.
  figure = plots.save_curves(tmp_path / "c.png", {"loss": (np.arange(50), np.sin(np.arange(50)))})
  colours = {tuple(p) for p in figure.reshape(-1, 3)}
  assert plots._RAW in colours and plots._LINE in colours
