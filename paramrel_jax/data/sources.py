"""Random-access example sources: TFDS array_record data, local .npz files, generated arrays,
and tables of records (CSV / Parquet).

Every source is a grain random-access data source (`__len__`, `__getitem__`, a stable `__repr__`
that grain stores in the iterator state) whose examples share one layout:

  'image'       uint8 (H, W, C) in 0..255 at the dataset's native size;
  'label'       int32 () class index                  (mnist, fashion_mnist, cifar10, npz 'label');
  'attributes'  int32 (A,) in {0, 1}                  (celeb_a: the 40 CelebA attributes);
  'factors'     int32 (F,) ground-truth factor indices (shapes3d, generated sets, npz 'factors').
A table's examples hold 'record' instead of 'image': {column name: (1,)} in flow space
(`tables.TableSchema.encode`), and 'label' where `DataConfig.label` names a column.

TFDS data are read with `tfds.data_source` (array_record, no TensorFlow). A dataset missing under
`DataConfig.data_dir` is prepared there on first use when `DataConfig.download` is true
(`paramrel_jax.data.prepare`); otherwise, or offline, opening it fails with one line that says
how to prepare it elsewhere. Local and generated data are split into
'train' and 'test' by a fixed permutation (seed `SPLIT_SEED`) and `DataConfig.test_fraction`.
"""

import contextlib
import dataclasses
import functools
import logging
import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from paramrel_jax.data import prepare, tables
from paramrel_jax.data.config import DataConfig
from paramrel_jax.data.generated import GENERATED

Example = dict[str, Any]

# Seed of the generated datasets: every process draws the same arrays.
GENERATED_SEED = 1234
# Seed of the fixed train/test permutation of npz and generated data.
SPLIT_SEED = 0
LOCAL_SPLITS = ("train", "test")
NPZ_KEYS = ("image", "label", "attributes", "factors")

