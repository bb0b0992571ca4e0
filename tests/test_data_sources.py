"""Tests of the data sources: TFDS (under tfds.testing.mock_data), npz files, generated sets."""

import dataclasses
import os
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from paramrel_jax import data
from paramrel_jax.data import sources, transforms
from paramrel_jax.data.generated import GENERATED

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST10K_RELATIVE = "../shared/data/mnist10k.npz"  # from the project root
MOCK_EXAMPLES = 8


def mock_tfds():
  """TFDS mocked without files: every split holds MOCK_EXAMPLES random examples.

  `mock_data` patches `DatasetBuilder.as_data_source` (and the ArrayRecordDataSource it builds),
  so `tfds.data_source` returns random examples with the real feature structure. Split slicing
  such as 'train[:75%]' is accepted but ignored.
  """
  return tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE)


# name -> (config overrides, expected image shape, annotation keys)
TFDS_CASES = {
  "mnist": (dict(binarize="threshold"), (28, 28, 1), {"label"}),
  "binarized_mnist": (dict(binarize="threshold"), (28, 28, 1), set()),
  "fashion_mnist": (dict(binarize="bernoulli", image_size=32), (32, 32, 1), {"label"}),
  "cifar10": (dict(binarize="none", num_bins=256, image_size=32), (32, 32, 3), {"label"}),
  "celeb_a": (dict(binarize="none", image_size=64), (64, 64, 3), {"attributes"}),
  "shapes3d": (
    dict(binarize="none", image_size=64, train_split="train[:90%]", eval_split="train[90%:]"),
    (64, 64, 3),
    {"factors"},
  ),
}


@pytest.mark.parametrize("loader", ["grain", "memory"])
@pytest.mark.parametrize("name", sorted(TFDS_CASES))
def test_tfds_dataset_through_pipeline(name, loader):
  overrides, image_shape, keys = TFDS_CASES[name]
  cfg = data.DataConfig(name=name, source="tfds", loader=loader, **overrides)
  with mock_tfds():
    info = data.dataset_info(cfg)
    batch = next(data.create_train_iterator(cfg, batch_size=4, seed=0))
  assert info.image_shape == image_shape
  assert (info.num_train, info.num_eval) == (MOCK_EXAMPLES, MOCK_EXAMPLES)
  assert set(batch) == {"image"} | keys
  image = batch["image"]
  assert image.shape == (4, *image_shape)
  if cfg.binarize == "none":
    assert image.dtype == np.float32
    assert -1.0 <= image.min() < image.max() <= 1.0
  else:
    assert image.dtype == np.int32
    assert set(np.unique(image)) <= {0, 1}
  if cfg.num_bins:
    k = (image + 1.0) * cfg.num_bins / 2.0 - 0.5  # bin index of a bin centre
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)
  assert info.has_label == ("label" in keys)
  if "label" in keys:
    assert info.num_label_classes == 10
    assert batch["label"].dtype == np.int32 and batch["label"].shape == (4,)
    assert ((0 <= batch["label"]) & (batch["label"] < 10)).all()
  if "attributes" in keys:
    assert info.attribute_names == tuple(sources.CELEBA_ATTRIBUTES)
    assert len(info.attribute_names) == 40
    assert batch["attributes"].dtype == np.int32 and batch["attributes"].shape == (4, 40)
    assert set(np.unique(batch["attributes"])) <= {0, 1}
  if "factors" in keys:
    assert info.factor_names == (
      "floor_hue",
      "wall_hue",
      "object_hue",
      "scale",
      "shape",
      "orientation",
    )
    factors = batch["factors"]
    assert factors.dtype == np.int32 and factors.shape == (4, 6)
    assert ((0 <= factors) & (factors < np.array(info.factor_sizes))).all()


def test_auto_loader_holds_in_memory_what_fits(monkeypatch):
  """'auto' holds a split in memory when its images at the model's size fit AUTO_LIMIT_BYTES."""
  from paramrel_jax.data import memory

  with mock_tfds():
    for name, (overrides, _, _) in TFDS_CASES.items():  # 8 mock examples each
      cfg = data.DataConfig(name=name, source="tfds", **overrides)
      assert memory.fits(cfg, sources.open_split(cfg, cfg.train_split))
    cfg = data.DataConfig(name="shapes3d", source="tfds", binarize="none", image_size=64)
    monkeypatch.setattr(memory, "AUTO_LIMIT_BYTES", MOCK_EXAMPLES * 64 * 64 * 3 - 1)
    assert not memory.fits(cfg, sources.open_split(cfg, "train"))  # 480,000 real images: 5.9 GB
  generated = data.DataConfig(image_size=16, num_examples=128)
  assert memory.fits(generated, sources.open_split(generated, "train"))


