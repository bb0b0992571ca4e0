"""Tables of mixed-type records: kinds inferred and overridden, the round trip through flow space,
the saved schema, and one clear error per bad input."""

import numpy as np
import pandas as pd
import pytest

from paramrel_jax.bfn import flows
from paramrel_jax.bfn.mixed import MISSING_CLASS
from paramrel_jax.data import tables


def _penguins_like(rows: int = 40, seed: int = 0) -> pd.DataFrame:
  """Columns as palmerpenguins': strings, floats and integers with missing cells, a label."""
  rng = np.random.default_rng(seed)
  table = pd.DataFrame(
    {
      "species": rng.choice(["Adelie", "Gentoo", "Chinstrap"], rows),
      "island": rng.choice(["Biscoe", "Dream", "Torgersen"], rows),
      "bill_length_mm": rng.uniform(32.0, 60.0, rows).round(1),
      "body_mass_g": rng.integers(2700, 6300, rows),
      "year": rng.choice([2007, 2008, 2009], rows),
      "male": rng.choice([True, False], rows),
    }
  )
  table.loc[3, "bill_length_mm"] = np.nan
  table.loc[5, "island"] = None
  return table


def test_kinds_are_inferred_by_dtype_and_values():
  table = _penguins_like()
  schema = tables.infer_schema(table, label="species")
  kinds = {column.name: column.kind for column in schema.columns}
  assert kinds == {
    "island": "discrete",  # strings
    "bill_length_mm": "continuous",  # floats
    "body_mass_g": "discretised",  # integers with many values
    "year": "discrete",  # integers with few values
    "male": "discrete",  # booleans
  }
  assert schema.label.categories == ("Adelie", "Chinstrap", "Gentoo")
  assert "species" not in schema.names
  mass = schema.columns[2]
  assert mass.num_bins == tables.MAX_BINS  # 3,600 values: equal-width bins
  # pandas reads an integer column with missing cells as floats: still integers
  with_gap = pd.Series([*range(0, 40, 3), np.nan], dtype=float)
  assert tables.infer_kind(with_gap) == "discretised"
  lines = schema.describe().splitlines()
  assert lines[0] == "island: discrete, 3 categories (Biscoe, Dream, Torgersen)"
  assert lines[-1].startswith("label species: discrete, 3 categories")


def test_overrides_replace_the_inferred_kind():
  kinds = tables.parse_kinds("year:discretised, body_mass_g:continuous")
  schema = tables.infer_schema(_penguins_like(), kinds, label="species")
  by_name = {column.name: column for column in schema.columns}
  assert by_name["year"].kind == "discretised" and by_name["year"].num_bins == 3
  assert by_name["body_mass_g"].kind == "continuous"
  assert tables.parse_kinds("") == {}


def test_round_trip_through_flow_space():
  table = _penguins_like()
  schema = tables.infer_schema(table, label="species")
  record, label = schema.encode(table)
  flow = schema.flow(sigma1=0.02, beta1=3.0)
  flow.validate_data(record)  # every column is valid data of its flow, missing cells included
  assert record["island"][5, 0] == MISSING_CLASS and np.isnan(record["bill_length_mm"][3, 0])
  assert np.all(np.abs(record["bill_length_mm"][~np.isnan(record["bill_length_mm"])]) <= 1)
  assert np.nanmin(record["bill_length_mm"]) == -1 and np.nanmax(record["bill_length_mm"]) == 1
  assert isinstance(flow.columns[1][1], flows.ContinuousFlow)
  assert flow.columns[1][1].num_bins == 0  # not quantised: scored by a density
  assert flow.columns[2][1].num_bins == tables.MAX_BINS
  assert flow.columns[3][1].num_classes == 3
  np.testing.assert_array_equal(label, pd.Categorical(table["species"]).codes)

  back = schema.decode(record)
  assert list(back.columns) == list(schema.names)
  assert back["island"].fillna("?").tolist() == table["island"].fillna("?").tolist()
  assert back["year"].tolist() == table["year"].tolist()
  assert back["male"].tolist() == table["male"].tolist()
  np.testing.assert_allclose(back["bill_length_mm"], table["bill_length_mm"], rtol=1e-5)
  # 3,600 integers on 256 bins: back within half a bin
  width = (table["body_mass_g"].max() - table["body_mass_g"].min() + 1) / tables.MAX_BINS
  assert np.all(np.abs(back["body_mass_g"].to_numpy(float) - table["body_mass_g"]) <= width / 2 + 1)


