"""Typed settings of the input pipeline (the `data` section of the config)."""

from __future__ import annotations

import dataclasses
import os

from paramrel_jax.bfn import checks
from paramrel_jax.data.tables import SCALINGS, TableSchema

SOURCES = ("generated", "tfds", "npz", "csv")
# grain workers that num_workers = -1 ('auto') never exceeds: more mostly add start-up time and
# memory (experiments/BENCHMARKS.md, "Input pipeline").
MAX_AUTO_WORKERS = 16
BINARIZE_MODES = ("threshold", "bernoulli", "none")
LOADERS = ("auto", "grain", "memory")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where images or table records come from and how they are preprocessed.

  Attributes:
    name: dataset name: a key of `paramrel_jax.data.generated.GENERATED` (source 'generated'),
      of `paramrel_jax.data.sources.TFDS_DATASETS` (source 'tfds'), or a free label ('npz',
      'csv').
    source: 'generated' | 'tfds' | 'npz' | 'csv' (a table of records, CSV or Parquet).
    path: the .npz file for source 'npz', the .csv / .parquet table for source 'csv' (relative
      paths resolve from the working directory).
    columns: source 'csv': 'name:kind,...' overrides of the inferred column kinds
      (`tables.parse_kinds`).
    label: source 'csv': a column kept out of the model as the label of probes ('' for none).
    scaling: source 'csv': how continuous columns map to [-1, 1] (`tables.SCALINGS`): 'range'
      (linear from the training range) or 'quantile' (through the empirical CDF).
    schema: source 'csv': the run's table schema (`tables.TableSchema`), set by
      `configuration.resolve` (fitted on the training split, or the one saved with the run);
      None otherwise.
    data_dir: TFDS data directory holding prepared array_record data ('' = TFDS default).
    download: source 'tfds': prepare a dataset missing under `data_dir` on first use (download
      and write array_record, `paramrel_jax.data.prepare`); false: a missing one is an error.
    image_size: H = W of the images fed to the model; other sizes are resized.
    binarize: 'threshold' (pixel > `threshold` -> 1), 'bernoulli' (pixel ~ Bernoulli(v / 255),
      resampled every epoch) or 'none' (float32 in [-1, 1]). A config's 'auto' is resolved
      from flow.data_type before this is built (`configuration.resolve`).
    threshold: fixed binarisation threshold on uint8 pixels, in [0, 254].
    num_bins: K > 1 quantises float images to the K bin centres (2k + 1) / K - 1 (discretised
      data); 0 keeps them continuous. Only with binarize == 'none'.
    num_examples: size of a generated dataset (train + test).
    test_fraction: held-out fraction of npz / generated data, in (0, 1).
    train_split: split used for training (TFDS split string; 'train' / 'test' otherwise).
    eval_split: split used for evaluation.
    loader: 'grain' (grain reads and transforms each example, in `num_workers` processes),
      'memory' (the split is read once and held in memory; each batch is one vectorised gather,
      see `paramrel_jax.data.memory`) or 'auto' ('memory' where the split fits
      `memory.fits`, else 'grain').
    num_workers: grain worker processes (0: read and transform in the main process; -1: auto,
      see `auto_workers`); loader 'grain' only.
    prefetch: batches placed on the device ahead of use (0: none).
  """

  name: str = "shapes2d"
  source: str = "generated"
  path: str = ""
  columns: str = ""
  label: str = ""
  scaling: str = "range"
  schema: TableSchema | None = None
  data_dir: str = ""
  download: bool = True
  image_size: int = 28
  binarize: str = "threshold"
  threshold: int = 127
  num_bins: int = 0
  num_examples: int = 20_000
  test_fraction: float = 0.1
  train_split: str = "train"
  eval_split: str = "test"
  loader: str = "auto"
  num_workers: int = 0
  prefetch: int = 2

  def __post_init__(self):
    if not self.name:
      raise ValueError("DataConfig.name must be a non-empty dataset name.")
    checks.check_choice("DataConfig.source", self.source, SOURCES)
    if self.source == "npz" and not self.path:
      raise ValueError("DataConfig.path must name an .npz file when source='npz'.")
    if self.source == "csv" and not self.path:
      raise ValueError("DataConfig.path must name a .csv or .parquet table when source='csv'.")
    if self.source != "csv" and (self.columns or self.label or self.scaling != "range"):
      raise ValueError(
        f"DataConfig.columns, label and scaling describe tables (source='csv'); this run's "
        f"source is {self.source!r}."
      )
    checks.check_choice("DataConfig.scaling", self.scaling, SCALINGS)
    checks.check_static_int("DataConfig.image_size", self.image_size, 1)
    checks.check_choice("DataConfig.binarize", self.binarize, BINARIZE_MODES)
    checks.check_range("DataConfig.threshold", self.threshold, 0, 254)
    if self.num_bins < 0 or self.num_bins == 1:
      raise ValueError(f"DataConfig.num_bins must be 0 or at least 2, got {self.num_bins}.")
    if self.num_bins and self.binarize != "none":
      raise ValueError(
        f"DataConfig.num_bins={self.num_bins} quantises float images and needs "
        f"binarize='none', got binarize={self.binarize!r}."
      )
    checks.check_static_int("DataConfig.num_examples", self.num_examples, 2)
    if not 0.0 < self.test_fraction < 1.0:
      raise ValueError(f"DataConfig.test_fraction must lie in (0, 1), got {self.test_fraction}.")
    if not self.train_split or not self.eval_split:
      raise ValueError("DataConfig.train_split and DataConfig.eval_split must be non-empty.")
    checks.check_choice("DataConfig.loader", self.loader, LOADERS)
    if self.num_workers < -1:
      raise ValueError(
        f"DataConfig.num_workers must be >= 0, or -1 for auto, got {self.num_workers}."
      )
    checks.check_range("DataConfig.prefetch", self.prefetch, 0)

  def worker_count(self) -> int:
    """grain worker processes to start: `num_workers`, or `auto_workers()` for -1."""
    return auto_workers() if self.num_workers == -1 else self.num_workers


def auto_workers(cpu_count: int | None = None) -> int:
  """Worker processes for num_workers = -1: all cores but one, at most MAX_AUTO_WORKERS.

  One core stays with the training process, which dispatches the steps and copies the batches
  to the device; a single-core host reads in-process (0).
  """
  cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
  return max(0, min(cores - 1, MAX_AUTO_WORKERS))
