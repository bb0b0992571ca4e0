"""Tests of the latent study's tables (experiments/latent_study.py): merging saved results."""

import json

import pytest

from experiments import latent_study

BUDGET = {
  "batch_size": 32,
  "ema_decay": 0.99,
  "latent_dim": 16,
  "learning_rate": 0.001,
  "num_examples": 1000,
  "size": "small",
  "steps": 1000,
}


def _row(auroc: float, seeds=(0,)) -> dict:
  """A saved mnist10k row whose runs all score `auroc`."""
  runs = [
    {
      "scores": {"auroc": {"auroc_mean": auroc}},
      "log": {
        "last": {"z_shuffle_gap": 5.0, "active_dims": 16},
        "curve": [],
        "train_seconds": 10.0,
      },
      "likelihood": {"nats_per_image": {"test_loss": 60.0, "neg_elbo": 100.0}},
    }
    for _ in seeds
  ]
  return {
    "seeds": list(seeds),
    "overrides": {},
    "runs": runs,
    "summary": latent_study.summarise(runs, "mnist10k"),
  }


def _result(hardware: str, rows: dict, budget=None) -> dict:
  return {"budget": budget or BUDGET, "hardware": hardware, "datasets": {"mnist10k": rows}}


def test_merge_takes_each_named_row_from_the_last_result_that_holds_it():
  old = _result(
    "machine A",
    {"paramrel": _row(0.975, (0, 1, 2)), "ae": _row(0.993), "paramrel_vanilla": _row(0.966)},
  )
  new = _result("machine B", {"paramrel": _row(0.987, (0, 1, 2)), "kl_1": _row(0.5)})
  out = latent_study.merged(
    [old, new], ["mnist10k", "shapes2d"], ["paramrel", "paramrel_vanilla", "ae"]
  )
  rows = out["datasets"]["mnist10k"]
  assert list(rows) == ["paramrel", "paramrel_vanilla", "ae"]  # the named rows, in that order
  assert rows["paramrel"]["runs"] == new["datasets"]["mnist10k"]["paramrel"]["runs"]
  assert rows["ae"]["runs"] == old["datasets"]["mnist10k"]["ae"]["runs"]
  assert "shapes2d" not in out["datasets"]
  assert out["hardware"] == "machine A; machine B" and out["budget"] == BUDGET
  again = latent_study.merged([out, _result("machine B", {})], ["mnist10k"], ["paramrel"])
  assert again["hardware"] == "machine A; machine B"  # a merge's machines are named once
  table = latent_study.markdown(out)
  assert "| paramrel | [0, 1, 2] | 0.987 +- 0.000 |" in table
  assert "0.975" not in table and "kl_1" not in table


def test_merge_joins_the_seeds_of_one_row_run_apart():
  first = _result("A", {"paramrel": _row(0.98, (0,))})
  second = _result("A", {"paramrel": _row(0.99, (2, 1))})
  row = latent_study.merged([second, first], ["mnist10k"], ["paramrel"])["datasets"]["mnist10k"][
    "paramrel"
  ]
  assert row["seeds"] == [0, 1, 2]
  assert [run["scores"]["auroc"]["auroc_mean"] for run in row["runs"]] == [0.98, 0.99, 0.99]
  assert row["summary"]["AUROC"]["n"] == 3
  assert abs(row["summary"]["AUROC"]["mean"] - (0.98 + 0.99 + 0.99) / 3) < 1e-12
  # other overrides (another row under the same name): replaced, not joined
  other = _result("A", {"paramrel": {**_row(0.5, (1,)), "overrides": {"x": 1}}})
  row = latent_study.merged([first, other], ["mnist10k"], ["paramrel"])["datasets"]["mnist10k"][
    "paramrel"
  ]
  assert row["seeds"] == [1] and row["overrides"] == {"x": 1}


def test_merged_tables_keep_the_column_order_of_a_saved_result():
  saved = json.loads(json.dumps(_result("A", {"ae": _row(0.993)}), sort_keys=True))
  table = latent_study.markdown(latent_study.merged([saved], ["mnist10k"], ["ae"]))
  assert "| row | seeds | AUROC | z_shuffle_gap | active dims | test loss | -ELBO |" in table


def test_merge_refuses_results_of_different_budgets():
  with pytest.raises(ValueError, match="different budgets"):
    latent_study.merged(
      [_result("A", {}), _result("A", {}, {**BUDGET, "steps": 3000})], ["mnist10k"], ["paramrel"]
    )


@pytest.mark.parametrize(
  "content, message",
  [
    (None, "cannot read"),
    ("{not json", "cannot read"),
    (json.dumps({"budget": BUDGET}), "not a latent study result"),
    (json.dumps(_result("A", {}, {**BUDGET, "steps": 3000})), "different budgets"),
  ],
)
def test_merge_of_bad_files_stops_with_one_line(tmp_path, capsys, content, message):
  good = tmp_path / "good.json"
  good.write_text(json.dumps(_result("A", {"ae": _row(0.993)})))
  bad = tmp_path / "bad.json"
  if content is not None:
    bad.write_text(content)
  out = tmp_path / "out"
  with pytest.raises(SystemExit) as stop:
    latent_study.main(["--merge", str(good), str(bad), "--out", str(out)])
  assert stop.value.code == 2
  error = capsys.readouterr().err.strip().splitlines()[-1]
  assert "error: --merge" in error
  assert message in error
  assert not out.exists()  # nothing half-written


def test_merge_writes_the_tables(tmp_path):
  paths = []
  for name, auroc in (("old", 0.975), ("new", 0.987)):
    paths.append(tmp_path / f"{name}.json")
    paths[-1].write_text(json.dumps(_result(name, {"paramrel": _row(auroc)})))
  out = tmp_path / "out"
  latent_study.main(["--merge", *map(str, paths), "--rows", "paramrel", "--out", str(out)])
  with open(out / "latent_study.json") as f:
    result = json.load(f)
  assert result["datasets"]["mnist10k"]["paramrel"]["runs"][0]["scores"]["auroc"] == {
    "auroc_mean": 0.987
  }
  assert "| paramrel | [0] | 0.987 |" in (out / "latent_study.md").read_text()
