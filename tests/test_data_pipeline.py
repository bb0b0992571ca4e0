"""Tests of preprocessing, the grain train / eval iterators and their placement on a mesh."""

import dataclasses
import os
import re
import subprocess
import sys
import textwrap

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import xla_flags

from paramrel_jax import data
from paramrel_jax.bfn import discretised
from paramrel_jax.data import sources, transforms

NUM_EXAMPLES = 40  # npz examples; test_fraction 0.2 leaves 32 for training


@pytest.fixture(name="npz_cfg", params=["grain", "memory"])
def fixture_npz_cfg(tmp_path, request):
  """An npz dataset whose 'label' is the example id, with grey images for Bernoulli tests.

  Read by each loader, so that every test of the iterators holds for both.
  """
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (NUM_EXAMPLES, 6, 6, 1), dtype=np.uint8)
  image[:, 0, 0, 0] = 128  # a grey pixel every example has
  path = tmp_path / "ids.npz"
  np.savez(path, image=image, label=np.arange(NUM_EXAMPLES))
  return data.DataConfig(
    name="ids",
    source="npz",
    path=str(path),
    image_size=6,
    test_fraction=0.2,
    loader=request.param,
  )


def take(iterator, count):
  return [next(iterator) for _ in range(count)]


def assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b, strict=True):
    assert x.keys() == y.keys()
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


def ids(batches):
  return np.concatenate([b["label"] for b in batches]).tolist()


# Preprocessing.


def test_binarize_threshold_is_strict():
  image = np.array([0, 126, 127, 128, 255], np.uint8)
  out = transforms.binarize_threshold(image, 127)
  assert out.dtype == np.int32
  np.testing.assert_array_equal(out, [0, 0, 0, 1, 1])


def test_binarize_bernoulli_probabilities():
  image = np.array([0, 64, 191, 255], np.uint8)[:, None].repeat(20_000, axis=1)
  out = transforms.binarize_bernoulli(image, np.random.default_rng(0))
  assert out.dtype == np.int32
  np.testing.assert_allclose(out.mean(axis=1), [0.0, 64 / 255, 191 / 255, 1.0], atol=0.015)


def test_scale_endpoints():
  np.testing.assert_allclose(transforms.scale(np.array([0, 255], np.uint8)), [-1.0, 1.0])


@pytest.mark.parametrize("num_bins", [2, 5, 255, 256])
def test_quantised_pixels_are_the_nearest_bin_centres(num_bins):
  # Every uint8 pixel, scaled to [-1, 1], goes to its nearest of the K centres (2k + 1) / K - 1
  # (ties at a bin edge go up, as bins are [lower, upper)); the values are the flow's own.
  pixels = transforms.scale(np.arange(256, dtype=np.uint8))
  x = pixels.astype(np.float64)
  centres = (2 * np.arange(num_bins) + 1) / num_bins - 1
  expected = centres[np.argmin(np.abs(x[:, None] - centres[None]) - 1e-9 * centres, axis=1)]
  out = transforms.quantised_pixels(num_bins)
  assert out.dtype == np.float32 and out.shape == (256,)
  np.testing.assert_allclose(out, expected, atol=1e-6)
  np.testing.assert_array_equal(out, discretised.quantize(pixels, num_bins))


def test_preprocess_images_needs_a_generator_for_bernoulli_and_a_known_mode():
  images = np.zeros((2, 3, 3, 1), np.uint8)
  with pytest.raises(ValueError, match="random generator"):
    transforms.preprocess_images(images, binarize="bernoulli", threshold=0, num_bins=0)
  with pytest.raises(ValueError, match="binarize must be"):
    transforms.preprocess_images(images, binarize="gray", threshold=0, num_bins=0)


def test_center_crop_and_resize():
  image = np.arange(10 * 8 * 3, dtype=np.uint8).reshape(10, 8, 3)
  np.testing.assert_array_equal(transforms.center_crop(image, 4), image[3:7, 2:6])
  assert transforms.resize(image, 5).shape == (5, 5, 3)
  assert transforms.resize(image[..., :1], 16).shape == (16, 16, 1)
  with pytest.raises(ValueError, match="center_crop size 9"):
    transforms.center_crop(image, 9)


