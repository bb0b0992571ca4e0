"""The command line: a smoke run, resume/no-op, and one clear error line per bad input."""

import importlib
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT


def _cli(*args, env=None, timeout=600):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
  return subprocess.run([sys.executable, "-m", "paramrel_jax.main", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


_TINY = ["--config=configs/default.py:smoke"]


def test_train_then_rerun_is_a_no_op(tmp_path):
  workdir = str(tmp_path / "run")
  first = _cli(*_TINY, f"--workdir={workdir}")
  assert first.returncode == 0, first.stderr
  assert os.path.exists(os.path.join(workdir, "config.json"))
  lines = open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()
  assert json.loads(lines[-1])["step"] == 4 and "loss" in json.loads(lines[-1])
  checkpoints = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  second = _cli(*_TINY, f"--workdir={workdir}")
  assert second.returncode == 0, second.stderr
  assert open(os.path.join(workdir, "metrics.jsonl")).read().splitlines() == lines
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == checkpoints


def _assert_one_error(result, *needles):
  assert result.returncode != 0
  text = result.stderr
  assert "Traceback" not in text, text
  for needle in needles:
    assert needle in text, text


def test_missing_config_file(tmp_path):
  result = _cli("--config=configs/does_not_exist.py", f"--workdir={tmp_path}")
  _assert_one_error(result, "does_not_exist.py")


def test_unknown_override_key(tmp_path):
  result = _cli(*_TINY, f"--workdir={tmp_path}", "--config.training.batch_sise=3")
  _assert_one_error(result, "batch_sise")


def test_bad_config_value_names_the_field(tmp_path):
  result = _cli(*_TINY, f"--workdir={tmp_path}", "--config.training.ema_decay=1.5")
  _assert_one_error(result, "training.ema_decay")


def test_batch_not_divisible_by_devices(tmp_path):
  result = _cli(*_TINY, f"--workdir={tmp_path}", "--config.training.batch_size=3",
                env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
  _assert_one_error(result, "batch_size=3", "2 devices")


def test_workdir_not_writable(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  result = _cli(*_TINY, f"--workdir={blocker}/run")
  _assert_one_error(result, "--workdir")


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path):
  step_dir = tmp_path / "checkpoints" / "2"
  step_dir.mkdir(parents=True)
  (step_dir / "garbage").write_text("not a checkpoint")
  result = _cli(*_TINY, f"--workdir={tmp_path}")
  _assert_one_error(result, "checkpoint", "checkpoints/2")
  assert (step_dir / "garbage").read_text() == "not a checkpoint"


def test_incompatible_checkpoint_is_reported_and_kept(tmp_path):
  assert _cli(*_TINY, f"--workdir={tmp_path}").returncode == 0
  before = sorted(os.listdir(tmp_path / "checkpoints"))
  result = _cli(*_TINY, f"--workdir={tmp_path}", "--config.model.latent_dim=6",
                "--config.training.num_steps=8")
  _assert_one_error(result, "checkpoint")
  assert sorted(os.listdir(tmp_path / "checkpoints")) == before
  assert os.path.exists(tmp_path / "config.1.json")  # the first run's config is kept


@pytest.mark.parametrize("name", ["bmnist", "bfashionmnist", "cifar10", "celeba", "shapes3d",
                                  "default"])
def test_every_config_resolves(name):
  from paramrel_jax import configuration

  module = importlib.import_module(f"configs.{name}")
  for variant in ("", "smoke"):
    cfg = configuration.resolve(module.get_config(variant))
    assert cfg.training.batch_size > 0


def test_ci_runs_the_readme_test_command():
  readme = open(os.path.join(ROOT, "README.md")).read()
  ci = open(os.path.join(ROOT, ".ci", "run")).read()
  test_command = [line for line in ci.splitlines() if "pytest" in line]
  assert len(test_command) == 1 and test_command[0].strip() in readme


def test_generation_modes_write_arrays_and_pngs(tmp_path):
  workdir = str(tmp_path)
  overrides = ["--config.eval.num_examples=4", "--config.eval.batch_size=4"]
  assert _cli(*_TINY, f"--workdir={workdir}").returncode == 0
  expected = {
      "sample": ["samples.npz", "samples.png"],
      "reconstruct": ["reconstruct.npz", "reconstruct.png", "time_varying.png"],
      "conditional": ["conditional.npz", "conditional.png"],
      "interpolate": ["interpolate.npz", "interpolate.png"],
      "traverse": ["traverse.npz", "traverse.png"],
  }
  for mode, files in expected.items():
    result = _cli(*_TINY, f"--workdir={workdir}", f"--mode={mode}", *overrides)
    assert result.returncode == 0, (mode, result.stderr)
    for name in [*files, "summary.json"]:
      assert os.path.getsize(os.path.join(workdir, mode, name)) > 0, (mode, name)
  import numpy as np
  from PIL import Image

  samples = np.load(os.path.join(workdir, "sample", "samples.npz"))["samples"]
  assert samples.shape == (4, 28, 28, 1)
  rec = np.load(os.path.join(workdir, "reconstruct", "reconstruct.npz"))
  assert rec["input"].shape == rec["reconstruction"].shape == (4, 28, 28, 1)
  width, height = Image.open(os.path.join(workdir, "traverse", "traverse.png")).size
  assert width >= 7 * 64 and height >= 4 * 64  # 7 steps per row, one row per latent dim


def test_generation_mode_without_checkpoint_fails_cleanly(tmp_path):
  result = _cli(*_TINY, f"--workdir={tmp_path}", "--mode=sample")
  _assert_one_error(result, "no checkpoints", "train first")
