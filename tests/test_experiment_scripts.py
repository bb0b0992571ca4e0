"""Smoke runs of the experiment scripts (the table scripts, the compile-time and input-pipeline
benchmarks): a few steps each, so that a broken call cannot land again. benchmark.py,
latent_study.py and disentangle_curve.py have their own test files."""

import json

import numpy as np
import pytest

from experiments import compile_times, ica_codes, pipeline_benchmark, table2_digits, table3_factors

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


def test_pipeline_benchmark_times_both_loaders_of_a_config(tmp_path):
  name = "default (generated shapes2d)"
  out = tmp_path / "pipeline.json"
  pipeline_benchmark.main(
    ["--cases", name, "--workers", "0", "--num_batches", "2", "--out", str(out)]
  )
  with open(out) as f:
    case = json.load(f)["cases"][name]
  assert [row["loader"] for row in case["pipeline"]] == ["grain", "memory"]
  assert all(row["images_per_s"] > 0 for row in case["pipeline"])
  assert case["loader_auto"] in ("grain", "memory") and case["train_gflop_per_image"] > 0


def test_compile_times_times_the_cli_runs_of_a_cache_state(tmp_path):
  out = tmp_path / "compile_times.json"
  compile_times.main(["--configs", "default_smoke", "--states", "off", "--out", str(out)])
  with open(out) as f:
    times = json.load(f)["configs"]["default_smoke"]
  assert set(times) == {"fresh", "resume", "sample"}
  assert all(list(row) == ["off"] and row["off"] > 0 for row in times.values())


def test_ica_codes_scores_codes_before_and_after_the_unmixing(tmp_path):
  """A rotation of a permuted identity of the factors: the unmixing undoes it, and D rises."""
  rng = np.random.default_rng(0)
  factors = rng.integers(0, 4, (300, 3))
  sources = factors + rng.uniform(-0.3, 0.3, factors.shape)  # independent, non-Gaussian
  rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
  (tmp_path / "latents").mkdir()
  np.savez(tmp_path / "latents" / "train.npz", z=sources @ rotation, factors=factors)
  rows = ica_codes.main(
    [str(tmp_path), "--train", "200", "--test", "100", "--n_estimators", "10", "--jobs", "1"]
  )
  assert len(rows) == 4 and "as exported" in rows[2] and "FastICA" in rows[3]
  d_mixed, d_unmixed = (float(row.split("|")[3]) for row in rows[2:])
  assert d_unmixed > 0.8 and d_unmixed > d_mixed + 0.2, (d_mixed, d_unmixed)


def test_table_study_baselines_encode_fill_and_score_a_table():
  """The table study's baselines on a generated mixed table: the one-hot design, the AE's codes,
  mean / mode and IterativeImputer fills of hidden cells, and their scores."""
  from test_record_net import _table

  from experiments import table_study
  from paramrel_jax.data import tables

  table = _table(300, seed=1)
  schema = tables.infer_schema(table)
  # whatever the model's scaling, the baselines see the range map
  assert table_study.range_scaled(tables.infer_schema(table, scaling="quantile")) == schema
  x = table_study.design(schema, table)
  assert x.shape == (300, 3 + 1 + 1 + 2) and np.isfinite(x).all()  # colour, size, legs, flag
  assert table_study.autoencoder_codes(x, 2, seed=0).shape == (300, 2)
  train, test = table.iloc[:200], table.iloc[200:].reset_index(drop=True)
  hidden = table_study._hide(test, schema.names, 0.3, seed=0)
  assert 0.2 < hidden.to_numpy().mean() < 0.35 and not (hidden & test.isna()).to_numpy().any()
  gaps = table_study.with_gaps(test, hidden)
  assert (gaps.isna() == (hidden | test.isna())).all().all()
  stds = {"size": float(train["size"].std()), "legs": float(train["legs"].std())}
  scores = {
    row: table_study._score(schema, test, filled, hidden, stds)
    for row, filled in table_study._baseline_fills(schema, train, gaps, seed=0).items()
  }
  assert set(scores) == {"mean_mode", "iterative_imputer"}
  # the columns share a hidden kind, so regressing on the observed ones beats the marginals
  assert scores["iterative_imputer"]["rmse_over_std"] < scores["mean_mode"]["rmse_over_std"] - 0.3
  assert scores["iterative_imputer"]["accuracy"] > scores["mean_mode"]["accuracy"]
  perfect = table_study._score(schema, test, test, hidden, stds)
  assert perfect == {"accuracy": 1.0, "rmse_over_std": 0.0}


def test_table_study_runs_a_seed_of_a_table_end_to_end(tmp_path, monkeypatch):
  """run_seed on a generated table in place of a bundled one (2 training steps): the CSV the
  model reads, the run, and every score of the summary."""
  from test_record_net import _table

  from experiments import real_tables, table_study
  from paramrel_jax.data import tables
  from paramrel_jax.training.workdir_utils import saved_run_settings

  table = _table(300, seed=2)
  for i in range(4):  # as wide as the default's 8 latent dimensions, for PCA's codes
    table[f"x{i}"] = table["legs"] / 20 + np.random.default_rng(i).normal(0, 0.5, len(table))
  monkeypatch.setitem(
    real_tables.TABLES, "generated", real_tables.Table("-", lambda: table, "flag")
  )
  setting = table_study.Setting("quantile", "flat")  # neither is the config's
  result = table_study.run_seed("generated", 0, 2, str(tmp_path), setting)
  written = tmp_path / "generated" / "table.csv"
  run = tmp_path / "generated" / "quantile" / "flat" / "seed0"  # a folder per setting
  assert written.is_file() and (run / "checkpoints").is_dir()
  assert len(open(written).read().splitlines()) == 301  # the header and every row
  schema = tables.TableSchema.load(str(run))
  assert {c.scaling for c in schema.columns if c.kind == "continuous"} == {"quantile"}
  assert saved_run_settings(str(run))["objective.latent_weighting"] == "flat"
  with pytest.raises(RuntimeError, match="trained with latent_weighting='flat', not 'elbo'"):
    table_study.check_trained(str(run), table_study.Setting("quantile", "elbo"))
  assert set(result["probe_auroc"]) == {"paramrel", "pca", "ae"}
  assert set(result["imputation"]) == {str(f) for f in table_study.HIDE_FRACTIONS}
  older = {k: v for k, v in result.items() if k not in ("scaling", "weighting")}
  # saved before the settings existed: range scaling, flat_both weighting
  assert table_study.Setting.of(older) == table_study.Setting("range", "flat_both")
  summary = table_study.summarise([result, older])
  assert summary.count("| generated (quantile scaling, flat weighting) |") == 2 + 2 * len(
    table_study.HIDE_FRACTIONS
  )
  label = "generated (flat_both weighting)"  # configs/tabular.py's is elbo
  assert summary.count(f"| {label} |") == 2 + 2 * len(table_study.HIDE_FRACTIONS)