@pytest.mark.parametrize(
  "binarize,num_bins,dtype",
  [("threshold", 0, np.int32), ("bernoulli", 0, np.int32), ("none", 0, np.float32)],
)
def test_image_formats(npz_cfg, binarize, num_bins, dtype):
  cfg = dataclasses.replace(npz_cfg, binarize=binarize, num_bins=num_bins)
  image = next(data.create_train_iterator(cfg, batch_size=8, seed=0))["image"]
  assert image.dtype == dtype and image.shape == (8, 6, 6, 1)
  if dtype == np.int32:
    assert set(np.unique(image)) == {0, 1}
  else:
    assert -1.0 <= image.min() and image.max() <= 1.0


def test_quantised_images_lie_on_bin_centres(npz_cfg):
  cfg = dataclasses.replace(npz_cfg, binarize="none", num_bins=16)
  image = next(data.create_train_iterator(cfg, batch_size=8, seed=0))["image"]
  centres = ((2 * np.arange(16) + 1) / 16 - 1).astype(np.float32)
  assert set(np.unique(image)) <= set(centres.tolist())


def test_resize_to_image_size(npz_cfg):
  cfg = dataclasses.replace(npz_cfg, image_size=12)
  assert next(data.create_train_iterator(cfg, batch_size=4, seed=0))["image"].shape == (
    4,
    12,
    12,
    1,
  )
  assert data.dataset_info(cfg).image_shape == (12, 12, 1)


# Training iterator.


def test_same_seed_same_batches_and_other_seed_differs(npz_cfg):
  a = take(data.create_train_iterator(npz_cfg, batch_size=8, seed=3), 5)
  b = take(data.create_train_iterator(npz_cfg, batch_size=8, seed=3), 5)
  c = take(data.create_train_iterator(npz_cfg, batch_size=8, seed=4), 5)
  assert_batches_equal(a, b)
  assert ids(a) != ids(c)


def test_epochs_cover_the_split_and_reshuffle(npz_cfg):
  batches = take(data.create_train_iterator(npz_cfg, batch_size=8, seed=0), 8)
  first, second = ids(batches[:4]), ids(batches[4:])
  assert sorted(first) == sorted(second) and len(set(first)) == 32
  assert first != second


def test_two_shards_split_each_epoch(npz_cfg):
  shards = [
    take(data.create_train_iterator(npz_cfg, batch_size=8, seed=0, shard_index=i, shard_count=2), 4)
    for i in range(2)
  ]
  assert all(b["image"].shape[0] == 4 for s in shards for b in s)
  epoch = [ids(s) for s in shards]
  assert not set(epoch[0]) & set(epoch[1])
  whole = ids(take(data.create_train_iterator(npz_cfg, batch_size=8, seed=0), 4))
  assert sorted(epoch[0] + epoch[1]) == sorted(whole)


@pytest.mark.parametrize("binarize", ["threshold", "bernoulli"])
def test_resumed_iterator_continues_at_the_saved_position(npz_cfg, binarize):
  cfg = dataclasses.replace(npz_cfg, binarize=binarize)
  iterator = data.create_train_iterator(cfg, batch_size=8, seed=1)
  take(iterator, 3)
  state = iterator.get_state()
  assert isinstance(state, bytes)
  expected = take(iterator, 6)  # crosses an epoch boundary
  restored = data.create_train_iterator(cfg, batch_size=8, seed=1)
  restored.set_state(state)
  assert_batches_equal(take(restored, 6), expected)


def test_state_of_another_configuration_is_rejected(npz_cfg):
  iterator = data.create_train_iterator(npz_cfg, batch_size=8, seed=1)
  next(iterator)
  other = data.create_train_iterator(npz_cfg, batch_size=8, seed=2)
  with pytest.raises(ValueError, match="[Ss]ampler|seed \\(1, 2\\)"):
    other.set_state(iterator.get_state())


def test_bernoulli_is_reproducible_and_dynamic(npz_cfg):
  cfg = dataclasses.replace(npz_cfg, binarize="bernoulli")
  runs = [take(data.create_train_iterator(cfg, batch_size=32, seed=0), 8) for _ in range(2)]
  assert_batches_equal(runs[0], runs[1])
  # The grey pixel (p = 128 / 255) of the same examples, in epochs 1 .. 8.
  order = [np.argsort(b["label"]) for b in runs[0]]
  grey = np.stack([b["image"][o, 0, 0, 0] for b, o in zip(runs[0], order, strict=True)])
  assert 0.3 < grey.mean() < 0.7
  assert (grey != grey[:1]).any(axis=0).mean() > 0.9  # redrawn every epoch


