"""The study library (`paramrel_jax.study`): one path for ParamReL rows, baselines and PCA."""

import argparse
import json
import os

import numpy as np
import pytest
from conftest import tiny_config

from paramrel_jax import api, metrics, study
from paramrel_jax.config import configuration
from paramrel_jax.evaluation import latents

pytestmark = pytest.mark.xdist_group("study")  # one worker: the module fixture trains once

# The factor AUROC needs every value of every factor in each fold: too many values for a test set
# this small; DCI and TAD exercise the scoring.
SCORES = {"dci": {"protocol": "quick", "n_estimators": 5, "n_folds": 2}, "tad": {"n_folds": 2}}
OVERRIDES = {
  "training.num_steps": 4,
  "training.log_every": 2,
  "training.checkpoint_every": 4,
  "data.num_examples": 400,
  "eval.num_examples": 40,
  "eval.batch_size": 20,
  "model.latent_dim": 4,
}


@pytest.fixture(scope="module")
def paramrel_row(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("paramrel"))
  return workdir, study.run_row(tiny_config(**OVERRIDES), workdir, SCORES)


def test_paramrel_row_has_likelihood_diagnostics_and_scores(paramrel_row):
  workdir, row = paramrel_row
  assert row["model_kind"] == "paramrel" and row["step"] == 4
  nats = row["likelihood"]["nats_per_image"]
  assert np.isfinite(nats["neg_elbo"]) and nats["neg_elbo"] >= nats["test_loss"]
  assert {"z_shuffle_gap", "active_dims", "bfn"} <= set(row["log"]["last"])
  assert row["log"]["train_seconds"] > 0
  assert set(row["scores"]) == set(SCORES)
  assert 0.0 <= row["scores"]["dci"]["disentanglement_mean"] <= 1.0
  assert row["scores"]["tad"]["split"] == "test"  # the evaluation split's codes
  json.dumps(row)  # JSON-able, as the study script caches it
  # Training again resumes the finished run: the same scores.
  again = study.run_row(tiny_config(**OVERRIDES), workdir, SCORES)
  assert again["scores"]["dci"] == row["scores"]["dci"]


def test_sample_quality_compares_samples_and_held_out_images_alike(paramrel_row, monkeypatch):
  workdir, _ = paramrel_row
  config = tiny_config(**OVERRIDES)
  quality = study.sample_quality(workdir, num_samples=20, dim=4)
  assert quality["step"] == 4 and quality["num_samples"] == 20 and quality["dim"] == 4
  assert quality["samples"] >= 0.0 and quality["held_out"] >= 0.0
  assert study.sample_quality(workdir, num_samples=20, dim=4) == quality  # seeded
  # A sampler that returns the held-out training images scores exactly the floor: samples and
  # real images go through the same model-space pixels, PCA and reference.
  resolved = configuration.resolve(config)
  held_out = latents.export_pixels(
    resolved.data, split=resolved.data.train_split, batch_size=20, num_examples=60
  )["z"][40:]
  shape = (20, resolved.data.image_size, resolved.data.image_size, -1)
  monkeypatch.setattr(
    api.LoadedModel, "generate", lambda self, n, seed=0: (held_out.reshape(shape), None)
  )
  copied = study.sample_quality(workdir, num_samples=20, dim=4)
  assert copied["samples"] == copied["held_out"] == quality["held_out"]
  with pytest.raises(ValueError, match="needs 10040 training images"):
    study.sample_quality(workdir, num_samples=10_000, dim=4)


def test_baseline_row_is_scored_by_the_same_evaluators(tmp_path):
  row = study.run_row(tiny_config(**OVERRIDES, **{"model.kind": "ae"}), str(tmp_path), SCORES)
  assert row["model_kind"] == "ae" and row["likelihood"] is None
  assert set(row["scores"]) == set(SCORES)
  codes = np.load(os.path.join(tmp_path, "latents", "test.npz"))["z"]
  assert codes.shape == (40, 4)


# The standard DCI protocol (scaled down): fitted on the first training codes, scored on the next.
STANDARD = {
  "dci": {
    "protocol": "standard",
    "split": "train",
    "num_train": 60,
    "num_test": 30,
    "n_estimators": 5,
  },
  "tad": {"n_folds": 2},
}


def _standard_dci(arrays: dict) -> dict:
  z, factors = arrays["z"], arrays["factors"]
  return metrics.dci(z[:60], factors[:60], z[60:90], factors[60:90], n_estimators=5)


def test_standard_dci_scores_training_codes_beyond_eval_num_examples(tmp_path):
  row = study.run_row(tiny_config(**OVERRIDES, **{"model.kind": "ae"}), str(tmp_path), STANDARD)
  train = latents.load_latents(os.path.join(tmp_path, "latents", "train.npz"))
  assert len(train["z"]) == 90  # more than eval.num_examples (40), as the protocol needs
  assert len(np.load(os.path.join(tmp_path, "latents", "test.npz"))["z"]) == 40
  dci = row["scores"]["dci"]
  assert dci["split"] == "train" and dci["num_examples"] == 90
  assert dci["disentanglement"] == pytest.approx(_standard_dci(train)["disentanglement"])
  assert row["scores"]["tad"]["split"] == "test"  # the other evaluators keep the test codes
  pca = study.pca_row(tiny_config(**OVERRIDES), STANDARD)["scores"]["dci"]
  assert pca["num_examples"] == 90 and pca["split"] == "train"


