"""Input pipelines: sharded, batched, resumable iterators and their placement on a mesh.

Batches are dicts of numpy arrays with a leading per-process batch axis B = global batch /
process count:

  'image'       int32 {0, 1} (B, S, S, C) when DataConfig.binarize != 'none', else float32 in
                [-1, 1] (B, S, S, C), on the K bin centres when DataConfig.num_bins = K > 0;
  'record'      a table's records instead of images (source 'csv'): {column: (B, 1)}, float32
                (NaN missing) or int32 classes (-1 missing), always read in memory;
  'label', 'attributes', 'factors'   where the dataset has them (see `sources`);
  'mask'        bool (B,), evaluation batches only: False on padding rows.

`DataConfig.loader` picks how: grain `DataLoaderIterator`s, which read and transform example by
example (in worker processes if asked), or the in-memory iterators of `memory`, which gather each
batch from the whole preprocessed split at once ('auto': in memory where it fits). Both have
`get_state() -> bytes` (a small JSON document) and `set_state(bytes)`, which move a fresh iterator
of the same configuration to the saved position; the trainer stores that state per process in
its Orbax checkpoint, and `config_for_state` gives the configuration a saved state needs.
`DevicePrefetchIterator` has the same methods.
"""

import collections
import dataclasses
import json
import math
from collections.abc import Iterator

import grain
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from paramrel_jax.data import grain_workers, memory, sources, transforms
from paramrel_jax.data.config import DataConfig

Batch = dict[str, np.ndarray]
DataIterator = grain.DataLoaderIterator | memory.TrainIterator | memory.EvalIterator
# Seed of the per-example random transformations (Bernoulli binarisation) of evaluation passes.
EVAL_SEED = 0


def _shard(shard_index: int | None, shard_count: int | None) -> tuple[int, int]:
  """(index, count) of this process's data shard; defaults to the JAX process."""
  if (shard_index is None) != (shard_count is None):
    raise ValueError("shard_index and shard_count must be given together or not at all.")
  if shard_index is None:
    return jax.process_index(), jax.process_count()
  if shard_count < 1 or not 0 <= shard_index < shard_count:
    raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index}, {shard_count}.")
  return shard_index, shard_count


def _local_batch_size(batch_size: int, shard_count: int) -> int:
  if batch_size < 1 or batch_size % shard_count:
    raise ValueError(
      f"batch_size {batch_size} (global) must be a positive multiple of the process count "
      f"{shard_count}."
    )
  return batch_size // shard_count


def config_for_state(cfg: DataConfig, state: bytes) -> DataConfig:
  """`cfg` with the loader (and grain worker count) that a saved train iterator state needs.

  The loaders order the examples differently, and grain refuses a state of another worker count
  although its batch order does not depend on it; a resumed run therefore reads as it started,
  whatever `cfg` now asks (e.g. num_workers=-1 on a host of other cores, or a run saved before
  the in-memory loader existed).

  Raises:
    ValueError: bytes that are not the state of either loader.
  """
  try:
    saved = json.loads(state)
    if saved.get("loader") == memory.LOADER:
      return dataclasses.replace(cfg, loader=memory.LOADER)
    return dataclasses.replace(cfg, loader="grain", num_workers=int(saved["worker_count"]))
  except (ValueError, KeyError, TypeError, AttributeError) as error:
    raise ValueError(
      f"not a data-loader state ({type(error).__name__}: {error}); it was saved by neither "
      "grain nor the in-memory loader."
    ) from error


def _in_memory(cfg: DataConfig, source: sources.ArraySource | sources.TfdsSource) -> bool:
  if isinstance(source, sources.TableSource):  # tables are read in memory, whatever the loader
    return True
  if cfg.loader == "auto":
    return memory.fits(cfg, source)
  return cfg.loader == memory.LOADER


def _operations(
  cfg: DataConfig, source: sources.ArraySource | sources.TfdsSource, local_batch_size: int
) -> list[grain.transforms.Map | grain.transforms.RandomMap | grain.transforms.Batch]:
  ops = transforms.preprocess_ops(
    binarize=cfg.binarize,
    threshold=cfg.threshold,
    num_bins=cfg.num_bins,
    image_size=cfg.image_size,
    native_shape=source.meta.native_shape,
    crop=source.meta.crop,
  )
  return [*ops, grain.transforms.Batch(batch_size=local_batch_size, drop_remainder=True)]