@pytest.mark.parametrize("workers", [0, 1])
def test_memory_loader_reads_tfds_with_crop_and_resize_in_workers(workers):
  """The one reading pass (grain, in order, in the config's workers) gives grain's examples."""
  cfg = data.DataConfig(
    name="celeb_a", source="tfds", binarize="none", image_size=16, num_workers=workers
  )
  with mock_tfds():
    passes = [
      list(
        data.create_eval_iterator(
          dataclasses.replace(cfg, loader=loader), split="test", batch_size=3
        )
      )
      for loader in ("grain", "memory")
    ]
  for a, b in zip(*passes, strict=True):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_binarized_mnist_keeps_stored_binary_pixels():
  # Stored {0, 1} pixels map to {0, 255}: 'threshold' and 'none' then agree on the digit.
  meta = sources.TFDS_DATASETS["binarized_mnist"]
  stored = np.array([[[0], [1]], [[1], [0]]], np.uint8)
  image = sources._standardise_tfds({"image": stored}, meta)["image"]
  np.testing.assert_array_equal(image, 255 * stored)


def test_celeb_a_crop_then_resize():
  cfg = data.DataConfig(name="celeb_a", source="tfds", binarize="none", image_size=32)
  with mock_tfds():
    batch = next(data.create_eval_iterator(cfg, split="test", batch_size=2))
    raw = sources.open_split(cfg, "test")[0]["image"]
  crop = raw[35:183, 15:163]  # the central 148 x 148 of 218 x 178
  expected = np.asarray(transforms.resize(crop, 32), np.float32) / 127.5 - 1.0
  np.testing.assert_allclose(batch["image"][0], expected, atol=1e-6)


def test_unknown_tfds_name_lists_known():
  cfg = data.DataConfig(name="imagenet", source="tfds")
  with pytest.raises(ValueError, match="imagenet.*known.*cifar10"):
    data.dataset_info(cfg)


def test_missing_tfds_data_without_download_names_the_ways_out(tmp_path):
  cfg = data.DataConfig(name="mnist", source="tfds", data_dir=str(tmp_path), download=False)
  with pytest.raises(ValueError) as error:
    data.create_train_iterator(cfg, batch_size=4, seed=0)
  message = str(error.value)
  assert f"python -m paramrel_jax.data.prepare mnist --data_dir={tmp_path}" in message
  assert "data.download=false" in message and "data.source=npz" in message


def write_npz(path, num_examples=20, **overrides):
  rng = np.random.default_rng(0)
  arrays = {
    "image": rng.integers(0, 256, (num_examples, 8, 8, 1), dtype=np.uint8),
    "label": np.arange(num_examples) % 3,
    "factors": np.stack([np.arange(num_examples) % 4, np.arange(num_examples) % 5], axis=1),
  }
  arrays.update(overrides)
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
  return str(path)


def test_npz_split_and_info(tmp_path):
  path = write_npz(tmp_path / "small.npz", label=np.arange(20))
  cfg = data.DataConfig(name="small", source="npz", path=path, test_fraction=0.25, image_size=8)
  info = data.dataset_info(cfg)
  assert (info.num_train, info.num_eval) == (15, 5)
  assert info.image_shape == (8, 8, 1)
  assert (info.has_label, info.num_label_classes) == (True, 20)
  assert info.factor_names == ("factor_0", "factor_1") and info.factor_sizes == (4, 5)
  train = [sources.open_split(cfg, "train")[i]["label"] for i in range(15)]
  test = [sources.open_split(cfg, "test")[i]["label"] for i in range(5)]
  assert sorted(train + test) == list(range(20))
  again = [sources.open_split(cfg, "test")[i]["label"] for i in range(5)]
  assert test == again  # the split is fixed


def test_npz_example_layout(tmp_path):
  path = write_npz(tmp_path / "small.npz")
  cfg = data.DataConfig(name="small", source="npz", path=path, image_size=8, binarize="none")
  batch = next(data.create_train_iterator(cfg, batch_size=6, seed=0))
  assert set(batch) == {"image", "label", "factors"}
  assert batch["image"].dtype == np.float32 and batch["image"].shape == (6, 8, 8, 1)
  assert batch["label"].dtype == np.int32 and batch["factors"].dtype == np.int32
  assert batch["factors"].shape == (6, 2)


NPZ_ERRORS = {
  "no_image": (dict(image=None), "'image'"),
  "unknown_key": (dict(extra=np.zeros(20)), "extra"),
  "float_image": (dict(image=np.zeros((20, 8, 8, 1), np.float32)), "uint8"),
  "image_shape": (dict(image=np.zeros((20, 8, 8), np.uint8)), r"\(N >= 2, H, W, C\)"),
  "label_rows": (dict(label=np.zeros(19, np.int64)), "'label'.*20 rows"),
  "label_negative": (dict(label=-np.ones(20, np.int64)), "'label' values"),
  "label_float": (dict(label=np.zeros(20, np.float32)), "'label' must hold integers"),
  "attributes_range": (dict(attributes=np.full((20, 3), 2)), "'attributes' values"),
  "factors_ndim": (dict(factors=np.zeros(20, np.int64)), "'factors' must have 2"),
}


