"""The command line: a smoke run, resume/no-op, and one clear error line per bad input."""

import glob
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib

import pytest
from conftest import ROOT, xla_flags

pytestmark = pytest.mark.xdist_group("main")  # one worker: the module fixture trains once


def _cli(*args, env=None, timeout=600):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
  return subprocess.run(
    [sys.executable, "-m", "paramrel_jax.main", *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


_TINY = ["--config=configs/default.py:smoke"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
  """A workdir trained once by the CLI on the default config's smoke variant (4 steps)."""
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  result = _cli(*_TINY, f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr
  # What a user sees: on stderr the progress bar and a line before and after each wait without
  # progress (the compile, once; after training the prior's fit and the sampling); on stdout one
  # line per artefact.
  lines = [line for line in result.stderr.splitlines() if line.strip() and "%|" not in line]
  waits = [
    "compiling the train step (first call; cached afterwards)",
    "fitting the latent prior to the codes of up to 2000 training images (compile included)",
    "sampling 4 images in 4 steps (compile included)",
  ]
  assert len(lines) == 2 * len(waits), lines
  for name, started, done in zip(waits, lines[0::2], lines[1::2], strict=True):
    assert started == f"{name} ...", lines
    assert re.fullmatch(rf"{re.escape(name)}: done in \d+\.\d s", done), lines
  assert result.stdout.splitlines() == [f"wrote 4 samples to {workdir}/sample/samples.png"]
  return workdir


def _copy(workdir: str, tmp_path) -> str:
  return shutil.copytree(workdir, str(tmp_path / "copy"))


def test_train_writes_config_metrics_checkpoints_and_samples(trained):
  assert os.path.exists(os.path.join(trained, "config.json"))
  last = json.loads(open(os.path.join(trained, "metrics.jsonl")).read().splitlines()[-1])
  assert last["step"] == 4 and "loss" in last and "bfn" in last
  assert sorted(os.listdir(os.path.join(trained, "checkpoints"))) == ["2", "4"]
  assert os.path.getsize(os.path.join(trained, "sample", "samples.png")) > 0  # after_training
  from PIL import Image

  from paramrel_jax.viz import plots

  with Image.open(os.path.join(trained, "curves.png")) as png:  # a panel per logged scalar
    assert png.format == "PNG" and png.size == plots.figure_size(len(last) - 1)


def test_rerun_of_a_finished_run_does_not_train(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  lines = open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()
  result = _cli(*_TINY, f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr
  assert open(os.path.join(workdir, "metrics.jsonl")).read().splitlines() == lines
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]


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


@pytest.mark.parametrize(
  "section, field, value, message",
  [
    ("TrainingConfig", "batch_size", 2.5, "training.batch_size must be a static Python int"),
    ("TrainingConfig", "num_steps", 0, "training.num_steps must be >= 1, got 0"),
    ("TrainingConfig", "learning_rate", "1e-4", "training.learning_rate must be a number > 0"),
    ("SamplingConfig", "num_samples", True, "sampling.num_samples must be a static Python int"),
    ("SamplingConfig", "traverse_range", 0.0, "sampling.traverse_range must be a number > 0"),
    ("EvalConfig", "batch_size", -8, "eval.batch_size must be >= 1, got -8"),
    ("TrainingConfig", "ema_decay", 1.0, "training.ema_decay must lie in [0, 1), got 1.0"),
    ("TrainingConfig", "grad_clip", "1", "training.grad_clip must be >= 0, got '1'"),
    ("SamplingConfig", "z_times", (0.5, 2.0), "sampling.z_times must lie in [0, 1], got 2.0"),
    ("EvalConfig", "latent_times", (-0.1,), "eval.latent_times must lie in [0, 1], got -0.1"),
    ("EvalConfig", "loss_steps", -1, "eval.loss_steps must be >= 0, got -1"),
    ("SamplingConfig", "interpolation_points", 1, "sampling.interpolation_points must be >= 2"),
    ("SamplingConfig", "interpolation_method", "cubic", "interpolation_method must be one of"),
  ],
)
def test_a_count_or_a_rate_of_the_wrong_kind_is_named(section, field, value, message):
  from paramrel_jax.config import configuration

  with pytest.raises(ValueError, match=re.escape(message)):
    getattr(configuration, section)(**{field: value})


def test_batch_not_divisible_by_devices(tmp_path):
  result = _cli(
    *_TINY,
    f"--workdir={tmp_path}",
    "--config.training.batch_size=3",
    env={"XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=2")},
  )
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


def _damage(step_dir: str, *, arrays_only: bool) -> dict[str, bytes]:
  """Overwrites every file of a step directory (or only the array data, `d/`) with garbage."""
  damaged = {}
  for dirpath, _, names in os.walk(step_dir):
    for name in names:
      path = os.path.join(dirpath, name)
      if arrays_only and os.path.basename(dirpath) != "d":
        continue
      damaged[path] = b"damaged " + name.encode()
      with open(path, "wb") as f:
        f.write(damaged[path])
  assert damaged
  return damaged


@pytest.mark.parametrize("arrays_only", [False, True])
def test_damaged_newest_checkpoint_stops_with_one_line_and_is_kept(trained, tmp_path, arrays_only):
  workdir = _copy(trained, tmp_path)
  damaged = _damage(os.path.join(workdir, "checkpoints", "4"), arrays_only=arrays_only)
  older = {
    os.path.join(d, n): open(os.path.join(d, n), "rb").read()
    for d, _, names in os.walk(os.path.join(workdir, "checkpoints", "2"))
    for n in names
  }
  for mode in ("train", "sample"):
    result = _cli(*_TINY, f"--workdir={workdir}", f"--mode={mode}", "--config.training.num_steps=6")
    _assert_one_error(
      result, "checkpoints/4 cannot be read", "resume from step 2", "left untouched"
    )
    assert "never retrieved" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  for files in (damaged, older):  # nothing was deleted or overwritten
    for path, content in files.items():
      assert open(path, "rb").read() == content, path
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]


def test_incompatible_checkpoint_is_reported_and_kept(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  result = _cli(
    *_TINY, f"--workdir={workdir}", "--config.model.latent_dim=6", "--config.training.num_steps=8"
  )
  _assert_one_error(
    result,
    "checkpoints/4 does not match this experiment",
    "latent_embedding",
    "stored float32(4, 32), expected float32(6, 32)",
  )
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no read left in flight
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  assert os.path.exists(os.path.join(workdir, "config.1.json"))  # the first config is kept


# Each config's data and flow (README, "Configs"): dataset name, image size, data type, K (bins,
# classes, or a table's columns), binarize.
CONFIGS = {
  "bmnist": ("mnist", 28, "discrete", 2, "threshold"),
  "bfashionmnist": ("fashion_mnist", 28, "discrete", 2, "threshold"),
  "cifar10": ("cifar10", 32, "discretised", 16, "none"),
  "celeba": ("celeb_a", 64, "discretised", 256, "none"),
  "shapes3d": ("shapes3d", 64, "discretised", 256, "none"),
  "default": ("shapes2d", 28, "discrete", 2, "threshold"),
  "tabular": ("penguins", 28, "mixed", 7, "none"),  # K: the columns of the bundled table
}


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_resolves_to_its_data_and_flow(name):
  """The full run and its `:smoke` variant model the same data; smoke only shrinks the budget."""
  from paramrel_jax.config import configuration

  module = importlib.import_module(f"paramrel_jax.configs.{name}")
  full, smoke = (configuration.resolve(module.get_config(v)) for v in ("", "smoke"))
  for cfg in (full, smoke):
    if cfg.flow.data_type == "mixed":
      k = len(cfg.flow.columns)
    else:
      k = cfg.flow.num_classes if cfg.flow.data_type == "discrete" else cfg.flow.num_bins
    setting = (cfg.data.name, cfg.data.image_size, cfg.flow.data_type, k, cfg.data.binarize)
    assert setting == CONFIGS[name]
  assert smoke.training.num_steps <= 10 < full.training.num_steps
  assert smoke.training.batch_size <= full.training.batch_size


@pytest.mark.parametrize(
  "data_type,binarize,expected",
  [
    ("discrete", "auto", "threshold"),
    ("discretised", "auto", "none"),
    ("continuous", "auto", "none"),
    ("discrete", "bernoulli", "bernoulli"),
    ("continuous", "threshold", "does not fit flow.data_type='continuous'"),
    ("discretised", "bernoulli", "its images are floats in [-1, 1] (binarize='none')"),
    ("discrete", "none", "its images are binarised (binarize='threshold' or 'bernoulli')"),
    ("discrete", "gray", "data.binarize must be 'auto' or one of"),
  ],
)
def test_binarize_follows_the_data_type_unless_set(data_type, binarize, expected):
  from paramrel_jax.config import configuration
  from paramrel_jax.configs import default

  config = default.get_config()
  config.flow.data_type, config.data.binarize = data_type, binarize
  if " " in expected:  # an error
    with pytest.raises(ValueError, match=re.escape(expected)):
      configuration.resolve(config)
  else:
    assert configuration.resolve(config).data.binarize == expected


@pytest.mark.parametrize("data_type,num_bins", [("discretised", 16), ("continuous", 0)])
def test_the_flow_decides_how_images_are_quantised(data_type, num_bins):
  """The data's bins come from the flow's `image_format`: a discretised flow's K, none for a
  continuous flow (whose num_bins only scores the reconstruction)."""
  from paramrel_jax.config import configuration
  from paramrel_jax.configs import default

  config = default.get_config()
  config.flow.data_type, config.flow.num_bins = data_type, 16
  assert configuration.resolve(config).data.num_bins == num_bins


def test_binarised_images_need_two_classes():
  from paramrel_jax.config import configuration
  from paramrel_jax.configs import default

  config = default.get_config()
  config.flow.num_classes = 3
  with pytest.raises(ValueError, match=re.escape("flow.num_classes=3 but binarised images")):
    configuration.resolve(config)


_LOAD_BY_PATH = """
import json, runpy, sys
print(json.dumps({p: runpy.run_path(p)["get_config"]().to_dict() for p in sys.argv[1:]}))
"""


def test_the_config_files_load_by_path_from_any_directory(tmp_path):
  """What --config=<path> does, from a directory other than the repository's, for every file."""
  from paramrel_jax.configs import base

  paths = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
  assert {os.path.basename(p)[:-3] for p in paths} == {*CONFIGS, "base"}
  out = subprocess.run(
    [sys.executable, "-c", _LOAD_BY_PATH, *paths], cwd=tmp_path, capture_output=True, text=True
  )
  assert out.returncode == 0, out.stderr
  loaded = json.loads(out.stdout)
  for path in paths:
    name = os.path.basename(path)[:-3]
    module = base if name == "base" else importlib.import_module(f"paramrel_jax.configs.{name}")
    assert loaded[path] == json.loads(json.dumps(module.get_config().to_dict()))


def test_the_fast_tier_runs_every_file_that_mutation_testing_runs():
  with open(os.path.join(ROOT, ".ci", "fast")) as f:
    fast = re.findall(r"tests/test_\w+\.py", f.read())
  assert len(fast) == len(set(fast)) and all(os.path.isfile(os.path.join(ROOT, p)) for p in fast)
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    mutmut = tomllib.load(f)["tool"]["mutmut"]
  assert set(mutmut["pytest_add_cli_args_test_selection"]) <= set(fast)


def test_ci_runs_the_readme_test_command():
  readme = open(os.path.join(ROOT, "README.md")).read()
  ci = open(os.path.join(ROOT, ".ci", "run")).read()
  test_command = [line for line in ci.splitlines() if "pytest" in line]
  assert len(test_command) == 1 and test_command[0].strip() in readme


def test_generation_modes_write_arrays_and_pngs(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  overrides = ["--config.eval.num_examples=4", "--config.eval.batch_size=4"]
  expected = {
    "sample": ["samples.npz", "samples.png"],
    "reconstruct": ["reconstruct.npz", "reconstruct.png", "time_varying.png"],
    "conditional": ["conditional.npz", "conditional.png"],
    "interpolate": ["interpolate.npz", "interpolate.png"],
    "traverse": ["traverse.npz", "traverse.png"],
  }
  trained_config = open(os.path.join(workdir, "config.json")).read()
  for mode, files in expected.items():
    result = _cli(*_TINY, f"--workdir={workdir}", f"--mode={mode}", *overrides)
    assert result.returncode == 0, (mode, result.stderr)
    assert re.search(r"\(compile included\): done in \d+\.\d s", result.stderr), result.stderr
    for name in [*files, "summary.json"]:
      assert os.path.getsize(os.path.join(workdir, mode, name)) > 0, (mode, name)
  # Only training saves its config: the run's config.json stays the one it was trained with.
  assert open(os.path.join(workdir, "config.json")).read() == trained_config
  assert not os.path.exists(os.path.join(workdir, "config.1.json"))
  import numpy as np
  from PIL import Image

  samples = np.load(os.path.join(workdir, "sample", "samples.npz"))["samples"]
  assert samples.shape == (4, 28, 28, 1)
  rec = np.load(os.path.join(workdir, "reconstruct", "reconstruct.npz"))
  assert rec["input"].shape == rec["reconstruction"].shape == (4, 28, 28, 1)
  width, height = Image.open(os.path.join(workdir, "traverse", "traverse.png")).size
  assert width >= 8 * 64 and height >= 4 * 64  # the input and 7 steps per row, a row per dim


def test_plot_latents_writes_projections_of_both_splits(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  result = _cli(*_TINY, f"--workdir={workdir}", "--mode=plot_latents")
  assert result.returncode == 0, result.stderr
  written = json.loads(result.stdout)
  from PIL import Image

  from paramrel_jax.viz import plots

  for split in ("train", "test"):
    assert os.path.exists(os.path.join(workdir, "latents", f"{split}.npz"))
    for method in ("pca", "tsne"):
      path = os.path.join(workdir, "plot_latents", f"{split}_{method}.png")
      assert written[split][method] == path
      with Image.open(path) as png:  # one panel per factor of shapes2d
        assert png.format == "PNG" and png.size == plots.figure_size(5)


def test_generation_mode_without_checkpoint_fails_cleanly(tmp_path):
  result = _cli(*_TINY, f"--workdir={tmp_path}", "--mode=sample")
  _assert_one_error(result, "no checkpoints", "train first")


def test_baseline_trains_and_exports_through_the_same_cli(tmp_path):
  workdir = str(tmp_path)
  args = [
    *_TINY,
    f"--workdir={workdir}",
    "--config.model.kind=vae",
    "--config.eval.num_examples=8",
    "--config.eval.batch_size=4",
    "--config.sampling.after_training=False",  # --mode=sample below samples
  ]
  for mode in ("train", "export_latents", "reconstruct", "sample"):
    result = _cli(*args, f"--mode={mode}")
    assert result.returncode == 0, (mode, result.stderr)
  import numpy as np

  latents = np.load(os.path.join(workdir, "latents", "test.npz"))
  assert latents["z"].shape == (8, 4) and latents["z"].dtype == np.float32
  assert "factors" in latents
  rec = np.load(os.path.join(workdir, "reconstruct", "reconstruct.npz"))
  assert rec["reconstruction"].shape == rec["input"].shape == (8, 28, 28, 1)
  _assert_one_error(_cli(*args, "--mode=traverse"), "needs a ParamReL run")


def _losses(workdir: str) -> dict[int, float]:
  """step -> loss of metrics.jsonl; a step logged again after a resume keeps its last line."""
  lines = open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()
  return {row["step"]: row["loss"] for row in map(json.loads, lines)}


def test_sigkill_then_same_command_resumes_exactly(tmp_path):
  """SIGKILL once the first checkpoint is committed; the re-run logs the uninterrupted losses."""
  args = [
    *_TINY,
    "--config.training.num_steps=30",
    "--config.training.log_every=1",
    "--config.training.checkpoint_every=2",
    "--config.sampling.after_training=False",  # the losses are compared; `trained` samples
  ]
  reference = str(tmp_path / "reference")
  assert _cli(*args, f"--workdir={reference}").returncode == 0
  killed = str(tmp_path / "killed")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.Popen(
    [sys.executable, "-m", "paramrel_jax.main", *args, f"--workdir={killed}"],
    cwd=ROOT,
    env=env,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  committed = os.path.join(killed, "checkpoints", "2", "commit_success.txt")
  deadline = time.monotonic() + 600
  while not os.path.exists(committed) and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.02)
  still_running = proc.poll() is None
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert still_running and os.path.exists(committed), "the run ended before it could be killed"
  resumed = _cli(*args, f"--workdir={killed}")
  assert resumed.returncode == 0, resumed.stderr
  want, got = _losses(reference), _losses(killed)
  assert sorted(got) == list(range(1, 31))
  from paramrel_jax.training import logging_utils

  steps, losses = logging_utils.read_curves(killed)["loss"]  # what curves.png shows
  assert list(steps) == list(range(1, 31)) and list(losses) == [got[s] for s in steps]
  assert os.path.getsize(os.path.join(killed, "curves.png")) > 0
  for step in range(3, 31):  # every step after the checkpoint it resumed from, exactly
    assert got[step] == want[step], (step, got[step], want[step])