def create_train_iterator(
  cfg: DataConfig,
  *,
  batch_size: int,
  seed: int,
  shard_index: int | None = None,
  shard_count: int | None = None,
) -> DataIterator:
  """An endless iterator of training batches, reshuffled every epoch.

  One global order of the examples is drawn per epoch from `seed`; process `shard_index` of
  `shard_count` takes every shard_count-th example of it, so within an epoch the processes see
  disjoint examples. Each batch holds batch_size / shard_count examples.

  Args:
    cfg: data settings (reads `cfg.train_split`).
    batch_size: global batch size, a multiple of shard_count and at most the split size.
    seed: shuffling and Bernoulli-binarisation seed in [0, 2**32).
    shard_index: this process's shard (default: jax.process_index()).
    shard_count: number of shards (default: jax.process_count()).

  Returns:
    An iterator of batch dicts (module docstring) with get_state / set_state: grain's or
    `memory.TrainIterator`, as `cfg.loader` says.

  Raises:
    ValueError: bad sharding, batch size or seed, or any error of `sources.open_split`.
  """
  shard_index, shard_count = _shard(shard_index, shard_count)
  local_batch_size = _local_batch_size(batch_size, shard_count)
  if not 0 <= seed < 2**32:
    raise ValueError(f"seed must lie in [0, 2**32), got {seed}.")
  source = sources.open_split(cfg, cfg.train_split)
  if batch_size > len(source):
    raise ValueError(
      f"batch_size {batch_size} is larger than the {cfg.train_split!r} split of {cfg.name!r} "
      f"({len(source)} examples)."
    )
  if _in_memory(cfg, source):
    return memory.TrainIterator(
      cfg,
      cfg.train_split,
      local_batch_size=local_batch_size,
      seed=seed,
      shard_index=shard_index,
      shard_count=shard_count,
    )
  loader = grain.DataLoader(
    data_source=source,
    sampler=grain.samplers.IndexSampler(len(source), shuffle=True, num_epochs=None, seed=seed),
    operations=_operations(cfg, source, local_batch_size),
    worker_count=grain_workers.worker_count(cfg),
    shard_options=grain.sharding.ShardOptions(shard_index, shard_count, drop_remainder=True),
  )
  return iter(loader)


class _EvalSource:
  """Rows `indices` of a source, each marked with 'mask' = (position < num_real)."""

  def __init__(
    self, source: sources.ArraySource | sources.TfdsSource, indices: np.ndarray, num_real: int
  ):
    self._source, self._indices, self._num_real = source, indices, num_real

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> sources.Example:
    example = self._source[int(self._indices[index])]
    return {**example, "mask": np.bool_(index < self._num_real)}

  def __repr__(self) -> str:
    return f"EvalSource({self._source!r}, size={len(self)}, real={self._num_real})"


def create_eval_iterator(
  cfg: DataConfig,
  *,
  split: str,
  batch_size: int,
  num_examples: int | None = None,
  shard_index: int | None = None,
  shard_count: int | None = None,
) -> DataIterator:
  """One deterministic pass over the first `num_examples` examples of `split`.

  Process `shard_index` of `shard_count` takes examples shard_index, shard_index + shard_count,
  ... in split order. Every process yields the same number of full batches of
  batch_size / shard_count rows; rows past its share repeat example 0 and carry 'mask' False, so
  the examples with 'mask' True over all processes are each example exactly once and every batch
  has the same shape (one compilation, valid global arrays on a mesh).

  Args:
    cfg: data settings.
    split: split to read (e.g. `cfg.eval_split`).
    batch_size: global batch size, a multiple of shard_count.
    num_examples: examples to cover (default: the whole split).
    shard_index: this process's shard (default: jax.process_index()).
    shard_count: number of shards (default: jax.process_count()).

  Returns:
    A finite iterator of batch dicts with a 'mask' bool (B,) entry: grain's or
    `memory.EvalIterator`, as `cfg.loader` says.

  Raises:
    ValueError: bad sharding or batch size, num_examples outside [1, split size], or any error
      of `sources.open_split`.
  """
  shard_index, shard_count = _shard(shard_index, shard_count)
  local_batch_size = _local_batch_size(batch_size, shard_count)
  source = sources.open_split(cfg, split)
  num_examples = len(source) if num_examples is None else num_examples
  if not 1 <= num_examples <= len(source):
    raise ValueError(
      f"num_examples {num_examples} must lie in [1, {len(source)}] for split {split!r}."
    )
  own = np.arange(shard_index, num_examples, shard_count)
  num_batches = math.ceil(math.ceil(num_examples / shard_count) / local_batch_size)
  padding = np.zeros(num_batches * local_batch_size - len(own), own.dtype)
  if _in_memory(cfg, source):
    return memory.EvalIterator(
      cfg,
      split,
      np.concatenate([own, padding]),
      len(own),
      local_batch_size=local_batch_size,
      seed=EVAL_SEED,
      shard_index=shard_index,
      shard_count=shard_count,
    )
  eval_source = _EvalSource(source, np.concatenate([own, padding]), len(own))
  loader = grain.DataLoader(
    data_source=eval_source,
    sampler=grain.samplers.IndexSampler(len(eval_source), num_epochs=1, seed=EVAL_SEED),
    operations=_operations(cfg, source, local_batch_size),
    worker_count=grain_workers.worker_count(cfg),
    shard_options=grain.sharding.NoSharding(),
  )
  return iter(loader)


