"""How fast the input pipeline delivers training batches to the device.

`measure` times the same path as training (`pipeline.create_train_iterator` wrapped in
`pipeline.DevicePrefetchIterator`): reading, preprocessing and batching (by grain, or gathered
in memory), then the copy onto the device mesh. Nothing else runs, so the rate is the most the
pipeline can feed a step.
"""

import time

import jax
from jax.sharding import Mesh

from paramrel_jax.data import memory, pipeline
from paramrel_jax.data.config import DataConfig


def measure(
  cfg: DataConfig,
  *,
  batch_size: int,
  num_batches: int,
  mesh: Mesh,
  warmup_batches: int = 2,
  seed: int = 0,
) -> dict[str, float]:
  """Times `num_batches` training batches of `cfg` from the source to arrays on `mesh`.

  Args:
    cfg: data settings, with the `num_workers` and `prefetch` to measure.
    batch_size: global batch size.
    num_batches: timed batches, after `warmup_batches` untimed ones (which include the worker
      start-up; that is reported apart as `first_batch_s`).
    mesh: the device mesh the batches are placed on (axis 'data').
    warmup_batches: batches before the timing starts (at least 1).
    seed: shuffling seed.

  Returns:
    {'first_batch_s': seconds to the first batch on the device, 'images_per_s' and 'batches_per_s'
    over the timed batches, 'loader': 'grain' or 'memory' (what `cfg.loader` chose),
    'num_workers': the grain worker count used (0 in memory)}.

  Raises:
    ValueError: num_batches or warmup_batches below 1, or any error of the pipeline.
  """
  if num_batches < 1 or warmup_batches < 1:
    raise ValueError(
      f"num_batches and warmup_batches must be >= 1, got {num_batches} and {warmup_batches}."
    )
  start = time.perf_counter()
  iterator = pipeline.create_train_iterator(cfg, batch_size=batch_size, seed=seed)
  in_memory = isinstance(iterator, memory.TrainIterator)
  batches = pipeline.DevicePrefetchIterator(iterator, mesh, size=cfg.prefetch)
  jax.block_until_ready(next(batches))
  first_batch_s = time.perf_counter() - start
  for _ in range(warmup_batches - 1):
    jax.block_until_ready(next(batches))
  start = time.perf_counter()
  for _ in range(num_batches):
    jax.block_until_ready(next(batches))
  seconds = time.perf_counter() - start
  return {
    "first_batch_s": first_batch_s,
    "images_per_s": num_batches * batch_size / seconds,
    "batches_per_s": num_batches / seconds,
    "loader": memory.LOADER if in_memory else "grain",
    "num_workers": 0 if in_memory else cfg.worker_count(),
  }
