"""In-memory input pipelines: a whole split held as arrays, each batch gathered by one index.

grain spends about 0.6 ms of Python per example (experiments/BENCHMARKS.md, "Input pipeline"),
which caps a host at a few thousand images/s per core: far below what an accelerator consumes on
28x28 or 32x32 data. For a split that fits in memory, this module reads and resizes every example
once (`load_split`: one in-order grain pass in the config's workers, or one gather for arrays
already at the model's size), keeps the uint8 images at the model's size, and then builds each
batch with one vectorised gather and `transforms.preprocess_images`, the elementwise
preprocessing, in the training process and without workers.

The iterators match the grain ones in what they yield (`pipeline` module docstring) and in their
contract: `get_state() -> bytes` (a small JSON document) and `set_state(bytes)`; a training
iterator is an endless stream in which every epoch is a fresh permutation of the split drawn from
the seed, and process `shard_index` of `shard_count` takes every shard_count-th example of it.
Their example order is their own (a NumPy permutation per epoch), not grain's.
"""

import abc
import dataclasses
import functools
import json
import os
from collections.abc import Iterator

import grain
import jax
import numpy as np

from paramrel_jax.data import grain_workers, sources, transforms
from paramrel_jax.data.config import DataConfig

Batch = dict[str, np.ndarray]
# Holds a split in memory under loader 'auto' when its uint8 images at the model size take at
# most this many bytes (CIFAR-10 train: 150 MB; shapes3d: 5.9 GB, read by grain).
AUTO_LIMIT_BYTES = 2 << 30
LOADER = "memory"
# Examples per batch of the one reading pass.
READ_BATCH = 256


def fits(cfg: DataConfig, source: sources.ArraySource | sources.TfdsSource) -> bool:
  """Whether loader 'auto' holds `source` in memory: its uint8 images at the model's size take
  at most AUTO_LIMIT_BYTES. A table always does."""
  if isinstance(source, sources.TableSource):
    return True
  channels = source.meta.native_shape[-1]
  return len(source) * cfg.image_size**2 * channels <= AUTO_LIMIT_BYTES


def load_split(cfg: DataConfig, split: str) -> tuple[dict[str, np.ndarray], str]:
  """Every example of `split` with its geometry done: uint8 images (N, S, S, C) and annotations.

  Cached (the train and the evaluation split of the last configuration, and the .npz file's
  modification time), so repeated evaluation passes read the data once.

  Returns:
    (arrays, description): the source's keys as stacked arrays, and the source's repr.

  Raises:
    ValueError: as `sources.open_split`.
  """
  stamp = os.stat(cfg.path).st_mtime_ns if cfg.source == "npz" and os.path.isfile(cfg.path) else 0
  # The cache key keeps only what decides the arrays (and the reading workers): a resumed run's
  # train iterator ('memory') and its evaluations ('auto', other binarisation) share one copy.
  source_cfg = dataclasses.replace(
    cfg,
    loader=LOADER,
    binarize="none",
    threshold=0,
    num_bins=0,
    train_split="train",
    eval_split="test",
    prefetch=0,
  )
  return _load_split(source_cfg, split, stamp)


@functools.lru_cache(maxsize=2)
def _load_split(cfg: DataConfig, split: str, stamp: int) -> tuple[dict[str, np.ndarray], str]:
  del stamp  # Part of the cache key only.
  source = sources.open_split(cfg, split)
  if isinstance(source, sources.TableSource):
    return source.columns(), repr(source)
  geometry = transforms.geometry_op(
    image_size=cfg.image_size, native_shape=source.meta.native_shape, crop=source.meta.crop
  )
  if isinstance(source, sources.ArraySource) and geometry is None:
    return source.columns(), repr(source)
  # Decoding (TFDS) and resizing cost milliseconds per image: read once, in order, in the
  # config's grain workers.
  loader = grain.DataLoader(
    data_source=source,
    sampler=grain.samplers.IndexSampler(len(source), shuffle=False, num_epochs=1),
    operations=[
      *([geometry] if geometry else []),
      grain.transforms.Batch(batch_size=READ_BATCH, drop_remainder=False),
    ],
    worker_count=grain_workers.worker_count(cfg),
  )
  parts = list(loader)
  return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}, repr(source)