def test_integers_with_one_bin_per_value_come_back_exactly():
  values = pd.Series([3, 5, 4, 9, 3, 12, 7, 8, 10, 11, 6, 12], name="n")
  column = tables.fit_column(values, "n", "discretised")
  assert (column.low, column.high, column.num_bins) == (3, 12, 10)
  encoded = column.encode(values)
  flows.DiscretisedFlow(0.02, 10).validate_data(encoded)
  np.testing.assert_allclose(encoded[0, 0], 1 / 10 - 1)  # the first bin's centre
  assert column.decode(encoded).tolist() == values.tolist()


def test_schema_is_saved_and_loaded(tmp_path):
  for scaling in tables.SCALINGS:
    schema = tables.infer_schema(_penguins_like(), label="species", scaling=scaling)
    schema.save(str(tmp_path))
    assert tables.TableSchema.load(str(tmp_path)) == schema
  # a schema saved before continuous columns had a scaling loads with the range map
  old = '{"columns": [{"name": "x", "kind": "continuous", "low": 0.0, "high": 4.0}]}'
  (column,) = tables.TableSchema.from_json(old).columns
  assert column.scaling == "range" and column.encode(pd.Series([1.0]))[0, 0] == -0.5


def test_the_quantile_scaling_spreads_a_skewed_column_and_inverts_exactly():
  rng = np.random.default_rng(0)
  values = np.concatenate([rng.lognormal(0.0, 0.3, 2000).round(2), [58.9]])  # one far outlier
  series = pd.Series(values)
  ranged = tables.fit_column(series, "size", "continuous")
  column = tables.fit_column(series, "size", "continuous", "quantile")
  assert column.levels[0] == -1 and column.levels[-1] == 1 and column.knots[-1] == 58.9
  assert len(column.knots) == len(np.unique(values))  # rounded values: fewer than MAX_KNOTS
  encoded = column.encode(series)[:, 0]
  # the range map puts the bulk into a sliver of [-1, 1], the quantile map spreads it evenly
  assert np.ptp(np.quantile(ranged.encode(series), [0.05, 0.95])) < 0.1
  np.testing.assert_allclose(np.quantile(encoded, [0.25, 0.5, 0.75]), [-0.5, 0, 0.5], atol=0.02)
  # exact but for the float32 of flow space, coarsest on the long last segment to the outlier
  np.testing.assert_allclose(column.decode(encoded[:, None]), values, rtol=1e-3)
  np.testing.assert_allclose(column.decode(column.encode(series[:100])), values[:100], rtol=1e-5)
  # order kept, outside the training range clamped, missing stays missing
  probe = column.encode(pd.Series([0.1, 1.0, 1.01, 100.0, np.nan]))[:, 0]
  assert probe[0] == -1 and probe[1] < probe[2] and probe[3] == 1 and np.isnan(probe[4])
  # ties: one knot per distinct value, each at the middle of its step of the empirical CDF
  ties = tables.fit_column(pd.Series([1.0, 1.0, 2.0, 3.0, 3.0]), "t", "continuous", "quantile")
  assert ties.knots == (1.0, 2.0, 3.0) and ties.levels == (-1.0, 0.0, 1.0)
  uneven = tables.fit_column(pd.Series([1.0, 1.0, 1.0, 2.0, 3.0]), "t", "continuous", "quantile")
  np.testing.assert_allclose(uneven.levels, [-1.0, 1 / 3, 1.0])  # mid-CDF 0.3, 0.7, 0.9
  # many distinct values: a quantile grid, plus every one of the most extreme values
  dense_values = np.append(rng.normal(size=5000), 40.0)
  dense = tables.fit_column(pd.Series(dense_values), "d", "continuous", "quantile")
  assert tables.MAX_KNOTS < len(dense.knots) <= tables.MAX_KNOTS + 2 * tables.TAIL_KNOTS
  assert np.all(np.diff(dense.levels) > 0)
  extreme = np.sort(dense_values)
  assert set(extreme[: tables.TAIL_KNOTS]) | set(extreme[-tables.TAIL_KNOTS :]) <= set(dense.knots)
  # the outlier spans one value's share of [-1, 1], so few draws near +1 decode far beyond the bulk
  assert 1 - dense.levels[-2] < 3 / len(dense_values)
  assert dense.decode(np.array([[1 - 4 / len(dense_values)]]))[0] < 4
  constant = tables.fit_column(pd.Series([2.5, 2.5]), "c", "continuous", "quantile")
  assert constant.decode(constant.encode(pd.Series([2.5]))).tolist() == [2.5]


