r"""The table study (issue 32, items 6-7), its second part: generated records of ParamReL against a
Gaussian copula, CTGAN and TVAE, at equal CPU time.

  .venv-synth/bin/python -m experiments.table_generation --tables penguins --seeds 0 1 2

Needs the extras `tables` and `synth` (README, "Installs": `requirements-synth.lock`, in its own
environment). Per table and seed, the main job trains `configs/tabular.py` on the training split
of the whole table (the model's own split; here the label is a column of the model, so that
samples carry it), and `TableModel.sample` draws N rows (Eq. 4), N = the training rows, at most
MAX_ROWS. A Gaussian copula (`copulas`, Beta marginals), CTGAN and TVAE (`ctgan`) fit the same
rows, preprocessed by RDT as SDV does it (`_preprocessor`), and draw N rows. CTGAN and TVAE get
the CPU seconds of ParamReL's training: their epochs come from a quadratic cost model fitted to
three probe fits (`epochs_for`), rescaled and redone once when the final fit misses the budget
by more than a fifth (`fit_to_budget`; the final fit's CPU seconds are reported).

  quality   sdmetrics' QualityReport of the samples against the training rows: the mean of its
            Column Shapes and Column Pair Trends scores, in [0, 1];
  mle       machine-learning efficiency: macro F1 on the real test rows of scikit-learn's
            HistGradientBoostingClassifier that predicts the table's target from the other
            columns, trained on the N generated rows, and on N real training rows (`real`).

The columns' kinds are the model's (`data.tables.infer_schema`): discrete columns are categorical
to the baselines and sdmetrics, the others numerical. fair drops `affairs`, of which its target
`had_affair` is a function. Writes `<out>/table_generation.json` (keeping the results of other
tables, seeds and settings) and `.md`; ParamReL's runs live where table_study's do
(`table_study.Setting`: `--scaling`, `--weighting`) and resume. The
extra's packages are imported where they are used, so that the command line parses without them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import f1_score

import paramrel_jax
from experiments import real_tables, table_study
from paramrel_jax.data import sources, tables

MAX_ROWS = 10_000  # generated rows per model (diamonds has 43,152 training rows)
PROBE_EPOCHS = 5  # the first probe fit; the others take about PROBE_SHARES of the budget
PROBE_SHARES = (0.05, 0.15)
BUDGET_TOLERANCE = 0.2  # a final fit further than this share off the budget is redone once
SYNTHESIZERS = ("copula", "ctgan", "tvae")


def _category(value):
  """A cell of a categorical column as a string: 2007, 2007.0 (an int column with gaps, read
  from CSV) and '2007' are one category."""
  if pd.isna(value):
    return value
  if isinstance(value, float | np.floating) and float(value).is_integer():
    value = int(value)
  return str(value)


def normalised(table: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
  """`table` with categorical columns as strings and numeric ones as floats, NaN where missing, so
  that every model's rows compare alike (a category 2007 and '2007' are one value)."""
  out = pd.DataFrame(index=table.index)
  for name, kind in kinds.items():
    if kind == "categorical":
      out[name] = table[name].map(_category).astype(object)
    else:
      out[name] = pd.to_numeric(table[name], errors="raise").astype(float)
  return out


def _preprocessor(kinds, copula: bool):
  """RDT's transformers as SDV sets them up: numeric columns keep their rounding and range, and
  their missing cells are drawn at the observed rate; categories stay as they are for CTGAN and
  TVAE, and become intervals of [0, 1] (UniformEncoder) for the copula."""
  from rdt import HyperTransformer
  from rdt.transformers.categorical import UniformEncoder
  from rdt.transformers.numerical import FloatFormatter

  transformers = {}
  for name, kind in kinds.items():
    if kind == "numerical":
      transformers[name] = FloatFormatter(
        missing_value_generation="random", learn_rounding_scheme=True, enforce_min_max_values=True
      )
    else:
      transformers[name] = UniformEncoder() if copula else None
  preprocessor = HyperTransformer()
  preprocessor.set_config({"sdtypes": dict(kinds), "transformers": transformers})
  return preprocessor