class _MemoryIterator(Iterator[Batch]):
  """Batches of rows of in-memory arrays; subclasses say which rows the j-th batch holds."""

  def __init__(
    self,
    cfg: DataConfig,
    split: str,
    *,
    local_batch_size: int,
    seed: int,
    shard_index: int,
    shard_count: int,
  ):
    self._arrays, description = load_split(cfg, split)
    self._num_rows = len(jax.tree.leaves(self._arrays)[0])  # images, or a table's columns
    self._cfg = cfg
    self._batch_size, self._seed = local_batch_size, seed
    self._shard_index, self._shard_count = shard_index, shard_count
    self._position = 0  # batches returned so far
    # What a saved state must match. Not the shard: all processes advance in lockstep, so the
    # state one process saves (the trainer keeps process 0's) moves every process.
    self._identity = {
      "loader": LOADER,
      "source": description,
      "batch_size": local_batch_size,
      "seed": seed,
      "binarize": cfg.binarize,
    }

  @abc.abstractmethod
  def _rows(self, position: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(row indices (B,), mask (B,) or None) of batch `position`; StopIteration past the end."""

  def __next__(self) -> Batch:
    rows, mask = self._rows(self._position)
    batch = jax.tree.map(lambda column: column[rows], self._arrays)
    cfg = self._cfg
    if "image" in batch:  # a table's records are in flow space already
      rng = (
        np.random.default_rng([self._seed, self._shard_index, self._position])
        if cfg.binarize == "bernoulli"
        else None
      )
      batch["image"] = transforms.preprocess_images(
        batch["image"],
        binarize=cfg.binarize,
        threshold=cfg.threshold,
        num_bins=cfg.num_bins,
        rng=rng,
      )
    if mask is not None:
      batch["mask"] = mask
    self._position += 1
    return batch

  def get_state(self) -> bytes:
    """The position after the last returned batch, with what identifies this iterator."""
    return json.dumps({**self._identity, "position": self._position}, sort_keys=True).encode()

  def set_state(self, state: bytes) -> None:
    """Moves to a position saved by an iterator of the same configuration.

    Raises:
      ValueError: bytes that are not such a state, or the state of another configuration.
    """
    try:
      saved = dict(json.loads(state))
    except (ValueError, TypeError) as error:
      raise ValueError(f"not an in-memory data-iterator state: {state[:80]!r}.") from error
    position = saved.pop("position", None)
    differ = {
      key: (saved.get(key), value)
      for key, value in self._identity.items()
      if saved.get(key) != value
    }
    if differ or not isinstance(position, int) or position < 0:
      raise ValueError(
        "the data-iterator state was saved by another configuration; (saved, here): "
        + ", ".join(f"{key} {pair}" for key, pair in differ.items())
        + ("" if isinstance(position, int) and position >= 0 else f", position {position!r}")
        + "."
      )
    self._position = position

  def start_prefetch(self) -> None:
    """Nothing to start: the data are in memory (grain's iterators start their workers here)."""


class TrainIterator(_MemoryIterator):
  """An endless stream of shuffled training batches (`pipeline.create_train_iterator`)."""

  def __init__(self, cfg: DataConfig, split: str, **kwargs):
    super().__init__(cfg, split, **kwargs)
    self._permutations: dict[int, np.ndarray] = {}  # the epochs of the last batch

  def _rows(self, position: int) -> tuple[np.ndarray, None]:
    # Positions of this process's examples in the global stream, whose epoch e is the
    # permutation drawn from (seed, e).
    local = position * self._batch_size + np.arange(self._batch_size)
    stream = self._shard_index + self._shard_count * local
    epochs, within = np.divmod(stream, self._num_rows)
    self._permutations = {
      epoch: self._permutations.get(epoch)
      if epoch in self._permutations
      else np.random.default_rng([self._seed, epoch]).permutation(self._num_rows)
      for epoch in np.unique(epochs).tolist()
    }
    rows = np.empty_like(stream)
    for epoch, permutation in self._permutations.items():
      here = epochs == epoch
      rows[here] = permutation[within[here]]
    return rows, None


class EvalIterator(_MemoryIterator):
  """One pass over fixed rows with a 'mask' (`pipeline.create_eval_iterator`)."""

  def __init__(self, cfg: DataConfig, split: str, rows: np.ndarray, num_real: int, **kwargs):
    super().__init__(cfg, split, **kwargs)
    self._eval_rows, self._num_real = rows, num_real

  def _rows(self, position: int) -> tuple[np.ndarray, np.ndarray]:
    start = position * self._batch_size
    if start >= len(self._eval_rows):
      raise StopIteration
    index = np.arange(start, start + self._batch_size)
    return self._eval_rows[index], index < self._num_real
