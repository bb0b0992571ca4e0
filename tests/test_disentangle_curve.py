"""experiments/disentangle_curve.py: DCI logged in training, then tabulated against steps."""

import json

from experiments import disentangle_curve


def test_curve_logs_dci_in_training_and_tabulates_it(tmp_path):
  workdir, out = str(tmp_path / "run"), str(tmp_path / "out")
  disentangle_curve.main(
    [
      "--image_size",
      "16",
      "--num_bins",
      "4",
      "--steps",
      "4",
      "--every",
      "2",
      "--num_examples",
      "100",
      "--latent_dim",
      "4",
      "--workdir",
      workdir,
    ]
  )
  with open(f"{workdir}/config.json") as f:
    config = json.load(f)
  assert config["data"]["image_size"] == 16 and config["flow"]["num_bins"] == 4
  assert config["eval"]["num_examples"] == 100 and config["training"]["num_steps"] == 4
  assert config["model"]["encoder_pool"] == "flatten"  # the default row, pool_flatten
  disentangle_curve.main(["--workdir", workdir, "--report", "--out", out, "--row", "paramrel"])
  with open(f"{out}/disentangle_curve.json") as f:
    assert json.load(f)["config"]["row"] == "pool_flatten"  # the trained row, not the flag
  with open(f"{out}/disentangle_curve.json") as f:
    curve = json.load(f)["curve"]
  assert [row["step"] for row in curve] == [2, 4]
  with open(f"{workdir}/metrics.jsonl") as f:
    logged = [json.loads(line) for line in f]
  for row, record in zip(curve, logged, strict=True):
    assert row["disentanglement"] == record["eval/dci/disentanglement"]
    assert 0.0 <= row["informativeness_test"] <= 1.0
  with open(f"{out}/disentangle_curve.md") as f:
    assert "| 4 |" in f.read()