def epochs_for(budget_s: float, probes: dict[int, float]) -> int:
  """The epochs whose fit takes budget_s CPU seconds, from {epochs: CPU s} of three probe fits:
  cost = a + b E + c E^2 through them (ctgan's TVAE appends each epoch's losses to a growing
  DataFrame, so its cost per epoch grows with the epochs), a line where c <= 0."""
  a0, b, c = np.polyfit(list(probes), list(probes.values()), 2)[::-1]
  if c <= 0:
    a0, b = np.polyfit(list(probes), list(probes.values()), 1)[::-1]
    return max(1, round((budget_s - a0) / max(b, 1e-9)))
  return max(1, round((-b + np.sqrt(b * b + 4 * c * (budget_s - a0))) / (2 * c)))


def fit_to_budget(fit, budget_s: float):
  """(fit(epochs), epochs) for the epochs whose fit takes about budget_s CPU seconds.

  fit(epochs) returns a tuple whose last item is its CPU seconds. Three probe fits size the
  final one (`epochs_for`); a final fit off the budget by more than BUDGET_TOLERANCE (the probes
  mispredict it when other jobs share the cores) is redone once, with the probes' costs scaled
  by what the final fit cost against what they predicted.
  """
  first = fit(epochs=PROBE_EPOCHS)[-1]
  probes = {PROBE_EPOCHS: first}
  for share in PROBE_SHARES:
    count = max(2 * max(probes), round(share * budget_s * PROBE_EPOCHS / first))
    probes[count] = fit(epochs=count)[-1]
  epochs = epochs_for(budget_s, probes)
  result = fit(epochs=epochs)
  if abs(result[-1] - budget_s) > BUDGET_TOLERANCE * budget_s:  # the model said budget_s
    scale = result[-1] / budget_s
    epochs = epochs_for(budget_s, {count: cpu * scale for count, cpu in probes.items()})
    result = fit(epochs=epochs)
  return result, epochs


