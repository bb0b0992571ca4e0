"""Tables of mixed-type records: reading, the column schema, and the map to and from flow space.

A `TableSchema` says what each column is and how its values map to the data of its flow
(`bfn.mixed.MixedFlow`):
  continuous   floats mapped to [-1, 1] by their `scaling` (values outside the training range
               [low, high] are clipped to it): 'range', linear from [low, high]; 'quantile',
               piecewise linear through the training values' empirical CDF (`quantile_map`), so
               that a skewed column or one with outliers spreads evenly over [-1, 1] (as
               TabDDPM's quantile transform); both are inverted exactly by `decode`;
  discretised  integers on K bins in [-1, 1]: one bin per value when the range has at most
               MAX_BINS values, else MAX_BINS equal-width bins (decoded to the nearest integer of
               the bin centre);
  discrete     categories, class indices 0..K-1 in the order of `categories`.
Inferred kinds: strings, booleans and pandas categoricals are discrete; integers with at most
MAX_CATEGORICAL_INTEGERS distinct values are discrete; other integers discretised; floats
continuous (a float column whose values are all integers counts as integers: pandas reads an
integer column with missing cells as floats). `parse_kinds('name:kind,...')` overrides them.

Missing cells (NaN / None / empty) become NaN, or `mixed.MISSING_CLASS` in a discrete column.
The schema is JSON (`save`, `load`), kept in the run directory, so that samples come back in the
original units and category names.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import pandas as pd

from paramrel_jax.bfn import checks
from paramrel_jax.bfn.flows import make_flow
from paramrel_jax.bfn.mixed import MISSING_CLASS, MixedFlow

KINDS = ("continuous", "discretised", "discrete")
MAX_CATEGORICAL_INTEGERS = 10
MAX_BINS = 256
SCALINGS = ("range", "quantile")
MAX_KNOTS = 512
TAIL_KNOTS = 64
SCHEMA_FILE = "schema.json"
READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet}


@dataclasses.dataclass(frozen=True)
class ColumnSchema:
  """One column: its name, kind and map to flow space.

  Attributes:
    name: the column's name in the table.
    kind: one of KINDS.
    low, high: continuous: the training range; discretised: the integer range.
    num_bins: discretised: K bins.
    categories: discrete: the categories, class k is categories[k] (JSON values).
    scaling: continuous: one of SCALINGS (schemas saved before it existed are 'range').
    knots, levels: continuous, scaling 'quantile': increasing training values (from low to high)
      and their places in [-1, 1] (from -1 to 1), the points of the piecewise-linear map.
  """

  name: str
  kind: str
  low: float = 0.0
  high: float = 0.0
  num_bins: int = 0
  categories: tuple = ()
  scaling: str = "range"
  knots: tuple = ()
  levels: tuple = ()

  def __post_init__(self):
    if self.scaling not in SCALINGS:
      raise ValueError(
        f"column {self.name!r}: scaling must be one of {SCALINGS}, got {self.scaling!r}."
      )
    if self.scaling == "quantile" and (
      len(self.knots) != len(self.levels)
      or not self.knots
      or np.any(np.diff(self.knots) <= 0)
      or np.any(np.diff(self.levels) <= 0)
    ):
      raise ValueError(
        f"column {self.name!r}: a quantile scaling needs as many knots as levels, both "
        f"increasing, got {len(self.knots)} knots and {len(self.levels)} levels."
      )

  @property
  def num_classes(self) -> int:
    return len(self.categories)

  def describe(self) -> str:
    if self.kind == "continuous":
      scaled = ", quantile-scaled" if self.scaling == "quantile" else ""
      return f"{self.name}: continuous in [{self.low:g}, {self.high:g}]{scaled}"
    if self.kind == "discretised":
      return (
        f"{self.name}: discretised, integers {self.low:g}..{self.high:g} on {self.num_bins} bins"
      )
    shown = ", ".join(map(str, self.categories[:6])) + (", ..." if self.num_classes > 6 else "")
    return f"{self.name}: discrete, {self.num_classes} categories ({shown})"

  def encode(self, values: pd.Series) -> np.ndarray:
    """The column in flow space, (N, 1): float32 (NaN missing) or int32 (MISSING_CLASS missing)."""
    missing = values.isna().to_numpy()
    if self.kind == "discrete":
      index = {_key(c): k for k, c in enumerate(self.categories)}
      observed = values[~missing]
      unseen = sorted({str(v) for v in observed if _key(v) not in index})
      if unseen:
        raise ValueError(
          f"column {self.name!r} holds categories unseen in training: {unseen[:5]} "
          f"(known: {list(self.categories)[:10]})."
        )
      codes = np.full(len(values), MISSING_CLASS, np.int32)
      codes[~missing] = [index[_key(v)] for v in observed]
      return codes[:, None]
    numbers = _numeric(values, self.name)
    if self.kind == "continuous" and self.scaling == "quantile":
      scaled = np.interp(numbers, self.knots, self.levels)  # clamps to [-1, 1]; NaN stays NaN
      return scaled.astype(np.float32)[:, None]
    if self.kind == "continuous":
      scaled = 2 * (numbers - self.low) / max(self.high - self.low, 1e-12) - 1
      return np.clip(scaled, -1, 1).astype(np.float32)[:, None]
    width = (self.high - self.low + 1) / self.num_bins  # integers per bin
    k = np.clip(np.floor((np.round(numbers) - self.low) / width), 0, self.num_bins - 1)
    centres = (2 * k + 1) / self.num_bins - 1
    return np.where(missing, np.nan, centres).astype(np.float32)[:, None]

  def decode(self, column: np.ndarray) -> pd.Series:
    """Flow-space values (N, 1) back in the table's units or categories."""
    column = np.asarray(column)[:, 0]
    if self.kind == "discrete":
      values = [None if c == MISSING_CLASS else self.categories[int(c)] for c in column]
      return pd.Series(values, name=self.name, dtype=object)
    if self.kind == "continuous" and self.scaling == "quantile":
      return pd.Series(np.interp(column, self.levels, self.knots), name=self.name)
    if self.kind == "continuous":
      position = (np.clip(column, -1, 1) + 1) / 2
      return pd.Series(self.low + position * (self.high - self.low), name=self.name)
    k = np.clip(np.round(((column + 1) * self.num_bins - 1) / 2), 0, self.num_bins - 1)
    width = (self.high - self.low + 1) / self.num_bins
    numbers = np.round(self.low + (k + 0.5) * width - 0.5)
    return pd.Series(numbers, name=self.name).astype("Int64")


