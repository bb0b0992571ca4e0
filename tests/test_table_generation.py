"""experiments/table_generation.py: its scores on tables with a known answer.

The baselines and sdmetrics need the extra `synth` (README, "Installs"); without it those tests
are skipped, and the ones of the row encoding and the machine-learning efficiency still run.
"""

import numpy as np
import pandas as pd
import pytest

from experiments import table_generation as generation

KINDS = {"size": "numerical", "colour": "categorical", "year": "categorical"}


def _table(n: int = 200, seed: int = 0) -> pd.DataFrame:
  """size ~ N(10, 1) if red else N(20, 1); year independent of both."""
  rng = np.random.default_rng(seed)
  colour = rng.choice(["red", "blue"], n)
  size = np.where(colour == "red", 10.0, 20.0) + rng.normal(size=n)
  return pd.DataFrame({"size": size, "colour": colour, "year": rng.choice([2007, 2008], n)})


def test_normalised_reads_one_category_in_its_three_spellings():
  table = pd.DataFrame({"size": [1, 2, None], "year": [2007, 2007.0, "2007"]})
  out = generation.normalised(table, {"size": "numerical", "year": "categorical"})
  assert out["year"].tolist() == ["2007"] * 3
  assert out["size"].dtype == float and np.isnan(out["size"].iloc[2])


def test_mle_is_perfect_when_the_target_is_a_function_of_a_column_and_chance_otherwise():
  train, test = (generation.normalised(_table(2000, seed=s), KINDS) for s in (0, 1))
  assert generation.mle(train, test, KINDS, "colour", seed=0) > 0.99
  shuffled = train.assign(colour=np.random.default_rng(0).permutation(train["colour"].to_numpy()))
  assert generation.mle(shuffled, test, KINDS, "colour", seed=0) < 0.6  # chance: 0.5 +- 0.02


def test_quality_is_one_for_the_real_rows_and_drops_when_the_columns_decouple():
  pytest.importorskip("sdmetrics")
  real = generation.normalised(_table(), KINDS)
  assert generation.quality(real, real, KINDS)["score"] == pytest.approx(1.0)
  rng = np.random.default_rng(0)
  decoupled = real.assign(colour=rng.permutation(real["colour"].to_numpy()))
  scores = generation.quality(real, decoupled, KINDS)
  assert scores["column_shapes"] == pytest.approx(1.0)  # the marginals are the same
  assert scores["column_pair_trends"] < 0.9


@pytest.mark.parametrize("name", generation.SYNTHESIZERS)
def test_a_baseline_draws_rows_of_the_table_and_keeps_its_budget(name):
  pytest.importorskip("ctgan")
  train = generation.normalised(_table(), KINDS)
  rows, cpu, epochs = generation.synthesize(name, KINDS, train, 50, budget_s=3.0, seed=0)
  rows = generation.normalised(rows, KINDS)
  assert len(rows) == 50 and list(rows.columns) == list(KINDS)
  assert set(rows["colour"]) <= {"red", "blue"} and set(rows["year"]) <= {"2007", "2008"}
  assert rows["size"].between(train["size"].min(), train["size"].max()).all()
  assert (epochs is None) == (name == "copula")
  if epochs is not None:
    assert cpu < 10 * 3.0  # the probe sizes the fit to about the budget


@pytest.mark.parametrize("inflation", [1.0, 3.0])
def test_the_baselines_fit_lands_on_its_budget_when_the_probes_mispredict_it(inflation):
  """A fit costing 2 + 0.05 E + 1e-5 E^2 CPU s, whose small probe fits are measured `inflation`
  times too dear (as when other jobs share the cores): the final fit lands within the tolerance
  of the budget, redone once where the probes misled it."""
  calls = []

  def fit(epochs):
    calls.append(epochs)
    cost = 2 + 0.05 * epochs + 1e-5 * epochs**2
    return "model", cost * (inflation if len(calls) <= 3 else 1.0)

  (model, cpu), epochs = generation.fit_to_budget(fit, budget_s=100.0)
  assert model == "model" and calls[-1] == epochs
  assert abs(cpu - 100.0) <= generation.BUDGET_TOLERANCE * 100.0
  assert len(calls) == (4 if inflation == 1.0 else 5)  # three probes, the fit, one redo if needed