# The 40 binary CelebA attributes in the order of the dataset's list_attr_celeba.txt.
CELEBA_ATTRIBUTES = (
  "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
  "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
  "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
  "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
  "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
# CelebA 64x64 protocol: the 148 x 148 centre crop of the aligned 218 x 178 faces, then a resize
# (the crop of the common VAE setups; DiffAE-style pipelines crop 128 x 128 around (89, 121)).
CELEBA_CROP = 148


@dataclasses.dataclass(frozen=True)
class SourceMeta:
  """What a source holds besides images.

  Attributes:
    native_shape: (H, W, C) of the stored images; (columns,) of a table's records.
    num_label_classes: number of classes of 'label' (0: no label).
    attribute_names: names of the 'attributes' entries (empty: none).
    factor_names: names of the 'factors' entries (empty: none).
    factor_sizes: number of values of each factor.
    crop: centre crop applied before resizing (0: none).
    binary: TFDS only: images are stored as {0, 1} and are mapped to {0, 255}.
  """

  native_shape: tuple[int, int, int]
  num_label_classes: int = 0
  attribute_names: tuple[str, ...] = ()
  factor_names: tuple[str, ...] = ()
  factor_sizes: tuple[int, ...] = ()
  crop: int = 0
  binary: bool = False


# The paper's TFDS datasets. shapes3d has a single 'train' split (480,000 images): hold data out
# with TFDS slicing, e.g. train_split='train[:90%]', eval_split='train[90%:]'.
TFDS_DATASETS: dict[str, SourceMeta] = {
  "mnist": SourceMeta(native_shape=(28, 28, 1), num_label_classes=10),
  "binarized_mnist": SourceMeta(native_shape=(28, 28, 1), binary=True),
  "fashion_mnist": SourceMeta(native_shape=(28, 28, 1), num_label_classes=10),
  "cifar10": SourceMeta(native_shape=(32, 32, 3), num_label_classes=10),
  "celeb_a": SourceMeta(
    native_shape=(218, 178, 3), attribute_names=tuple(CELEBA_ATTRIBUTES), crop=CELEBA_CROP
  ),
  "shapes3d": SourceMeta(
    native_shape=(64, 64, 3),
    factor_names=("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
    factor_sizes=(10, 10, 10, 8, 4, 15),
  ),
}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Shapes and annotations of a dataset, as the model and the evaluators see it.

  Attributes:
    image_shape: (H, W, C) of the preprocessed images (H = W = DataConfig.image_size); (columns,)
      of a table's records.
    num_train: examples in the training split.
    num_eval: examples in the evaluation split.
    has_label: batches carry 'label' int32 (B,).
    num_label_classes: number of label classes (0 without labels).
    attribute_names: names of 'attributes' int32 (B, A) in {0, 1} (empty: no attributes).
    factor_names: names of 'factors' int32 (B, F) (empty: no factors).
    factor_sizes: number of values of each factor.
  """

  image_shape: tuple[int, int, int]
  num_train: int
  num_eval: int
  has_label: bool
  num_label_classes: int
  attribute_names: tuple[str, ...]
  factor_names: tuple[str, ...]
  factor_sizes: tuple[int, ...]


class ArraySource:
  """grain source over the rows `indices` of in-memory arrays (npz and generated data)."""

  def __init__(
    self, arrays: dict[str, np.ndarray], indices: np.ndarray, meta: SourceMeta, description: str
  ):
    self._arrays = arrays
    self._indices = indices
    self.meta = meta
    self._description = description

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> Example:
    row = self._indices[index]
    return {key: value[row] for key, value in self._arrays.items()}

  def columns(self) -> dict[str, np.ndarray]:
    """Every example at once: each key's rows stacked along a new leading axis (one gather)."""
    return {key: value[self._indices] for key, value in self._arrays.items()}

  def __repr__(self) -> str:
    return f"ArraySource({self._description}, num_examples={len(self)})"


class TableSource:
  """grain source over one split of a table (source 'csv'), encoded by `DataConfig.schema`.

  The rows are split into 'train' and 'test' by a fixed permutation (seed SPLIT_SEED) and
  `DataConfig.test_fraction`.
  """

  def __init__(self, cfg: DataConfig, split: str):
    if cfg.schema is None:
      raise ValueError("a table source needs DataConfig.schema (set by configuration.resolve).")
    path = os.path.abspath(cfg.path)
    table = _load_table(path, os.stat(path).st_mtime_ns if os.path.isfile(path) else 0)
    train, test = tables.split(table, cfg.test_fraction, SPLIT_SEED)
    part = train if split == "train" else test
    record, label = cfg.schema.encode(part)
    self._arrays: dict[str, Any] = {"record": record}
    if label is not None:
      if np.any(label == tables.MISSING_CLASS):
        raise ValueError(
          f"data.label={cfg.label!r} is missing in {int(np.sum(label < 0))} row(s) of the "
          f"{split!r} split; a probe label needs a value in every row."
        )
      self._arrays["label"] = label
    self.meta = SourceMeta(
      native_shape=(len(cfg.schema.columns),),
      num_label_classes=cfg.schema.label.num_classes if cfg.schema.label else 0,
    )
    self._description = f"table={path!r}, split={split!r}"

  def __len__(self) -> int:
    return len(self._arrays["record"][next(iter(self._arrays["record"]))])

  def __getitem__(self, index: int) -> Example:
    return {
      "record": {name: column[index] for name, column in self._arrays["record"].items()},
      **{key: value[index] for key, value in self._arrays.items() if key != "record"},
    }

  def columns(self) -> dict[str, Any]:
    """Every example at once: the record's columns (N, 1) and the labels (N,)."""
    return self._arrays

  def __repr__(self) -> str:
    return f"TableSource({self._description}, num_examples={len(self)})"


@functools.lru_cache(maxsize=2)
def _load_table(path: str, mtime_ns: int) -> Any:
  del mtime_ns  # Part of the cache key only: a rewritten file is read again.
  return tables.read_table(path)


class TfdsSource:
  """grain source over a prepared TFDS split, with examples in the common layout."""

  def __init__(self, name: str, split: str, data_dir: str, download: bool = False):
    if name not in TFDS_DATASETS:
      raise ValueError(
        f"DataConfig.name {name!r} is not a known TFDS dataset; known: {sorted(TFDS_DATASETS)}."
      )
    self.meta = TFDS_DATASETS[name]
    self._name, self._split, self._data_dir = name, split, data_dir
    self._source = _open_tfds(name, split, data_dir, download)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> Example:
    return _standardise_tfds(self._source[index], self.meta)

  def __repr__(self) -> str:
    return f"TfdsSource(name={self._name!r}, split={self._split!r}, data_dir={self._data_dir!r})"


def _open_tfds(name: str, split: str, data_dir: str, download: bool) -> Any:
  """The TFDS data source of one split, prepared first where it is missing and `download`."""
  try:
    return _tfds_source(name, split, data_dir)
  except ValueError:
    if prepare.is_prepared(name, data_dir):
      raise
    if not download:
      raise prepare.not_prepared_error(name, data_dir, "data.download=false") from None
  prepare.prepare(name, data_dir)
  return _tfds_source(name, split, data_dir)


class _NoMissingVariantWarning(logging.Filter):
  """Drops TFDS's warning that a dataset's version folder is empty: the error says it better."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "has no dataset_info.json" not in record.getMessage()


@contextlib.contextmanager
def _quiet_missing_variant():
  absl_logger, log_filter = logging.getLogger("absl"), _NoMissingVariantWarning()
  absl_logger.addFilter(log_filter)
  try:
    yield
  finally:
    absl_logger.removeFilter(log_filter)


def _tfds_source(name: str, split: str, data_dir: str) -> Any:
  try:
    with _quiet_missing_variant():
      return tfds.data_source(
        name,
        split=split,
        data_dir=data_dir or None,
        download=False,
        builder_kwargs={"file_format": "array_record"},
      )
  # TFDS signals absent or unprepared data with these (e.g. KeyError "splits is empty").
  except (KeyError, ValueError, NotImplementedError, FileNotFoundError, AssertionError) as error:
    raise ValueError(
      f"TFDS dataset {name!r} split {split!r} cannot be read as array_record under "
      f"{prepare.resolve_data_dir(data_dir)} ({type(error).__name__}: {error}); check the split "
      "name (shapes3d only has 'train': use e.g. 'train[90%:]'), or remove the dataset's "
      "directory to prepare it again as array_record."
    ) from error


def _standardise_tfds(example: Example, meta: SourceMeta) -> Example:
  image = np.asarray(example["image"], np.uint8)
  if meta.binary:
    image = np.where(image > 0, 255, 0).astype(np.uint8)
  out = {"image": image}
  if meta.num_label_classes:
    out["label"] = np.int32(example["label"])
  if meta.attribute_names:
    attributes = example["attributes"]
    out["attributes"] = np.array([attributes[n] for n in meta.attribute_names], np.int32)
  if meta.factor_names:
    out["factors"] = np.array([example[f"label_{n}"] for n in meta.factor_names], np.int32)
  return out


def _split_indices(num_examples: int, test_fraction: float) -> dict[str, np.ndarray]:
  """Fixed train/test partition of range(num_examples) (seed SPLIT_SEED)."""
  num_test = min(max(round(num_examples * test_fraction), 1), num_examples - 1)
  permutation = np.random.default_rng(SPLIT_SEED).permutation(num_examples)
  return {"train": np.sort(permutation[num_test:]), "test": np.sort(permutation[:num_test])}


def _check_npz(arrays: dict[str, np.ndarray], path: str) -> dict[str, np.ndarray]:
  """Validates the arrays of an .npz file; returns them with int32 annotations."""
  unknown = sorted(set(arrays) - set(NPZ_KEYS))
  if "image" not in arrays or unknown:
    raise ValueError(
      f"{path}: an npz source needs an 'image' array and may hold {NPZ_KEYS[1:]}; "
      f"found keys {sorted(arrays)}."
    )
  image = arrays["image"]
  if image.dtype != np.uint8:
    raise ValueError(f"{path}: 'image' must be uint8 in 0..255, got dtype {image.dtype}.")
  if image.ndim != 4 or image.shape[-1] not in (1, 3) or len(image) < 2:
    raise ValueError(
      f"{path}: 'image' must have shape (N >= 2, H, W, C) with C in {{1, 3}}, got {image.shape}."
    )
  checked = {"image": image}
  expected_ndim = {"label": 1, "attributes": 2, "factors": 2}
  for key, ndim in expected_ndim.items():
    if key not in arrays:
      continue
    value = arrays[key]
    if value.ndim != ndim or len(value) != len(image):
      raise ValueError(
        f"{path}: {key!r} must have {ndim} dimension(s) and {len(image)} rows, got {value.shape}."
      )
    if not (np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_):
      raise ValueError(f"{path}: {key!r} must hold integers, got dtype {value.dtype}.")
    high = 1 if key == "attributes" else np.iinfo(np.int32).max
    if value.size and (value.min() < 0 or value.max() > high):
      raise ValueError(
        f"{path}: {key!r} values must lie in [0, {high}], got [{value.min()}, {value.max()}]."
      )
    checked[key] = value.astype(np.int32)
  return checked


@functools.lru_cache(maxsize=2)
def _load_npz(path: str, mtime_ns: int) -> dict[str, np.ndarray]:
  del mtime_ns  # Part of the cache key only: a rewritten file is read again.
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except (OSError, ValueError) as error:
    raise ValueError(f"{path}: not a readable .npz file ({error}).") from error
  return _check_npz(arrays, path)


@functools.lru_cache(maxsize=2)
def _generate(name: str, num_examples: int, image_size: int) -> dict[str, np.ndarray]:
  make, _ = GENERATED[name]
  return make(num_examples, image_size=image_size, seed=GENERATED_SEED)


def _npz_meta(arrays: dict[str, np.ndarray]) -> SourceMeta:
  factors = arrays.get("factors")
  num_factors = 0 if factors is None else factors.shape[1]
  return SourceMeta(
    native_shape=arrays["image"].shape[1:],
    num_label_classes=int(arrays["label"].max()) + 1 if "label" in arrays else 0,
    attribute_names=tuple(f"attribute_{i}" for i in range(arrays["attributes"].shape[1]))
    if "attributes" in arrays
    else (),
    factor_names=tuple(f"factor_{i}" for i in range(num_factors)),
    factor_sizes=tuple(int(s) + 1 for s in factors.max(axis=0)) if num_factors else (),
  )


def _local_arrays(cfg: DataConfig) -> tuple[dict[str, np.ndarray], SourceMeta, str]:
  """Arrays, metadata and a description of an npz or generated dataset."""
  if cfg.source == "npz":
    path = os.path.abspath(cfg.path)
    if not os.path.isfile(path):
      raise ValueError(f"DataConfig.path: no .npz file at {cfg.path!r} (resolved to {path}).")
    arrays = _load_npz(path, os.stat(path).st_mtime_ns)
    return arrays, _npz_meta(arrays), f"npz={path!r}"
  if cfg.name not in GENERATED:
    raise ValueError(
      f"DataConfig.name {cfg.name!r} is not a generated dataset; known: {sorted(GENERATED)}."
    )
  arrays = _generate(cfg.name, cfg.num_examples, cfg.image_size)
  spec = GENERATED[cfg.name][1]
  meta = SourceMeta(
    native_shape=arrays["image"].shape[1:], factor_names=spec.names, factor_sizes=spec.sizes
  )
  description = f"generated={cfg.name!r}, size={cfg.num_examples}, image_size={cfg.image_size}"
  return arrays, meta, description


def open_split(cfg: DataConfig, split: str) -> ArraySource | TfdsSource | TableSource:
  """Opens one split of the configured dataset as a grain random-access source.

  Args:
    cfg: data settings.
    split: a TFDS split string (source 'tfds') or 'train' / 'test' (npz and generated sources).

  Returns:
    A source of examples in the common layout (module docstring) with a `meta` SourceMeta.

  Raises:
    ValueError: unknown dataset or split, missing TFDS data, a bad .npz file.
  """
  if cfg.source == "tfds":
    return TfdsSource(cfg.name, split, cfg.data_dir, cfg.download)
  if split not in LOCAL_SPLITS:
    raise ValueError(
      f"split {split!r} does not exist for source {cfg.source!r}; use one of {LOCAL_SPLITS}."
    )
  if cfg.source == "csv":
    return TableSource(cfg, split)
  arrays, meta, description = _local_arrays(cfg)
  indices = _split_indices(len(arrays["image"]), cfg.test_fraction)[split]
  return ArraySource(arrays, indices, meta, f"{description}, split={split!r}")


def dataset_info(cfg: DataConfig) -> DatasetInfo:
  """Shapes, split sizes and annotations of the configured dataset (opens both splits).

  Raises:
    ValueError: as `open_split`.
  """
  train, evaluation = open_split(cfg, cfg.train_split), open_split(cfg, cfg.eval_split)
  meta = train.meta
  image = len(meta.native_shape) == 3
  return DatasetInfo(
    image_shape=(cfg.image_size, cfg.image_size, meta.native_shape[-1])
    if image
    else meta.native_shape,
    num_train=len(train),
    num_eval=len(evaluation),
    has_label=meta.num_label_classes > 0,
    num_label_classes=meta.num_label_classes,
    attribute_names=meta.attribute_names,
    factor_names=meta.factor_names,
    factor_sizes=meta.factor_sizes,
  )
