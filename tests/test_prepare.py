"""TFDS data prepared on first use: the real command line and TFDS's own builders, offline.

Only the network is replaced (tfds_archives): each download is served from an archive written here
in the dataset's real format, then TFDS extracts and writes array_record, the project's pipeline
reads it and the run trains.
"""

import io
import os
import pathlib
import socket
import subprocess
import sys

import child_patches
import numpy as np
import pytest
import tensorflow_datasets as tfds
import tfds_archives
from conftest import ROOT
from PIL import Image
from tensorflow_datasets.core.utils import lazy_imports_utils

from paramrel_jax import data
from paramrel_jax.data import prepare, sources

TRAIN_STEPS = 2


def _cli(*args, env):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **env}
  return subprocess.run(
    [sys.executable, "-m", "paramrel_jax.main", *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )


def _train_args(config: str, workdir, data_dir, *extra) -> list[str]:
  return [
    f"--config=configs/{config}.py:smoke",
    f"--workdir={workdir}",
    f"--config.data.data_dir={data_dir}",
    f"--config.training.num_steps={TRAIN_STEPS}",
    "--config.sampling.after_training=False",
    *extra,
  ]


def _cifar10_arrays(per_file: int, seed: int):
  rng = np.random.default_rng(seed)
  names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
  images = {name: rng.integers(0, 256, (per_file, 32, 32, 3), dtype=np.uint8) for name in names}
  labels = {name: rng.integers(0, 10, per_file) for name in names}
  return images, labels


def _archives(name: str, directory: pathlib.Path):
  """Writes the download archives of `name`; returns (train images, train labels) they hold."""
  directory.mkdir()
  if name == "cifar10":
    images, labels = _cifar10_arrays(per_file=4, seed=0)
    archive = tfds_archives.cifar10_archive(images, labels)
    (directory / "cifar-10-binary.tar.gz").write_bytes(archive)
    train = [f"data_batch_{i}.bin" for i in range(1, 6)]
    return np.concatenate([images[n] for n in train]), np.concatenate([labels[n] for n in train])
  # MNIST's builders read exactly 60,000 + 10,000 images.
  files, arrays = tfds_archives.mnist_files(60_000, 10_000, seed=1)
  for filename, content in files.items():
    (directory / filename).write_bytes(content)
  return arrays["train"]


def _multiset(images: np.ndarray, labels: np.ndarray) -> list:
  return sorted((int(label), image.tobytes()) for image, label in zip(images, labels, strict=True))


# config file -> TFDS name
CONFIGS = {"cifar10": "cifar10", "bmnist": "mnist", "bfashionmnist": "fashion_mnist"}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_the_run_prepares_its_tfds_data_on_first_use_and_trains(config, tmp_path):
  name = CONFIGS[config]
  images, labels = _archives(name, tmp_path / "archives")
  env = child_patches.sitecustomize_env(
    tmp_path / "site", "tfds_archives", f"install({str(tmp_path / 'archives')!r}, {name!r})"
  )
  data_dir, workdir = tmp_path / "tfds", tmp_path / "run"
  result = _cli(*_train_args(config, workdir, data_dir), env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"preparing TFDS {name!r}" in result.stderr
  # Prepared in place, nothing temporary left; TFDS's own bars showed the progress.
  assert [e for e in os.listdir(data_dir) if e.startswith(prepare.PREPARING_PREFIX)] == []
  assert prepare.is_prepared(name, str(data_dir))
  assert "Generating splits" in result.stderr
  last = (workdir / "metrics.jsonl").read_text().splitlines()[-1]
  assert f'"step": {TRAIN_STEPS}' in last

  cfg = data.DataConfig(name=name, source="tfds", data_dir=str(data_dir), download=False)
  train = sources.open_split(cfg, "train")
  assert len(train) == len(images)
  if name == "cifar10":  # the images and labels written are those read, in TFDS's order
    examples = [train[i] for i in range(len(train))]
    read = np.stack([e["image"] for e in examples]), np.array([e["label"] for e in examples])
    assert _multiset(*read) == _multiset(images, labels)
    # The same command again finds the data prepared: no preparation, and the run is finished.
    again = _cli(*_train_args(config, workdir, data_dir), env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "preparing" not in again.stderr


def _assert_one_line(result, *needles):
  assert result.returncode != 0
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
  for needle in needles:
    assert needle in lines[0], lines[0]


def test_offline_the_run_stops_after_one_probe_with_one_line(tmp_path):
  attempts = tmp_path / "attempts.txt"
  env = child_patches.sitecustomize_env(
    tmp_path / "site", "tfds_archives", f"install_offline({str(attempts)!r})"
  )
  data_dir = tmp_path / "tfds"
  result = _cli(*_train_args("cifar10", tmp_path / "run", data_dir), env=env)
  # One connection was tried, the probe's, and none by TFDS's downloader with its retries (which
  # would take minutes): counted, since a bound on the wall clock fails on a loaded machine.
  assert attempts.read_text().splitlines() == ["www.cs.toronto.edu:443"]
  _assert_one_line(
    result,
    "'cifar10'",
    "www.cs.toronto.edu cannot be reached",
    f"python -m paramrel_jax.data.prepare cifar10 --data_dir={data_dir}",
    f"copy {data_dir} here",
    "data.source=npz",
  )
  assert not data_dir.exists() or os.listdir(data_dir) == []


def test_without_download_a_missing_dataset_is_one_line(tmp_path):
  data_dir = tmp_path / "tfds"
  result = _cli(
    *_train_args("cifar10", tmp_path / "run", data_dir, "--config.data.download=False"), env={}
  )
  _assert_one_line(result, "'cifar10'", "data.download=false", "data.source=npz")


def test_celeba_names_the_files_to_place_by_hand(tmp_path):
  with pytest.raises(prepare.PrepareError) as error:
    prepare.prepare("celeb_a", str(tmp_path))
  message = str(error.value)
  manual = os.path.join(str(tmp_path), "downloads", "manual")
  assert f"in {manual}" in message
  assert all(f in message for f in prepare.MANUAL_FILES["celeb_a"])
  # The file names are those TFDS's builder looks for in its manual directory.
  registered = {info.filename for info in tfds.builder("celeb_a").url_infos.values()}
  assert registered == set(prepare.MANUAL_FILES["celeb_a"])


def test_an_interrupted_preparation_is_never_read_as_complete(tmp_path, monkeypatch):
  def interrupted(self, **kwargs):
    del kwargs
    # The builder has written part of its files when the process is interrupted.
    os.makedirs(self.data_dir, exist_ok=True)
    pathlib.Path(self.data_dir, "dataset_info.json").write_text("{}")
    raise KeyboardInterrupt

  monkeypatch.setattr(prepare, "unreachable_host", lambda urls: None)
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", interrupted)
  with pytest.raises(KeyboardInterrupt):
    prepare.prepare("cifar10", str(tmp_path))
  assert not prepare.is_prepared("cifar10", str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == []


def test_abandoned_temporary_directories_of_dead_processes_are_removed(tmp_path):
  dead = subprocess.run(
    [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
  )
  dead_pid = int(dead.stdout)
  host = socket.gethostname()
  abandoned = tmp_path / f"{prepare.PREPARING_PREFIX}cifar10-{host}-{dead_pid}-x1"
  alive = tmp_path / f"{prepare.PREPARING_PREFIX}cifar10-{host}-{os.getpid()}-x2"
  other_host = tmp_path / f"{prepare.PREPARING_PREFIX}cifar10-elsewhere-{dead_pid}-x3"
  for directory in (abandoned, alive, other_host):
    directory.mkdir()
  prepare._remove_abandoned(str(tmp_path), "cifar10")
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other_host.name])


def test_the_probe_connects_through_the_configured_proxy(monkeypatch):
  url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
  for variable in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
    monkeypatch.delenv(variable, raising=False)
  assert prepare._probe_address(url) == ("www.cs.toronto.edu", 443)
  assert prepare._probe_address("http://example.org:8080/a") == ("example.org", 8080)
  monkeypatch.setenv("https_proxy", "http://proxy.local:3128")
  assert prepare._probe_address(url) == ("proxy.local", 3128)


def test_the_tensorflow_stand_in_lasts_only_for_the_preparation():
  lazy = lazy_imports_utils.tensorflow
  assert "_module" not in vars(lazy)
  with prepare._tensorflow_stand_in():
    encoded = lazy.image.encode_png(np.full((2, 3, 1), 7, np.uint8)).numpy()
    with pytest.raises(ModuleNotFoundError, match="tensorflow.nn"):
      lazy.nn  # noqa: B018
  assert "_module" not in vars(lazy)
  with Image.open(io.BytesIO(encoded)) as png:  # lossless
    np.testing.assert_array_equal(np.asarray(png), np.full((2, 3), 7, np.uint8))


def test_a_remote_data_dir_is_not_prepared_in_place():
  with pytest.raises(prepare.PrepareError, match="gs://bucket/tfds.*only on a local disk"):
    prepare.prepare("cifar10", "gs://bucket/tfds")