# Evaluation iterator.


def test_eval_pass_is_deterministic_and_complete(npz_cfg):
  a = list(data.create_eval_iterator(npz_cfg, split="test", batch_size=3))
  b = list(data.create_eval_iterator(npz_cfg, split="test", batch_size=3))
  assert_batches_equal(a, b)
  assert len(a) == 3 and all(x["image"].shape[0] == 3 for x in a)
  mask = np.concatenate([x["mask"] for x in a])
  assert mask.dtype == np.bool_ and mask.tolist() == [True] * 8 + [False]
  labels = np.concatenate([x["label"] for x in a])[mask]
  assert len(set(labels.tolist())) == 8


def test_eval_shards_cover_each_example_once(npz_cfg):
  seen = []
  counts = []
  for shard in range(2):
    batches = list(
      data.create_eval_iterator(
        npz_cfg, split="train", batch_size=4, num_examples=23, shard_index=shard, shard_count=2
      )
    )
    counts.append(len(batches))
    seen += np.concatenate([b["label"][b["mask"]] for b in batches]).tolist()
  assert counts == [6, 6]
  whole = list(data.create_eval_iterator(npz_cfg, split="train", batch_size=4, num_examples=23))
  expected = np.concatenate([b["label"][b["mask"]] for b in whole]).tolist()
  assert len(seen) == 23 and sorted(seen) == sorted(expected)


def test_eval_bernoulli_is_fixed(npz_cfg):
  cfg = dataclasses.replace(npz_cfg, binarize="bernoulli")
  a = list(data.create_eval_iterator(cfg, split="test", batch_size=4))
  b = list(data.create_eval_iterator(cfg, split="test", batch_size=4))
  assert_batches_equal(a, b)


def test_bernoulli_pixels_are_on_with_their_intensity(npz_cfg):
  """Each pixel v is 1 with probability v / 255: dark pixels turn on and bright ones off at those
  rates (a threshold would give 0 and 1), and over all pixels the mean matches (4 sigma)."""
  cfg = dataclasses.replace(npz_cfg, binarize="bernoulli")
  with np.load(npz_cfg.path) as f:
    raw = f["image"]
  batches = list(data.create_eval_iterator(cfg, split="train", batch_size=4))
  bits = np.concatenate([b["image"][b["mask"]] for b in batches]).ravel()
  intensity = np.concatenate([raw[b["label"][b["mask"]]] for b in batches]).ravel() / 255.0
  assert set(np.unique(bits)) == {0, 1} and bits.size > 1000
  assert abs(bits.mean() - intensity.mean()) < 4 * np.sqrt(0.25 / bits.size)
  for part in (intensity < 0.4, intensity > 0.6):
    rate, expected = bits[part].mean(), intensity[part].mean()
    assert abs(rate - expected) < 4 * np.sqrt(0.25 / part.sum()), (rate, expected)


# Errors.


def test_batch_larger_than_split(npz_cfg):
  with pytest.raises(ValueError, match="batch_size 64 is larger than the 'train' split"):
    data.create_train_iterator(npz_cfg, batch_size=64, seed=0)


@pytest.mark.parametrize("create", ["train", "eval"])
def test_batch_not_divisible_by_process_count(npz_cfg, create):
  with pytest.raises(ValueError, match="batch_size 9.*process count 2"):
    if create == "train":
      data.create_train_iterator(npz_cfg, batch_size=9, seed=0, shard_index=0, shard_count=2)
    else:
      data.create_eval_iterator(npz_cfg, split="test", batch_size=9, shard_index=0, shard_count=2)


def test_bad_shard_arguments(npz_cfg):
  with pytest.raises(ValueError, match="together"):
    data.create_train_iterator(npz_cfg, batch_size=8, seed=0, shard_index=0)
  with pytest.raises(ValueError, match="shard_index < shard_count"):
    data.create_train_iterator(npz_cfg, batch_size=8, seed=0, shard_index=2, shard_count=2)


def test_bad_seed(npz_cfg):
  with pytest.raises(ValueError, match="seed"):
    data.create_train_iterator(npz_cfg, batch_size=8, seed=-1)


def test_eval_num_examples_out_of_range(npz_cfg):
  with pytest.raises(ValueError, match="num_examples 9 must lie in \\[1, 8\\]"):
    data.create_eval_iterator(npz_cfg, split="test", batch_size=4, num_examples=9)


# Placement on a mesh.


def one_device_mesh():
  return jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))