def _axis_size(mesh: Mesh, axis: str | tuple[str, ...]) -> int:
  names = (axis,) if isinstance(axis, str) else axis
  unknown = [name for name in names if name not in mesh.shape]
  if unknown:
    raise ValueError(f"mesh axes {unknown} not in the mesh axes {tuple(mesh.shape)}.")
  return math.prod(mesh.shape[name] for name in names)


def make_global_batch(
  batch: Batch, mesh: Mesh, axis: str | tuple[str, ...] = "data"
) -> dict[str, jax.Array]:
  """Assembles the per-process batches of all processes into global arrays on `mesh`.

  Args:
    batch: this process's batch, arrays with a common leading axis of size B.
    mesh: device mesh.
    axis: mesh axis (or axes) the batch axis is split over.

  Returns:
    The same keys as global jax.Arrays of leading size B * process count, sharded as
    NamedSharding(mesh, PartitionSpec(axis)).

  Raises:
    ValueError: unequal leading sizes, or a global batch the axis size does not divide.
  """
  sizes = {
    jax.tree_util.keystr(path): np.shape(value)[0]
    for path, value in jax.tree_util.tree_leaves_with_path(batch)
  }
  if len(set(sizes.values())) != 1:
    raise ValueError(f"batch arrays differ in leading size: {sizes}.")
  global_size = next(iter(sizes.values())) * jax.process_count()
  axis_size = _axis_size(mesh, axis)
  if global_size % axis_size:
    raise ValueError(
      f"global batch size {global_size} is not divisible by the {axis_size} devices of mesh "
      f"axis {axis!r}."
    )
  sharding = NamedSharding(mesh, PartitionSpec(axis))
  return jax.tree.map(
    lambda value: jax.make_array_from_process_local_data(sharding, np.asarray(value)), batch
  )


class DevicePrefetchIterator(Iterator[dict[str, jax.Array]]):
  """Places the next `size` batches of a data iterator on the mesh ahead of their use.

  Transfers are asynchronous, so the host-to-device copies of upcoming batches overlap the
  computation on the current one. `get_state()` is the state of the underlying iterator just after
  the last batch *returned* (not the ones waiting in the buffer), so a checkpoint taken between
  steps resumes at the next unseen batch.
  """

  def __init__(
    self,
    iterator: DataIterator,
    mesh: Mesh,
    *,
    size: int,
    axis: str | tuple[str, ...] = "data",
  ):
    """Wraps `iterator`.

    Args:
      iterator: an iterator of per-process batches (e.g. `create_train_iterator`).
      mesh: device mesh.
      size: batches kept on the device ahead of use (e.g. DataConfig.prefetch; 0: none).
      axis: mesh axis (or axes) the batch axis is split over.
    """
    if size < 0:
      raise ValueError(f"prefetch size must be >= 0, got {size}.")
    self._iterator, self._mesh, self._size, self._axis = iterator, mesh, size, axis
    self._buffer: collections.deque[tuple[bytes, dict[str, jax.Array]]] = collections.deque()
    self._state = iterator.get_state()

  def __next__(self) -> dict[str, jax.Array]:
    while len(self._buffer) <= self._size:
      try:
        batch = next(self._iterator)
      except StopIteration:
        break
      self._buffer.append(
        (self._iterator.get_state(), make_global_batch(batch, self._mesh, self._axis))
      )
    if not self._buffer:
      raise StopIteration
    self._state, batch = self._buffer.popleft()
    return batch

  def get_state(self) -> bytes:
    """The underlying iterator's state after the last returned batch."""
    return self._state

  def set_state(self, state: bytes) -> None:
    """Drops the buffered batches and moves the underlying iterator to `state`."""
    self._buffer.clear()
    self._iterator.set_state(state)
    self._state = state

  def start_prefetch(self) -> None:
    """Starts the underlying iterator's reading (grain starts its workers here)."""
    self._iterator.start_prefetch()