@dataclasses.dataclass(frozen=True)
class TableSchema:
  """The model's columns (in order) and the label column kept out of the model.

  Attributes:
    columns: the modelled columns.
    label: the label column (a discrete ColumnSchema) or None.
  """

  columns: tuple[ColumnSchema, ...]
  label: ColumnSchema | None = None

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(column.name for column in self.columns)

  def describe(self) -> str:
    """One line per column, as printed at the start of a run."""
    lines = [column.describe() for column in self.columns]
    if self.label is not None:
      lines.append(f"label {self.label.describe()}")
    return "\n".join(lines)

  def encode(self, table: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """(record {name: (N, 1)}, label codes (N,) int32 or None) of a table with these columns;
    the label is None where the table has no label column (e.g. a table to impute)."""
    absent = [name for name in self.names if name not in table.columns]
    if absent:
      raise ValueError(f"the table lacks the column(s) {absent} of the run's schema.")
    record = {column.name: column.encode(table[column.name]) for column in self.columns}
    label = None
    if self.label is not None and self.label.name in table.columns:
      label = self.label.encode(table[self.label.name])[:, 0]
    return record, label

  def decode(self, record: dict[str, np.ndarray]) -> pd.DataFrame:
    """A record batch in flow space back to a table in the original units and names."""
    return pd.DataFrame(
      {column.name: column.decode(record[column.name]) for column in self.columns}
    )

  def flow(self, *, sigma1: float, beta1: float) -> MixedFlow:
    """The MixedFlow of these columns: continuous and discretised columns with sigma1, discrete
    ones with beta(1). Continuous columns are not quantised (num_bins 0): their reconstruction
    term is a density over the column's [-1, 1] scale."""
    return MixedFlow(
      tuple(
        (
          column.name,
          make_flow(
            column.kind,
            sigma1=sigma1,
            beta1=beta1,
            num_bins=0 if column.kind == "continuous" else max(column.num_bins, 2),
            num_classes=max(column.num_classes, 2),
          ),
        )
        for column in self.columns
      )
    )

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=1)

  @classmethod
  def from_json(cls, text: str) -> TableSchema:
    data = json.loads(text)
    columns = tuple(_column_from_dict(c) for c in data["columns"])
    label = _column_from_dict(data["label"]) if data.get("label") else None
    return cls(columns, label)

  def save(self, workdir: str) -> str:
    """Writes workdir/SCHEMA_FILE (a temporary file renamed into place); returns its path."""
    path = os.path.join(workdir, SCHEMA_FILE)
    with open(f"{path}.tmp", "w") as f:
      f.write(self.to_json())
    os.replace(f"{path}.tmp", path)
    return path

  @classmethod
  def load(cls, workdir: str) -> TableSchema:
    with open(os.path.join(workdir, SCHEMA_FILE)) as f:
      return cls.from_json(f.read())