def test_make_global_batch_single_process(npz_cfg):
  batch = next(data.create_train_iterator(npz_cfg, batch_size=8, seed=0))
  mesh = one_device_mesh()
  placed = data.make_global_batch(batch, mesh)
  assert placed.keys() == batch.keys()
  for key, value in placed.items():
    assert isinstance(value, jax.Array) and value.sharding.spec == jax.sharding.PartitionSpec(
      "data"
    )
    np.testing.assert_array_equal(np.asarray(value), batch[key])
  with pytest.raises(ValueError, match="leading size"):
    data.make_global_batch({"a": np.zeros(2), "b": np.zeros(3)}, mesh)
  with pytest.raises(ValueError, match="'model'"):
    data.make_global_batch(batch, mesh, axis="model")


def test_prefetch_state_is_the_consumed_position(npz_cfg):
  mesh = one_device_mesh()
  host = data.create_train_iterator(npz_cfg, batch_size=8, seed=0)
  prefetched = data.DevicePrefetchIterator(host, mesh, size=2)
  take(prefetched, 3)
  state = prefetched.get_state()
  expected = [{k: np.asarray(v) for k, v in b.items()} for b in take(prefetched, 3)]
  reference = data.create_train_iterator(npz_cfg, batch_size=8, seed=0)
  assert_batches_equal(take(reference, 6)[3:], expected)
  restored = data.DevicePrefetchIterator(
    data.create_train_iterator(npz_cfg, batch_size=8, seed=0), mesh, size=2
  )
  restored.set_state(state)
  got = [{k: np.asarray(v) for k, v in b.items()} for b in take(restored, 3)]
  assert_batches_equal(got, expected)


def test_prefetch_drains_a_finite_iterator(npz_cfg):
  host = data.create_eval_iterator(npz_cfg, split="test", batch_size=3)
  batches = list(data.DevicePrefetchIterator(host, one_device_mesh(), size=2))
  expected = list(data.create_eval_iterator(npz_cfg, split="test", batch_size=3))
  assert_batches_equal([{k: np.asarray(v) for k, v in b.items()} for b in batches], expected)


