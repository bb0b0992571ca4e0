"""Smoke runs of the table scripts: a few steps each, so that a broken call cannot land again."""

import json

import numpy as np

from experiments import table2_digits, table3_factors

TINY_BUDGET = ["--steps", "2", "--batch_size", "8", "--latent_dim", "4"]  # both scripts' flags


def test_table2_digits_trains_probes_and_tabulates(tmp_path):
  rng = np.random.default_rng(0)
  labels = np.arange(1000) % 10
  images = np.zeros((1000, 28, 28, 1), np.uint8)
  for digit in range(10):  # one bright column per digit: the probe can tell them apart
    images[labels == digit, :, 2 * digit + 4] = 255
  images = np.maximum(images, rng.integers(0, 60, images.shape, dtype=np.uint8))
  path = tmp_path / "digits.npz"
  np.savez(path, image=images, label=labels.astype(np.int32))
  table2_digits.main(
    [
      "--data_path",
      str(path),
      *TINY_BUDGET,
      "--num_examples",
      "100",
      "--models",
      "paramrel_vanilla",
      "bfn",
      "--workdir",
      str(tmp_path / "runs"),
      "--out",
      str(tmp_path / "out"),
    ]
  )
  with open(tmp_path / "out" / "table2_digits.json") as f:
    result = json.load(f)
  assert set(result["models"]) == {"paramrel_vanilla", "bfn"}
  bfn = result["models"]["bfn"][0]
  assert bfn["features"].startswith("PCA-4") and bfn["step"] == 2
  # The PCA of pixels whose bright column names the digit separates the digits.
  assert bfn["auroc"]["auroc_mean"] > 0.9
  assert np.isfinite(result["models"]["paramrel_vanilla"][0]["auroc"]["auroc_mean"])
  assert "| bfn (seed 0)" in (tmp_path / "out" / "table2_digits.md").read_text()


def test_table3_factors_trains_and_scores_the_factors(tmp_path):
  table3_factors.main(
    [
      *TINY_BUDGET,
      "--dataset_size",
      "2000",
      "--num_examples",
      "400",
      "--n_estimators",
      "2",
      "--models",
      "paramreld",
      "--workdir",
      str(tmp_path / "runs"),
      "--out",
      str(tmp_path / "out"),
    ]
  )
  with open(tmp_path / "out" / "table3_factors.json") as f:
    result = json.load(f)
  row = result["models"]["paramreld"][0]
  assert row["step"] == 2 and row["dci"]["protocol"] == "quick"
  summary = result["summary"]["paramreld"]
  assert summary["dci_disentanglement"] == row["dci"]["disentanglement_mean"]
  assert 0.0 <= summary["factor_auroc"] <= 1.0
