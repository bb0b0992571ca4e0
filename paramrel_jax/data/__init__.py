"""Datasets and input pipelines (grain, or in memory where a split fits).

`DataConfig` says where images come from (TFDS, a local .npz file, or a generated set of
`paramrel_jax.data.generated`) and how they are preprocessed, or which table of records
(`tables`: CSV or Parquet) to read; `create_train_iterator` /
`create_eval_iterator` yield per-process batches of numpy arrays, `make_global_batch` and
`DevicePrefetchIterator` place them on a device mesh, `dataset_info` describes the data.
"""

from paramrel_jax.data.config import DataConfig
from paramrel_jax.data.pipeline import (
  DevicePrefetchIterator,
  config_for_state,
  create_eval_iterator,
  create_train_iterator,
  make_global_batch,
)
from paramrel_jax.data.sources import TFDS_DATASETS, DatasetInfo, dataset_info

__all__ = [
  "TFDS_DATASETS",
  "DataConfig",
  "DatasetInfo",
  "DevicePrefetchIterator",
  "config_for_state",
  "create_eval_iterator",
  "create_train_iterator",
  "dataset_info",
  "make_global_batch",
]
