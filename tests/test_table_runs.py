"""Table runs through the command line and the Python API: the bundled config, the schema saved
with the run, the CSV outputs of sample / reconstruct / impute, per-column nats, exported codes
with labels, exact resume, and one clear error line per bad table or setting."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from test_main import _assert_one_error, _cli
from test_record_net import _table as record_table

import paramrel_jax
from paramrel_jax.data import sources, tables

pytestmark = pytest.mark.xdist_group("table_runs")  # one worker: the module fixture trains once

_TABULAR = ["--config=configs/tabular.py:smoke"]


def _table(rows: int, seed: int = 0) -> pd.DataFrame:
  """`test_record_net`'s table (a hidden kind sets every column, a few cells missing) with the
  kind as the probe label 'kind' (legs // 20 is the kind)."""
  table = record_table(rows, seed)
  return table.assign(kind=np.array(["a", "b", "c"])[table["legs"].to_numpy() // 20])


def _args(path: str, workdir: str, *extra: str) -> list[str]:
  """The CLI arguments of a run on the table at `path`, its label 'kind'; `extra` last."""
  return [
    *_TABULAR,
    f"--workdir={workdir}",
    f"--config.data.path={path}",
    "--config.data.label=kind",
    *extra,
  ]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(csv path, workdir) of a table run trained by the CLI (4 steps of the smoke variant)."""
  root = tmp_path_factory.mktemp("table")
  path = str(root / "toy.csv")
  _table(200).to_csv(path, index=False)
  workdir = str(root / "run")
  result = _cli(*_args(path, workdir))
  assert result.returncode == 0, result.stderr
  # the kinds are printed at the start, and the schema is kept with the run
  assert "colour: discrete, 3 categories (blue, green, red)" in result.stdout
  assert "legs: discretised, integers 0..44 on 45 bins" in result.stdout
  assert "label kind: discrete, 3 categories (a, b, c)" in result.stdout
  schema = tables.TableSchema.load(workdir)
  assert schema.names == ("colour", "size", "legs", "flag") and schema.label.name == "kind"
  return path, workdir


def _copy(workdir: str, tmp_path) -> str:
  return shutil.copytree(workdir, str(tmp_path / "copy"))


def test_eval_reports_nats_per_record_per_column_and_in_total(run, tmp_path):
  path, workdir = run
  workdir = _copy(workdir, tmp_path)
  result = _cli(*_args(path, workdir, "--mode=eval"))
  assert result.returncode == 0, result.stderr
  metrics = json.load(open(os.path.join(workdir, "eval", "metrics.json")))["likelihood"]
  nats = metrics["nats_per_record"]
  columns = {name: nats[f"column:{name}"] for name in ("colour", "size", "legs", "flag")}
  assert all(np.isfinite(v) for v in columns.values())
  # each column's share of the test loss, which they sum to
  np.testing.assert_allclose(sum(columns.values()), nats["test_loss"], rtol=1e-5)
  assert nats["neg_elbo"] == pytest.approx(nats["test_loss"] + nats["rate"])
  assert metrics["dims_per_example"] == 4 and metrics["num_examples"] == 16


def test_sample_reconstruct_and_impute_write_csv_in_the_tables_units(run, tmp_path):
  path, workdir = run
  workdir = _copy(workdir, tmp_path)
  for mode in ("sample", "reconstruct"):
    result = _cli(*_args(path, workdir, f"--mode={mode}"))
    assert result.returncode == 0, (mode, result.stderr)
  samples = pd.read_csv(os.path.join(workdir, "sample", "samples.csv"))
  assert list(samples.columns) == ["colour", "size", "legs", "flag"] and len(samples) == 4
  assert set(samples["colour"]) <= {"red", "green", "blue"} and samples.notna().all().all()
  assert samples["legs"].dtype == np.int64 and samples["legs"].between(0, 44).all()
  assert set(samples["flag"]) <= {True, False}
  summary = json.load(open(os.path.join(workdir, "reconstruct", "summary.json")))
  assert {"mean_accuracy", "mean_max_abs_error_flow"} <= set(summary)
  inputs = pd.read_csv(os.path.join(workdir, "reconstruct", "inputs.csv"))
  assert (
    inputs.shape == pd.read_csv(os.path.join(workdir, "reconstruct", "reconstructions.csv")).shape
  )

  gaps = _table(40, seed=5).drop(columns="kind")
  gaps.loc[::3, "legs"] = np.nan
  gaps_path = str(tmp_path / "gaps.csv")
  gaps.to_csv(gaps_path, index=False)
  result = _cli(*_args(gaps_path, workdir, "--mode=impute"))
  assert result.returncode == 0, result.stderr
  filled = pd.read_csv(os.path.join(workdir, "impute", "imputed.csv"))
  assert filled.shape == gaps.shape and filled.notna().all().all()
  seen = gaps.notna()
  for name in gaps.columns:  # observed cells exactly as given
    assert (filled[name][seen[name]].to_numpy() == gaps[name][seen[name]].to_numpy()).all(), name
  assert filled["legs"].dtype == np.int64
  summary = json.load(open(os.path.join(workdir, "impute", "summary.json")))
  assert summary["filled_cells"] == {name: int(n) for name, n in gaps.isna().sum().items()}
  one = _table(1, seed=6).assign(size=np.nan, kind=None)  # one row; its label missing too
  one_path = str(tmp_path / "one.csv")
  one.to_csv(one_path, index=False)
  result = _cli(*_args(one_path, workdir, "--mode=impute"))
  assert result.returncode == 0, result.stderr
  filled = pd.read_csv(os.path.join(workdir, "impute", "imputed.csv"))
  assert len(filled) == 1 and np.isfinite(filled["size"][0]) and pd.isna(filled["kind"][0])
  saved = json.load(open(os.path.join(workdir, "config.json")))
  assert saved["data"]["path"] == path  # the run keeps the table it was trained on


def test_export_latents_carries_the_label_and_the_api_encodes_the_same_codes(run, tmp_path):
  path, workdir = run
  workdir = _copy(workdir, tmp_path)
  result = _cli(*_args(path, workdir, "--mode=export_latents"))
  assert result.returncode == 0, result.stderr
  test = np.load(os.path.join(workdir, "latents", "test.npz"))
  assert test["z"].shape == (16, 4) and test["label"].shape == (16,)  # eval.num_examples
  _, test_rows = tables.split(pd.read_csv(path), 0.2, sources.SPLIT_SEED)
  test_rows = test_rows.head(16)
  np.testing.assert_array_equal(test["label"], test_rows["kind"].map({"a": 0, "b": 1, "c": 2}))

  model = paramrel_jax.load(workdir)
  assert isinstance(model, paramrel_jax.api.TableModel)
  np.testing.assert_allclose(model.encode(test_rows), test["z"], rtol=1e-5, atol=1e-6)
  held_out = model.eval_data(16)  # the same rows, read back in the table's units
  assert list(held_out.columns) == list(model.schema.names) and len(held_out) == 16
  np.testing.assert_allclose(model.encode(held_out), test["z"], rtol=1e-5, atol=1e-6)
  rows = model.sample(5, seed=1)
  assert isinstance(rows, pd.DataFrame) and list(rows.columns) == list(model.schema.names)
  again = model.reconstruct(test_rows.head(4))
  assert list(again.columns) == list(model.schema.names) and len(again) == 4
  with pytest.raises(ValueError, match="must be a non-empty pandas DataFrame"):
    model.encode(np.zeros((3, 4)))
  with pytest.raises(ValueError, match=r"lacks the column\(s\) \['legs'\]"):
    model.impute(test_rows.drop(columns="legs"))
  with pytest.raises(ValueError, match="a table run gives records, not images"):
    model.to_images(np.zeros((1, 4)))


def test_a_resumed_table_run_equals_an_uninterrupted_one(tmp_path):
  path = str(tmp_path / "toy.csv")
  _table(120, seed=2).to_csv(path, index=False)
  once, twice = str(tmp_path / "once"), str(tmp_path / "twice")
  assert _cli(*_args(path, once)).returncode == 0
  half = _cli(*_args(path, twice, "--config.training.num_steps=2"))
  assert half.returncode == 0, half.stderr
  assert _cli(*_args(path, twice)).returncode == 0
  last = [open(os.path.join(w, "metrics.jsonl")).read().splitlines()[-1] for w in (once, twice)]
  loss = [json.loads(line)["loss"] for line in last]
  assert loss[0] == loss[1]
  z = [paramrel_jax.load(w).encode(_table(8, seed=9)) for w in (once, twice)]
  np.testing.assert_array_equal(z[0], z[1])


@pytest.mark.parametrize(
  "extra, table, message",
  [
    (["--config.data.columns=legs:ordinal"], None, "unknown kind 'ordinal' for column 'legs'"),
    (["--config.data.columns=colour:continuous"], None, "column 'colour' must be numeric"),
    (["--config.data.label=species"], None, "data.label='species' is not a column"),
    (["--config.data.scaling=rank"], None, "data.scaling must be one of ('range', 'quantile')"),
    ([], "empty", "is empty"),
    (["--config.flow.data_type=discrete"], None, "need flow.data_type='mixed'"),
    (["--mode=traverse"], None, "--mode=traverse draws images"),
    (["--config.model.encoder_input=theta_t"], None, "objective.encoder_mask=0.3 hides cells"),
    (["--config.model.conditioning=content_mask"], None, "places z in an image's space"),
  ],
)
def test_bad_tables_and_settings_get_one_error_line(tmp_path, extra, table, message):
  path = str(tmp_path / "toy.csv")
  if table == "empty":
    pd.DataFrame({"a": []}).to_csv(path, index=False)
  else:
    _table(30).to_csv(path, index=False)
  workdir = str(tmp_path / "run")
  _assert_one_error(_cli(*_args(path, workdir, *extra)), message)


def test_an_unseen_category_at_impute_time_is_one_error(run, tmp_path):
  path, workdir = run
  workdir = _copy(workdir, tmp_path)
  odd = _table(10, seed=7).drop(columns="kind")
  odd.loc[0, "colour"] = "purple"
  odd_path = str(tmp_path / "odd.csv")
  odd.to_csv(odd_path, index=False)
  _assert_one_error(
    _cli(*_args(odd_path, workdir, "--mode=impute")), "holds categories unseen in training"
  )
  assert not os.path.exists(os.path.join(workdir, "impute", "imputed.csv"))