@pytest.mark.parametrize("case", sorted(NPZ_ERRORS))
def test_npz_errors(tmp_path, case):
  overrides, pattern = NPZ_ERRORS[case]
  path = write_npz(tmp_path / f"{case}.npz", **overrides)
  cfg = data.DataConfig(name="bad", source="npz", path=path)
  with pytest.raises(ValueError, match=pattern):
    data.dataset_info(cfg)


def test_npz_missing_file(tmp_path):
  cfg = data.DataConfig(name="absent", source="npz", path=str(tmp_path / "absent.npz"))
  with pytest.raises(ValueError, match="DataConfig.path.*absent.npz"):
    data.dataset_info(cfg)


def test_npz_unknown_split(tmp_path):
  cfg = data.DataConfig(name="small", source="npz", path=write_npz(tmp_path / "s.npz"))
  with pytest.raises(ValueError, match="'validation'.*'train', 'test'"):
    data.create_eval_iterator(cfg, split="validation", batch_size=2)


@pytest.mark.skipif(
  not (REPO / MNIST10K_RELATIVE).is_file(), reason="shared mnist10k.npz is absent"
)
def test_shared_mnist10k(monkeypatch):
  monkeypatch.chdir(REPO)
  cfg = data.DataConfig(name="mnist10k", source="npz", path=MNIST10K_RELATIVE)
  info = data.dataset_info(cfg)
  assert (info.num_train, info.num_eval) == (9000, 1000)
  assert info.image_shape == (28, 28, 1)
  assert (info.has_label, info.num_label_classes) == (True, 10)
  batch = next(data.create_train_iterator(cfg, batch_size=32, seed=0))
  assert batch["image"].dtype == np.int32 and batch["image"].shape == (32, 28, 28, 1)
  ink = batch["image"].mean()
  assert 0.05 < ink < 0.35  # digits: mostly background, some strokes
  assert batch["label"].dtype == np.int32


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_dataset_through_pipeline(name):
  spec = GENERATED[name][1]
  cfg = data.DataConfig(name=name, num_examples=100, image_size=32, binarize="none")
  info = data.dataset_info(cfg)
  assert (info.num_train, info.num_eval) == (90, 10)
  assert info.factor_names == spec.names and info.factor_sizes == spec.sizes
  assert not info.has_label and info.attribute_names == ()
  batch = next(data.create_train_iterator(cfg, batch_size=8, seed=0))
  assert set(batch) == {"image", "factors"}
  assert batch["image"].shape == (8, *info.image_shape)
  assert batch["image"].dtype == np.float32
  assert batch["factors"].shape == (8, len(spec.names))
  assert ((0 <= batch["factors"]) & (batch["factors"] < np.array(spec.sizes))).all()


def test_generated_data_is_fixed():
  cfg = data.DataConfig(name="shapes2d", num_examples=50, image_size=16)
  a = sources.open_split(cfg, "test")[0]
  sources._generate.cache_clear()
  b = sources.open_split(cfg, "test")[0]
  np.testing.assert_array_equal(a["image"], b["image"])
  np.testing.assert_array_equal(a["factors"], b["factors"])


def test_unknown_generated_name_lists_known():
  with pytest.raises(ValueError, match="'dsprites'.*known.*shapes2d"):
    data.dataset_info(data.DataConfig(name="dsprites"))


CONFIG_ERRORS = {
  "source": dict(source="hdf5"),
  "path": dict(source="npz", path=""),
  "image_size": dict(image_size=0),
  "binarize": dict(binarize="otsu"),
  "threshold": dict(threshold=255),
  "num_bins": dict(num_bins=1),
  "num_examples": dict(num_examples=1),
  "test_fraction": dict(test_fraction=1.0),
  "num_workers": dict(num_workers=-2),
  "prefetch": dict(prefetch=-1),
}


@pytest.mark.parametrize("field", sorted(CONFIG_ERRORS))
def test_config_errors_name_the_field(field):
  with pytest.raises(ValueError, match=f"DataConfig.{field}"):
    data.DataConfig(**CONFIG_ERRORS[field])


def test_config_num_bins_needs_float_images():
  with pytest.raises(ValueError, match="num_bins.*binarize='none'"):
    data.DataConfig(num_bins=256, binarize="threshold")


def test_relative_npz_path_resolves_from_cwd(tmp_path, monkeypatch):
  write_npz(tmp_path / "rel.npz")
  monkeypatch.chdir(tmp_path)
  cfg = data.DataConfig(name="rel", source="npz", path=os.path.join(".", "rel.npz"))
  assert data.dataset_info(cfg).num_train == 18