def _column_from_dict(data: dict[str, Any]) -> ColumnSchema:
  sequences = {key: tuple(data.get(key, ())) for key in ("categories", "knots", "levels")}
  return ColumnSchema(**{**data, **sequences})


def quantile_map(numbers: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(knots, levels) of the quantile scaling of observed values (N,).

  The knots are the distinct values, or where there are more than MAX_KNOTS, the values at
  MAX_KNOTS evenly spaced quantiles plus the TAIL_KNOTS smallest and largest distinct values (so
  that an outlier spans only its own share of [-1, 1], not the last quantile's, where draws near
  +-1 would land anywhere between the bulk and the outlier). Each knot's level is the mid-point of
  its step of the empirical CDF, stretched so that min -> -1 and max -> 1.
  """
  values = np.sort(numbers)
  knots = np.unique(values)
  if len(knots) > MAX_KNOTS:
    grid = np.quantile(values, np.linspace(0, 1, MAX_KNOTS), method="inverted_cdf")
    knots = np.union1d(grid, np.concatenate([knots[:TAIL_KNOTS], knots[-TAIL_KNOTS:]]))
  if len(knots) == 1:
    return (float(knots[0]),), (-1.0,)
  cdf = np.searchsorted(values, knots, "left") + np.searchsorted(values, knots, "right")
  levels = -1 + 2 * (cdf - cdf[0]) / (cdf[-1] - cdf[0])
  return tuple(map(float, knots)), tuple(map(float, levels))


def _key(value) -> str:
  """A category's identity across types: 3, 3.0 and '3' differ from each other only by type."""
  if isinstance(value, (bool, np.bool_)):
    return f"bool:{bool(value)}"
  if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer()):
    return f"int:{int(value)}"
  return f"{type(value).__name__}:{value}"


def _json_value(value):
  """A category as a JSON value (numpy scalars to Python ones)."""
  if isinstance(value, (np.bool_, bool)):
    return bool(value)
  if isinstance(value, (np.integer,)) or (isinstance(value, float) and value.is_integer()):
    return int(value)
  if isinstance(value, np.floating):
    return float(value)
  return value if isinstance(value, (int, float, str)) else str(value)


def _numeric(values: pd.Series, name: str) -> np.ndarray:
  """The column as float64, NaN where missing; a non-numeric value is an error naming it."""
  numbers = pd.to_numeric(values, errors="coerce")
  bad = values[numbers.isna() & values.notna()]
  if len(bad):
    raise ValueError(
      f"column {name!r} must be numeric, but holds {bad.iloc[0]!r} (row {bad.index[0]})."
    )
  return numbers.to_numpy(np.float64)


def read_table(path: str) -> pd.DataFrame:
  """A CSV or Parquet table (by suffix), with at least one row and one column."""
  suffix = os.path.splitext(path)[1].lower()
  if suffix not in READERS:
    raise ValueError(f"data.path must be a {' or '.join(READERS)} file, got {path!r}.")
  if not os.path.isfile(path):
    raise ValueError(f"data.path {path!r} does not exist.")
  try:
    table = READERS[suffix](path)
  except (ValueError, OSError, pd.errors.ParserError) as error:
    raise ValueError(f"cannot read the table {path!r}: {error}") from None
  if table.empty:
    raise ValueError(f"the table {path!r} is empty (no rows or no columns).")
  return table


