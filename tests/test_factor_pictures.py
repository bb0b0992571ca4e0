"""Pictures of disentanglement: the DCI importance heat map and factor-labelled traversal rows."""

import json
import os

import numpy as np
import pytest

from paramrel_jax.cli import eval_modes
from paramrel_jax.viz import plots


def test_heatmap_shades_cells_by_value_and_fits_its_labels(tmp_path):
  matrix = np.array([[0.9, 0.0, 0.1], [0.0, 0.5, 0.5]])
  path = tmp_path / "importance.png"
  image = plots.save_heatmap(path, matrix, ["z[0]", "z[1]"], ["hue", "scale", "shape"], "DCI")
  assert path.exists() and image.dtype == np.uint8
  cell = plots.HEATMAP_CELL
  height, width = image.shape[:2]
  left, top = width - 8 - 3 * cell, height - 8 - 2 * cell  # the map sits bottom-right

  def shade(row, col):  # mean brightness of a cell's left edge (away from its printed value)
    y, x = top + row * cell + 2, left + col * cell + 1
    return image[y : y + cell - 4, x : x + 2].mean()

  assert shade(0, 0) < shade(1, 1) < shade(0, 1)  # 0.9 darkest, 0.5 between, 0 white
  assert shade(0, 1) == pytest.approx(255, abs=1)
  with pytest.raises(ValueError, match="non-negative"):
    plots.save_heatmap(path, -matrix, ["a", "b"], ["x", "y", "z"], "bad")
  with pytest.raises(ValueError, match="labels"):
    plots.save_heatmap(path, matrix, ["a"], ["x", "y", "z"], "bad")


def _write_eval(workdir, dci):
  os.makedirs(os.path.join(workdir, "eval"))
  with open(os.path.join(workdir, "eval", "metrics.json"), "w") as f:
    json.dump({"step": 4, "dci": dci}, f)


def test_traversal_rows_are_labelled_by_the_factor_each_unit_matters_most_for(tmp_path):
  importance = [[0.1, 0.7, 0.2], [0.6, 0.2, 0.2], [0.0, 0.0, 0.0]]
  workdir = str(tmp_path / "standard")
  _write_eval(
    workdir,
    {
      "protocol": "standard",
      "importance_matrix": importance,
      "factor_names": ["hue", "scale", "shape"],
    },
  )
  labels = eval_modes.factor_of_units(workdir, 3)
  assert labels[:2] == ["scale (70%)", "hue (60%)"]
  assert eval_modes.factor_of_units(workdir, 4) is None  # another model's codes
  assert eval_modes.factor_of_units(str(tmp_path / "none"), 3) is None  # never evaluated
  # The quick protocol's folds are averaged.
  quick = str(tmp_path / "quick")
  folds = [{"importance_matrix": importance}, {"importance_matrix": [[0.9, 0.1, 0.0]] * 3}]
  _write_eval(quick, {"per_fold": folds, "factor_names": ["hue", "scale", "shape"]})
  assert eval_modes.factor_of_units(quick, 3)[0] == "hue (50%)"