def synthesize(name: str, kinds, train: pd.DataFrame, n: int, budget_s: float, seed: int):
  """(n rows, fit CPU s, epochs) of the baseline `name` fitted to train (normalised); CTGAN and
  TVAE with the epochs that take about budget_s CPU seconds."""
  import torch
  from copulas.multivariate import GaussianMultivariate
  from copulas.univariate import BetaUnivariate
  from ctgan import CTGAN, TVAE

  discrete = [k for k, kind in kinds.items() if kind == "categorical"]

  def fit(epochs=None):
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (RDT and copulas draw from numpy's global state)
    start = time.process_time()
    preprocessor = _preprocessor(kinds, copula=name == "copula")
    rows = preprocessor.fit_transform(train)
    if name == "copula":
      model = GaussianMultivariate(distribution=BetaUnivariate, random_state=seed)
      model.fit(rows)
    else:
      model = {"ctgan": CTGAN, "tvae": TVAE}[name](epochs=epochs, cuda=False)
      model.set_random_state(seed)
      model.fit(rows, discrete_columns=discrete)
    return preprocessor, model, time.process_time() - start

  epochs = None
  if name == "copula":
    preprocessor, model, cpu = fit()
  else:
    fit(epochs=1)  # warms up torch
    (preprocessor, model, cpu), epochs = fit_to_budget(fit, budget_s)
  np.random.seed(seed)  # noqa: NPY002
  return preprocessor.reverse_transform(model.sample(n)), cpu, epochs


def quality(real: pd.DataFrame, synthetic: pd.DataFrame, kinds) -> dict:
  """sdmetrics' quality score and its two properties."""
  from sdmetrics.reports import QualityReport

  report = QualityReport()
  metadata = {"tables": {"table": {"columns": {k: {"sdtype": v} for k, v in kinds.items()}}}}
  report.generate({"table": real}, {"table": synthetic}, metadata, verbose=False)
  properties = report.get_properties().set_index("Property")["Score"]
  return {
    "score": float(report.get_score()),
    "column_shapes": float(properties["Column Shapes"]),
    "column_pair_trends": float(properties["Column Pair Trends"]),
  }


def mle(rows: pd.DataFrame, test: pd.DataFrame, kinds, target: str, seed: int) -> float:
  """Macro F1 on `test` of gradient-boosted trees fitted to `rows` (both normalised)."""
  features = [k for k in kinds if k != target]
  rows = rows[rows[target].notna()]
  test = test[test[target].notna()]

  # a category as its index among the test rows' categories, NaN otherwise
  categories = {k: sorted(test[k].dropna().unique()) for k in features if kinds[k] == "categorical"}

  def codes(values, known):
    index = pd.Categorical(values, categories=known).codes.astype(float)
    return np.where(index < 0, np.nan, index)

  def matrix(frame):
    columns = [
      codes(frame[k], categories[k]) if k in categories else frame[k].to_numpy(float)
      for k in features
    ]
    return np.stack(columns, axis=1)

  categorical = [kinds[k] == "categorical" for k in features]
  trees = HistGradientBoostingClassifier(categorical_features=categorical, random_state=seed)
  trees.fit(matrix(rows), rows[target].to_numpy(str))
  return float(f1_score(test[target].to_numpy(str), trees.predict(matrix(test)), average="macro"))


def run_seed(name: str, seed: int, steps: int, workdir: str, setting: table_study.Setting) -> dict:
  """Every score of one table and seed (module docstring)."""
  spec = real_tables.TABLES[name]  # fair's had_affair = affairs > 0: affairs would give it away
  target, table = spec.label, real_tables.load(name).drop(columns=list(spec.label_source))
  path, table, run = table_study.table_csv(name, table, workdir, seed, setting)
  spent = os.path.join(run, "train_cpu_s.json")  # the budget of a finished run, kept for reruns
  if not os.path.isfile(spent):
    start = table_study.cpu_seconds()
    table_study.main_job(run, path, "", seed, steps, "train", spec.columns, setting)
    with open(spent, "w") as f:
      json.dump(table_study.cpu_seconds() - start, f)
  table_study.check_trained(run, setting)
  with open(spent) as f:
    budget = json.load(f)
  result = {"table": name, "seed": seed, "steps": steps, "train_cpu_s": {"paramrel": budget}}
  result |= dataclasses.asdict(setting)

  model = paramrel_jax.load(run)
  kinds = {
    c.name: "categorical" if c.kind == "discrete" else "numerical" for c in model.schema.columns
  }
  train, test = tables.split(table, table_study.TEST_FRACTION, sources.SPLIT_SEED)
  n = min(len(train), MAX_ROWS)
  real = train.sample(n, random_state=seed) if n < len(train) else train
  train, test, real = (normalised(t, kinds) for t in (train, test, real))
  samples = {"paramrel": model.sample(n, seed=seed)}
  result["epochs"] = {}
  for synth in SYNTHESIZERS:
    samples[synth], cpu, epochs = synthesize(synth, kinds, train, n, budget, seed)
    result["train_cpu_s"][synth], result["epochs"][synth] = cpu, epochs
  samples = {k: normalised(rows, kinds) for k, rows in samples.items()}
  result["quality"] = {k: quality(train, rows, kinds) for k, rows in samples.items()}
  result["mle_f1"] = {k: mle(rows, test, kinds, target, seed) for k, rows in samples.items()}
  result["mle_f1"]["real"] = mle(real, test, kinds, target, seed)
  return result


def summarise(results: list[dict]) -> str:
  """A markdown table of the means and standard deviations over seeds, per table."""
  models = ("paramrel", *SYNTHESIZERS)
  lines = ["| table | score | ParamReL | Gaussian copula | CTGAN | TVAE | real rows |"]
  lines.append("|" + " --- |" * 7)

  def cell(values):
    values = np.asarray(values, float)
    return f"{values.mean():.3f} ± {values.std():.3f}" if len(values) > 1 else f"{values[0]:.3f}"

  for name, rows in table_study.by_variant(results).items():
    for score in ("score", "column_shapes", "column_pair_trends"):
      cells = [cell([r["quality"][k][score] for r in rows]) for k in models]
      lines.append(f"| {name} | quality: {score} | {' | '.join(cells)} | |")
    cells = [cell([r["mle_f1"][k] for r in rows]) for k in (*models, "real")]
    lines.append(f"| {name} | MLE macro F1 | {' | '.join(cells)} |")
    cells = [f"{np.mean([r['train_cpu_s'][k] for r in rows]):.0f}" for k in models]
    lines.append(f"| {name} | fit CPU s (mean) | {' | '.join(cells)} | |")
    epochs = [str(sorted({r["epochs"][k] for r in rows})) for k in ("ctgan", "tvae")]
    lines.append(
      f"| {name} | epochs (seeds) | {rows[0]['steps']} steps | | {' | '.join(epochs)} | |"
    )
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  args = table_study.parse_args(argv, __doc__.splitlines()[0], "runs/table_generation")
  warnings.filterwarnings("ignore", module="sdmetrics|rdt|ctgan|copulas|scipy")
  table_study.run_study(args, "table_generation", run_seed, summarise)


if __name__ == "__main__":
  main()