def parse_kinds(spec: str) -> dict[str, str]:
  """'name:kind,name:kind' -> {name: kind}; '' -> {}."""
  kinds = {}
  for item in filter(None, (part.strip() for part in spec.split(","))):
    name, sep, kind = item.rpartition(":")
    if not sep or not name:
      raise ValueError(f"data.columns must read 'name:kind,...', got {item!r}.")
    if kind not in KINDS:
      raise ValueError(f"data.columns: unknown kind {kind!r} for column {name!r}; known: {KINDS}.")
    kinds[name] = kind
  return kinds


def infer_kind(values: pd.Series) -> str:
  """The kind of a column by its dtype and values (module docstring)."""
  if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
    return "discrete"
  observed = values.dropna()
  integers = pd.api.types.is_integer_dtype(values) or bool(
    len(observed) and np.all(np.mod(observed.to_numpy(np.float64), 1) == 0)
  )
  if not integers:
    return "continuous"
  return "discrete" if observed.nunique() <= MAX_CATEGORICAL_INTEGERS else "discretised"


def fit_column(values: pd.Series, name: str, kind: str, scaling: str = "range") -> ColumnSchema:
  """A column's schema of the given kind, fitted on its (training) values; `scaling` (one of
  SCALINGS) is a continuous column's map to [-1, 1]."""
  if kind not in KINDS:
    raise ValueError(f"unknown kind {kind!r} for column {name!r}; known: {KINDS}.")
  observed = values.dropna()
  if observed.empty:
    raise ValueError(f"column {name!r} has no values (every cell is missing).")
  if kind == "discrete":
    unique = {}  # by _key: a set would merge True with 1 and False with 0
    for value in observed:
      unique.setdefault(_key(value), _json_value(value))
    categories = sorted(unique.values(), key=lambda v: (type(v).__name__, v))
    if len(categories) < 2:
      categories.append(f"<not {categories[0]}>")  # a flow needs K >= 2 classes
    return ColumnSchema(name, kind, categories=tuple(categories))
  numbers = _numeric(observed, name)
  low, high = float(numbers.min()), float(numbers.max())
  if kind == "continuous" and scaling == "quantile":
    knots, levels = quantile_map(numbers)
    return ColumnSchema(name, kind, low, high, scaling=scaling, knots=knots, levels=levels)
  if kind == "continuous":
    return ColumnSchema(name, kind, low=low, high=high, scaling=scaling)
  if not np.all(np.mod(numbers, 1) == 0):
    raise ValueError(f"column {name!r} is discretised but holds non-integers, e.g. {numbers[0]}.")
  return ColumnSchema(name, kind, low=low, high=high, num_bins=int(min(high - low + 1, MAX_BINS)))


def infer_schema(
  table: pd.DataFrame,
  kinds: dict[str, str] | None = None,
  label: str | None = None,
  scaling: str = "range",
) -> TableSchema:
  """The schema of a (training) table: every column but `label`, kinds inferred or as given,
  continuous columns mapped to [-1, 1] by `scaling` (one of SCALINGS)."""
  checks.check_choice("data.scaling", scaling, SCALINGS)
  kinds = dict(kinds or {})
  unknown = sorted(set(kinds) - set(map(str, table.columns)))
  if unknown:
    raise ValueError(f"data.columns names column(s) {unknown} that the table lacks.")
  if label and label not in table.columns:
    raise ValueError(f"data.label={label!r} is not a column of the table {list(table.columns)}.")
  columns = tuple(
    fit_column(table[name], str(name), kinds.get(str(name)) or infer_kind(table[name]), scaling)
    for name in table.columns
    if name != label
  )
  if not columns:
    raise ValueError("the table has no column to model besides the label.")
  label_schema = fit_column(table[label], label, "discrete") if label else None
  return TableSchema(columns, label_schema)


def split(
  table: pd.DataFrame, test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
  """(train, test) rows by a seeded permutation; test_fraction in (0, 1)."""
  if not 0 < test_fraction < 1:
    raise ValueError(f"data.test_fraction must lie in (0, 1), got {test_fraction}.")
  order = np.random.default_rng(seed).permutation(len(table))
  num_test = max(1, round(test_fraction * len(table)))
  if num_test >= len(table):
    raise ValueError(f"a table of {len(table)} rows cannot keep {num_test} for testing.")
  return table.iloc[order[num_test:]], table.iloc[order[:num_test]]