def test_global_batch_on_four_simulated_devices(npz_cfg):
  script = textwrap.dedent(
    f"""
    import jax, numpy as np
    from jax.sharding import Mesh
    from paramrel_jax import data
    cfg = data.DataConfig(name="ids", source="npz", path={npz_cfg.path!r}, image_size=6,
                          test_fraction=0.2)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    assert mesh.shape["data"] == 4
    host = data.create_train_iterator(cfg, batch_size=8, seed=0)
    batch = next(data.DevicePrefetchIterator(host, mesh, size=1))
    assert batch["image"].shape == (8, 6, 6, 1)
    assert len(batch["image"].addressable_shards) == 4
    assert {{s.data.shape[0] for s in batch["label"].addressable_shards}} == {{2}}
    try:
      data.make_global_batch({{"x": np.zeros(6)}}, mesh)
    except ValueError as error:
      assert "not divisible by the 4 devices" in str(error)
    else:
      raise AssertionError("no error for a batch of 6 on 4 devices")
    print("ok")
    """
  )
  env = {
    **os.environ,
    "XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=4"),
    "JAX_PLATFORMS": "cpu",
  }
  result = subprocess.run(
    [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip().endswith("ok")


@pytest.mark.parametrize(
  "overrides",
  [
    dict(binarize="threshold"),
    dict(binarize="none"),
    dict(binarize="none", num_bins=16),
    dict(binarize="none", num_bins=256),  # a lookup table of the 256 uint8 values
    dict(binarize="threshold", image_size=12),  # a PIL resize, done once when loaded
  ],
)
def test_memory_loader_preprocesses_as_grain_does(npz_cfg, overrides):
  """The same rows give the same model inputs: the evaluation passes of both loaders are equal."""
  passes = [
    list(
      data.create_eval_iterator(
        dataclasses.replace(npz_cfg, loader=loader, **overrides), split="train", batch_size=5
      )
    )
    for loader in ("grain", "memory")
  ]
  assert_batches_equal(*passes)


def test_memory_loader_reads_a_split_once_for_every_preprocessing(npz_cfg):
  from paramrel_jax.data import memory

  arrays, _ = memory.load_split(npz_cfg, "train")
  for other in (
    dataclasses.replace(npz_cfg, loader="auto", binarize="none", num_bins=8, prefetch=0),
    dataclasses.replace(npz_cfg, threshold=3, eval_split="train"),
  ):
    assert memory.load_split(other, "train")[0] is arrays


def test_a_state_moves_every_shard(npz_cfg):
  """The trainer saves process 0's in-memory state; every process resumes from it (multi-host;
  tests/test_multihost.py runs it end to end)."""
  cfg = dataclasses.replace(npz_cfg, loader="memory")

  def shard(i):
    return data.create_train_iterator(cfg, batch_size=8, seed=0, shard_index=i, shard_count=2)

  first, second = shard(0), shard(1)
  take(first, 3)
  expected = take(second, 6)[3:]
  resumed = shard(1)
  resumed.set_state(first.get_state())
  assert_batches_equal(take(resumed, 3), expected)


def test_memory_train_batches_gather_preprocessed_rows(npz_cfg):
  """Each training batch holds the preprocessed source rows of its ids, with the same dtypes."""
  cfg = dataclasses.replace(npz_cfg, loader="memory", binarize="none", num_bins=8)
  source = sources.open_split(cfg, "train")
  by_id = {int(e["label"]): e["image"] for e in (source[i] for i in range(len(source)))}
  for batch in take(data.create_train_iterator(cfg, batch_size=8, seed=5), 6):
    expected = [discretised.quantize(transforms.scale(by_id[i]), 8) for i in batch["label"]]
    np.testing.assert_array_equal(batch["image"], np.stack(expected))
    assert batch["image"].dtype == np.float32 and batch["label"].dtype == np.int32


def test_iterator_state_in_an_orbax_checkpoint(npz_cfg, tmp_path):
  def prefetched():
    host = data.create_train_iterator(npz_cfg, batch_size=8, seed=0)
    return data.DevicePrefetchIterator(host, one_device_mesh(), size=2)

  iterator = prefetched()
  take(iterator, 3)
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
  expected = np.asarray(next(iterator)["label"])
  restored = prefetched()
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
  np.testing.assert_array_equal(np.asarray(next(restored)["label"]), expected)


def test_auto_workers_leave_one_core_and_are_capped(monkeypatch):
  from paramrel_jax.data.config import MAX_AUTO_WORKERS, auto_workers

  assert [auto_workers(n) for n in (1, 2, 4, 17, 18)] == [0, 1, 3, 16, 16]
  assert auto_workers(1000) == MAX_AUTO_WORKERS == 16
  for cores, workers in ((1, 0), (2, 1), (8, 7), (64, 16)):  # this host's cores, as os reports
    monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
    assert data.DataConfig(num_workers=-1).worker_count() == workers
  assert data.DataConfig(num_workers=3).worker_count() == 3


def test_throughput_measures_the_training_path_with_worker_processes():
  """Also from plain Python, where grain's absl flags were never parsed (no absl.app)."""
  from paramrel_jax.data import throughput
  from paramrel_jax.training import train

  cfg = data.DataConfig(
    name="shapes2d", image_size=16, num_examples=128, loader="grain", num_workers=1
  )
  result = throughput.measure(cfg, batch_size=8, num_batches=3, mesh=train.make_mesh())
  assert (result["loader"], result["num_workers"]) == ("grain", 1)
  in_memory = throughput.measure(
    dataclasses.replace(cfg, loader="auto"), batch_size=8, num_batches=3, mesh=train.make_mesh()
  )
  assert (in_memory["loader"], in_memory["num_workers"]) == ("memory", 0)
  assert result["images_per_s"] == pytest.approx(8 * result["batches_per_s"])
  assert result["images_per_s"] > 0 and result["first_batch_s"] > 0
  with pytest.raises(ValueError, match="num_batches"):
    throughput.measure(cfg, batch_size=8, num_batches=0, mesh=train.make_mesh())


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("image_size", 0, "DataConfig.image_size must be >= 1, got 0"),
    ("image_size", 32.0, "DataConfig.image_size must be a static Python int, got 32.0"),
    ("num_examples", 1, "DataConfig.num_examples must be >= 2, got 1"),
    ("threshold", 255, "DataConfig.threshold must lie in [0, 254], got 255"),
    ("prefetch", -1, "DataConfig.prefetch must be >= 0, got -1"),
  ],
)
def test_a_bad_data_setting_is_named(field, value, message):
  with pytest.raises(ValueError, match="^" + re.escape(message)):
    data.DataConfig(name="mnist", **{field: value})