def test_split_is_seeded_and_disjoint():
  table = _penguins_like(50)
  train, test = tables.split(table, 0.2, seed=3)
  assert len(test) == 10 and len(train) == 40
  assert not set(train.index) & set(test.index)
  again, _ = tables.split(table, 0.2, seed=3)
  assert list(again.index) == list(train.index)
  other, _ = tables.split(table, 0.2, seed=4)
  assert list(other.index) != list(train.index)


def test_read_table_csv_and_parquet(tmp_path):
  table = _penguins_like()
  table.to_csv(tmp_path / "t.csv", index=False)
  table.to_parquet(tmp_path / "t.parquet")
  for name in ("t.csv", "t.parquet"):
    read = tables.read_table(str(tmp_path / name))
    assert list(read.columns) == list(table.columns) and len(read) == len(table)


def test_bad_input_gets_one_clear_error(tmp_path):
  table = _penguins_like()
  with pytest.raises(ValueError, match="unknown kind 'ordinal' for column 'year'"):
    tables.parse_kinds("year:ordinal")
  with pytest.raises(ValueError, match=r"data.label='sex' is not a column"):
    tables.infer_schema(table, label="sex")
  with pytest.raises(ValueError, match=r"names column\(s\) \['islnd'\] that the table lacks"):
    tables.infer_schema(table, {"islnd": "discrete"})
  with pytest.raises(ValueError, match="column 'island' must be numeric, but holds 'Biscoe|Dream"):
    tables.infer_schema(table, {"island": "continuous"})
  schema = tables.infer_schema(table, label="species")
  unseen = table.copy()
  unseen.loc[0, "island"] = "Atlantis"
  with pytest.raises(
    ValueError, match=r"column 'island' holds categories unseen in training: \['Atlantis'\]"
  ):
    schema.encode(unseen)
  typo = table.copy()
  typo["body_mass_g"] = typo["body_mass_g"].astype(object)
  typo.loc[2, "body_mass_g"] = "heavy"
  with pytest.raises(ValueError, match="column 'body_mass_g' must be numeric, but holds 'heavy'"):
    schema.encode(typo)
  with pytest.raises(ValueError, match=r"lacks the column\(s\) \['year'\]"):
    schema.encode(table.drop(columns="year"))
  (tmp_path / "empty.csv").write_text("a,b\n")
  with pytest.raises(ValueError, match="is empty"):
    tables.read_table(str(tmp_path / "empty.csv"))
  with pytest.raises(ValueError, match="does not exist"):
    tables.read_table(str(tmp_path / "none.csv"))
  with pytest.raises(ValueError, match="must be a .csv or .parquet file"):
    tables.read_table(str(tmp_path / "t.xlsx"))
  with pytest.raises(ValueError, match="has no values"):
    tables.infer_schema(table.assign(bill_length_mm=np.nan))
  with pytest.raises(ValueError, match=r"data.scaling must be one of \('range', 'quantile'\)"):
    tables.infer_schema(table, scaling="rank")
  with pytest.raises(ValueError, match="a quantile scaling needs as many knots as levels"):
    tables.ColumnSchema("x", "continuous", scaling="quantile", knots=(1.0, 2.0), levels=(0.0,))


def test_categories_of_mixed_python_types_stay_apart():
  """True and 1, False and 0 are different categories (a set would merge them)."""
  values = pd.Series([True, 1, False, 0, "a", 1, True], dtype=object, name="m")
  column = tables.fit_column(values, "m", "discrete")
  assert column.categories == (False, True, 0, 1, "a")
  codes = column.encode(values)
  assert codes[:, 0].tolist() == [1, 3, 0, 2, 4, 3, 1]
  back = column.decode(codes).tolist()
  assert [(type(v), v) for v in back] == [(type(v), v) for v in values]