def test_pca_row_is_the_dci_of_an_independent_pixel_pca():
  """By value: numpy's SVD of the first eval.num_examples training images, then `metrics.dci`."""
  config = tiny_config(**OVERRIDES)
  row = study.pca_row(config, STANDARD)
  assert row["model_kind"] == "pca"
  resolved = configuration.resolve(config)
  train = latents.export_pixels(
    resolved.data, split=resolved.data.train_split, batch_size=20, num_examples=90
  )
  pixels = train["z"].reshape(90, -1).astype(np.float64)
  mean = pixels[:40].mean(0)
  _, _, vt = np.linalg.svd(pixels[:40] - mean, full_matrices=False)
  top = vt[:4] * np.sign(vt[:4][np.arange(4), np.abs(vt[:4]).argmax(1)])[:, None]  # sklearn's signs
  codes = ((pixels - mean) @ top.T).astype(np.float32)
  expected = metrics.dci(
    codes[:60], train["factors"][:60], codes[60:90], train["factors"][60:90], n_estimators=5
  )
  dci = row["scores"]["dci"]
  for key in ("disentanglement", "completeness", "informativeness_test"):
    assert dci[key] == pytest.approx(expected[key], abs=1e-9), key


def test_read_log_sums_the_logged_step_times(tmp_path):
  with open(tmp_path / "metrics.jsonl", "w") as f:
    for step, rate, extra in [(2, 1.0, {}), (4, 2.0, {"eval/auroc/auroc": 0.7})]:
      f.write(json.dumps({"step": step, "steps_per_sec": rate, "loss": 1.0, **extra}) + "\n")
  log = study.read_log(str(tmp_path))
  assert log["train_seconds"] == pytest.approx(2 / 1.0 + 2 / 2.0)
  assert log["curve"] == [{"step": 4, "eval/auroc/auroc": 0.7}]
  assert "eval/auroc/auroc" not in log["last"]


def test_a_non_latent_evaluator_is_refused():
  from paramrel_jax.config import configuration

  with pytest.raises(ValueError, match="not a latent evaluator"):
    study.scorers(configuration.resolve(tiny_config()), {"likelihood": {}})


def test_apply_overrides_sets_dotted_and_top_level_keys_and_rejects_unknown_ones():
  from paramrel_jax.configs import base

  config = study.apply_overrides(base.get_config(), {"model.latent_dim": 3, "seed": 7})
  assert (config.model.latent_dim, config.seed) == (3, 7)
  for bad in ("model.no_such_key", "no_section.key", "no_such_top_level_key"):
    with pytest.raises(ValueError, match=f"unknown config key '{bad}'"):
      study.apply_overrides(base.get_config(), {bad: 1})
  assert "CPU cores visible" in study.hardware()


def test_budget_overrides_apply_to_a_config():
  """The shared budget of the study drivers: every key exists in the config, warm-up is a tenth
  of the steps (at most 100)."""
  import argparse

  args = argparse.Namespace(
    size="tiny",
    latent_dim=3,
    steps=40,
    batch_size=8,
    learning_rate=2e-3,
    ema_decay=0.9,
    num_examples=50,
  )
  overrides = study.budget_overrides(args, log_every=4, checkpoint_every=8)
  config = study.apply_overrides(tiny_config(), overrides)
  assert config.training.warmup_steps == 4 and config.training.num_steps == 40
  assert (config.model.size, config.model.latent_dim) == ("tiny", 3)
  assert (config.training.log_every, config.training.checkpoint_every) == (4, 8)
  assert config.eval.num_examples == 50
  args.steps = 5000
  assert (
    study.budget_overrides(args, log_every=1, checkpoint_every=1)["training.warmup_steps"] == 100
  )


def test_add_budget_flags_gives_every_study_the_same_flags():
  parser = argparse.ArgumentParser()
  study.add_budget_flags(parser, steps=500)
  args = parser.parse_args(["--latent_dim", "8", "--learning_rate", "0.01"])
  expected = {**study.BUDGET_DEFAULTS, "steps": 500, "latent_dim": 8, "learning_rate": 0.01}
  assert vars(args) == expected
  overrides = study.budget_overrides(args, log_every=50, checkpoint_every=500)
  assert (overrides["training.num_steps"], overrides["model.latent_dim"]) == (500, 8)
  assert overrides["training.learning_rate"] == 0.01
  with pytest.raises(ValueError, match=r"unknown budget flag\(s\) \['epochs'\]"):
    study.add_budget_flags(argparse.ArgumentParser(), epochs=3)


def test_spread_is_the_mean_and_the_population_std_over_seeds():
  assert study.spread([1.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 2}
  assert study.spread([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}
