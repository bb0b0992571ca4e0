r"""The table study (issue 32, items 6-7), its first part: ParamReL on real tables against PCA, an
autoencoder, mean / mode filling and scikit-learn's IterativeImputer.

  .venv/bin/python -m experiments.table_study --tables penguins --seeds 0 1 2

Needs the extra `tables` (`experiments.real_tables`). Per table and seed, the main job trains
`configs/tabular.py` on the table (its label kept out of the model) for `--steps` steps, and then:

  likelihood  nats per record on the test split (--mode=eval: test_loss, neg_elbo);
  probe       5-fold logistic-probe AUROC of the label from the codes of every row
              (`metrics.latent_auroc`, as on mnist10k): ParamReL's z (`LoadedModel.encode`), PCA
              and an autoencoder (scikit-learn's MLPRegressor, bottleneck of L units) of the same
              encoding, L = model.latent_dim;
  imputation  10 % and 30 % of the observed cells of the first 2,000 test rows hidden at random
              (seeded); ParamReL (`TableModel.impute`: its point estimate from 16 pooled
              imputations, and one draw),
              mean / mode and IterativeImputer fill them: accuracy on the discrete columns, RMSE
              over the training std on the others (mean over columns).

The encoding of the baselines is the model's schema with the range map for continuous columns
(`range_scaled`, whatever the model's `--scaling`): continuous and discretised columns in
[-1, 1] (`TableSchema.encode`), discrete ones one-hot; PCA and the AE see missing cells as the
column mean (0 one-hot), IterativeImputer imputes the numeric codes (a category as its index,
rounded). Each row reports the CPU seconds of its fit. The generation metrics (sdmetrics'
quality report, machine-learning efficiency; CTGAN, TVAE and a Gaussian copula) are
`table_generation.py`'s.
Writes `<out>/table_study.json` (keeping the saved results of other tables, seeds and settings)
and `.md`. `--scaling` and `--weighting` set the runs' data.scaling and
objective.latent_weighting (`Setting`); runs live in `<workdir>/<table>/seed<k>`, with a folder
per setting other than the config's (`<workdir>/<table>/quantile/flat_both/seed<k>`), and resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.experimental import enable_iterative_imputer  # noqa: F401 (registers the class)
from sklearn.impute import IterativeImputer
from sklearn.neural_network import MLPRegressor

import paramrel_jax
from experiments import real_tables
from paramrel_jax.config.objective import LATENT_WEIGHTINGS
from paramrel_jax.configs import tabular
from paramrel_jax.data import sources, tables
from paramrel_jax.metrics import latent_auroc
from paramrel_jax.training.workdir_utils import saved_run_settings

HIDE_FRACTIONS = (0.1, 0.3)
TEST_FRACTION = 0.2  # configs/tabular.py
MAX_IMPUTED_ROWS = 2000  # imputation is scored on at most this many test rows (diamonds: 10,788)
WEIGHTING = tabular.get_config().objective.latent_weighting  # the config's
LEGACY_WEIGHTING = "flat_both"  # the weighting of results saved before they named theirs


@dataclasses.dataclass(frozen=True)
class Setting:
  """The model settings a study varies: data.scaling and objective.latent_weighting."""

  scaling: str = "range"
  weighting: str = WEIGHTING

  def overrides(self) -> list[str]:
    """The main job's flags that set them."""
    return [
      f"--config.data.scaling={self.scaling}",
      f"--config.objective.latent_weighting={self.weighting}",
    ]

  def _others(self) -> list[tuple[str, str]]:
    """(value, name) of each setting other than the config's."""
    pairs = ((self.scaling, "range", "scaling"), (self.weighting, WEIGHTING, "weighting"))
    return [(value, name) for value, default, name in pairs if value != default]

  def folders(self) -> tuple[str, ...]:
    """The run directory's folders between the table and the seed: one per setting other than
    the config's ('quantile', 'flat_both'; none for the config's own)."""
    return tuple(value for value, _ in self._others())

  def label(self, name: str) -> str:
    """'penguins', or 'penguins (quantile scaling, flat_both weighting)' for other settings."""
    parts = [f"{value} {setting}" for value, setting in self._others()]
    return f"{name} ({', '.join(parts)})" if parts else name

  @classmethod
  def of(cls, result: dict) -> Setting:
    """The setting of a saved result (results saved before a setting existed: range scaling,
    flat_both weighting)."""
    return cls(result.get("scaling", "range"), result.get("weighting", LEGACY_WEIGHTING))


def cpu_seconds() -> float:
  """CPU seconds of this process and its finished children."""
  own, children = (
    resource.getrusage(resource.RUSAGE_SELF),
    resource.getrusage(resource.RUSAGE_CHILDREN),
  )
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main_job(
  workdir: str,
  path: str,
  label: str,
  seed: int,
  steps: int,
  mode: str,
  columns: str = "",
  setting: Setting = Setting(),
) -> None:
  args = [
    sys.executable,
    "-m",
    "paramrel_jax.main",
    "--config=configs/tabular.py",
    f"--workdir={workdir}",
    f"--config.data.path={path}",
    f"--config.data.label={label}",
    f"--config.data.columns={columns}",
    *setting.overrides(),
    f"--config.seed={seed}",
    f"--config.training.num_steps={steps}",
    f"--mode={mode}",
  ]
  result = subprocess.run(args, capture_output=True, text=True)
  if result.returncode:
    raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")


def check_trained(run: str, setting: Setting) -> None:
  """Raises unless the run in `run` was trained with setting's weighting (a run directory of
  an older study resumes with the settings it was trained with, whatever the flags ask)."""
  trained = saved_run_settings(run)["objective.latent_weighting"]
  if trained != setting.weighting:
    raise RuntimeError(
      f"{run} holds a run trained with latent_weighting={trained!r}, not "
      f"{setting.weighting!r}: remove it, or pass another --workdir."
    )


def design(schema: tables.TableSchema, table: pd.DataFrame) -> np.ndarray:
  """The baselines' matrix (N, D): numeric columns in [-1, 1], discrete ones one-hot; a missing
  cell is the column's mean over the rows (0 one-hot)."""
  record, _ = schema.encode(table)
  parts = []
  for column in schema.columns:
    values = record[column.name][:, 0]
    if column.kind == "discrete":
      parts.append((values[:, None] == np.arange(column.num_classes)).astype(np.float32))
    else:
      parts.append(np.where(np.isnan(values), np.nanmean(values), values)[:, None])
  return np.concatenate(parts, axis=1)


def autoencoder_codes(x: np.ndarray, latent_dim: int, seed: int) -> np.ndarray:
  """The bottleneck (N, L) of an MLP autoencoder (64, L, 64 units, ReLU) fitted to x."""
  ae = MLPRegressor(hidden_layer_sizes=(64, latent_dim, 64), max_iter=2000, random_state=seed)
  ae.fit(x, x)
  h = x
  for weights, bias in zip(ae.coefs_[:2], ae.intercepts_[:2], strict=True):
    h = np.maximum(h @ weights + bias, 0.0)
  return h


def _hide(table: pd.DataFrame, names, fraction: float, seed: int) -> pd.DataFrame:
  """A mask (N, columns) of `fraction` of the observed cells of `names`, drawn with `seed`."""
  observed = table[list(names)].notna().to_numpy()
  rng = np.random.default_rng(seed)
  return pd.DataFrame(observed & (rng.random(observed.shape) < fraction), columns=list(names))


def with_gaps(table: pd.DataFrame, hidden: pd.DataFrame) -> pd.DataFrame:
  """`table` with the cells of the mask `hidden` emptied (bool and int columns become objects)."""
  gaps = table.copy()
  for name in hidden.columns:
    rows = hidden[name].to_numpy()
    if rows.any():
      gaps[name] = gaps[name].astype(object)
      gaps.loc[rows, name] = None
  return gaps


def _score(schema, truth: pd.DataFrame, filled: pd.DataFrame, hidden: pd.DataFrame, stds) -> dict:
  """Accuracy over the hidden discrete cells, mean RMSE / std over the numeric columns."""
  hits, errors = [], []
  for column in schema.columns:
    rows = hidden[column.name].to_numpy()
    if not rows.any():
      continue
    want, got = truth[column.name].to_numpy()[rows], filled[column.name].to_numpy()[rows]
    if column.kind == "discrete":
      hits.append(np.mean([str(a) == str(b) for a, b in zip(want, got, strict=True)]))
    else:
      error = np.asarray(want, float) - np.asarray(got, float)
      errors.append(np.sqrt(np.mean(error**2)) / stds[column.name])
  return {"accuracy": float(np.mean(hits)), "rmse_over_std": float(np.mean(errors))}


def _codes(schema, table: pd.DataFrame) -> np.ndarray:
  """The table's records as one float matrix (N, columns): a category as its index, NaN where a
  cell is missing."""
  record, _ = schema.encode(table)
  codes = np.concatenate([record[name].astype(float) for name in schema.names], axis=1)
  for k, column in enumerate(schema.columns):
    if column.kind == "discrete":
      codes[codes[:, k] < 0, k] = np.nan  # MISSING_CLASS
  return codes


def _baseline_fills(schema, train: pd.DataFrame, gaps: pd.DataFrame, seed: int) -> dict:
  """{name: filled table} of mean / mode and IterativeImputer (fitted on train and the gaps)."""
  fills = {"mean_mode": gaps.copy()}
  for column in schema.columns:
    values = train[column.name].dropna()
    fill = values.mode().iloc[0] if column.kind == "discrete" else values.mean()
    filled = gaps[column.name].copy()
    filled[filled.isna()] = fill  # no fillna: it would downcast object columns
    fills["mean_mode"][column.name] = filled
  names = list(schema.names)
  codes = _codes(schema, gaps)
  imputer = IterativeImputer(random_state=seed, max_iter=20)
  imputer.fit(np.concatenate([_codes(schema, train), codes]))
  done = imputer.transform(codes)
  filled = {}
  for k, column in enumerate(schema.columns):
    value = done[:, k : k + 1]
    if column.kind == "discrete":
      value = np.clip(np.round(value), 0, column.num_classes - 1).astype(np.int32)
    filled[column.name] = value.astype(np.int32 if column.kind == "discrete" else np.float32)
  fills["iterative_imputer"] = gaps.copy()
  decoded = schema.decode(filled)
  for name in names:
    missing = gaps[name].isna().to_numpy()
    column = fills["iterative_imputer"][name].astype(object)
    column[missing] = decoded[name].to_numpy()[missing]
    fills["iterative_imputer"][name] = column
  return fills


def table_csv(
  name: str, table: pd.DataFrame, workdir: str, seed: int, setting: Setting = Setting()
) -> tuple[str, pd.DataFrame, str]:
  """Writes `table` to <workdir>/<name>/table.csv and makes the seed's run directory.

  Returns:
    (path of the CSV, the table read back from it: the rows exactly as the model reads them,
    the run directory <workdir>/<name>/<setting.folders()>/seed<seed>).
  """
  run = os.path.join(workdir, name, *setting.folders(), f"seed{seed}")
  os.makedirs(run, exist_ok=True)
  path = os.path.join(workdir, name, "table.csv")
  table.to_csv(path, index=False)
  return path, pd.read_csv(path), run


def range_scaled(schema: tables.TableSchema) -> tables.TableSchema:
  """The schema with every continuous column on the linear range map: the baselines' encoding,
  the same whatever scaling the model uses."""
  plain = dict(scaling="range", knots=(), levels=())
  return tables.TableSchema(
    tuple(dataclasses.replace(column, **plain) for column in schema.columns), schema.label
  )


def run_seed(name: str, seed: int, steps: int, workdir: str, setting: Setting) -> dict:
  """Every score of one table and seed (module docstring)."""
  info = real_tables.TABLES[name]
  path, table, run = table_csv(name, real_tables.load(name), workdir, seed, setting)
  start = cpu_seconds()
  main_job(run, path, info.label, seed, steps, "train", info.columns, setting)
  check_trained(run, setting)
  result = {"table": name, "seed": seed, "steps": steps, "train_cpu_s": cpu_seconds() - start}
  result |= dataclasses.asdict(setting)
  main_job(run, path, info.label, seed, steps, "eval", info.columns, setting)
  with open(os.path.join(run, "eval", "metrics.json")) as f:
    nats = json.load(f)["likelihood"]["nats_per_record"]
  result["nats_per_record"] = {k: nats[k] for k in ("test_loss", "neg_elbo")}

  model = paramrel_jax.load(run)
  schema = range_scaled(model.schema)
  labels = schema.label.encode(table[schema.label.name])[:, 0]
  keep = labels >= 0
  x = design(schema, table)[keep]
  codes = {"paramrel": model.encode(table, seed=seed)[keep]}
  start = cpu_seconds()
  codes["pca"] = PCA(model.latent_dim, random_state=seed).fit_transform(x)
  codes["ae"] = autoencoder_codes(x, model.latent_dim, seed)
  result["baseline_fit_cpu_s"] = cpu_seconds() - start
  result["probe_auroc"] = {
    row: latent_auroc(z, labels[keep], seed=seed)["auroc_mean"] for row, z in codes.items()
  }

  train, test = tables.split(table, TEST_FRACTION, sources.SPLIT_SEED)
  test = test.iloc[:MAX_IMPUTED_ROWS]
  stds = {
    c.name: float(pd.to_numeric(train[c.name]).std())
    for c in schema.columns
    if c.kind != "discrete"
  }
  result["imputation"] = {}
  for fraction in HIDE_FRACTIONS:
    hidden = _hide(test, schema.names, fraction, seed)
    gaps = with_gaps(test, hidden)
    fills = {
      "paramrel": model.impute(gaps, seed=seed, draw=False),
      "paramrel_draw": model.impute(gaps, seed=seed),
      **_baseline_fills(schema, train, gaps, seed),
    }
    result["imputation"][str(fraction)] = {
      row: _score(schema, test, filled, hidden, stds) for row, filled in fills.items()
    }
  return result


def summarise(results: list[dict]) -> str:
  """A markdown table of the means and standard deviations over seeds, per table."""
  lines = [
    "| table | score | ParamReL | ParamReL, a draw | PCA | AE | mean / mode | IterativeImputer |",
    "|" + " --- |" * 8,
  ]

  def cell(values):
    values = np.asarray(values, float)
    return f"{values.mean():.3f} ± {values.std():.3f}" if len(values) > 1 else f"{values[0]:.3f}"

  for name, rows in by_variant(results).items():
    probe = [cell([r["probe_auroc"][k] for r in rows]) for k in ("paramrel", "pca", "ae")]
    lines.append(f"| {name} | probe AUROC | {probe[0]} | | {probe[1]} | {probe[2]} | | |")
    for fraction in HIDE_FRACTIONS:
      for score in ("accuracy", "rmse_over_std"):
        values = [
          cell([r["imputation"][str(fraction)][k][score] for r in rows])
          for k in ("paramrel", "paramrel_draw", "mean_mode", "iterative_imputer")
        ]
        lines.append(
          f"| {name} | imputation {score}, {fraction:.0%} hidden | {values[0]} | {values[1]} | | "
          f"| {values[2]} | {values[3]} |"
        )
    nats = cell([r["nats_per_record"]["neg_elbo"] for r in rows])
    cpu = cell([r["train_cpu_s"] for r in rows])
    lines.append(f"| {name} | -ELBO nats / record (train CPU s {cpu}) | {nats} | | | | | |")
  return "\n".join(lines) + "\n"


def variant(result: dict) -> tuple[str, Setting]:
  """(table, setting) of a result."""
  return result["table"], Setting.of(result)


def by_variant(results: list[dict]) -> dict[str, list[dict]]:
  """{`Setting.label`: its results}, in order of table and setting."""
  groups = {}
  for result in sorted(results, key=lambda r: (r["table"], dataclasses.astuple(Setting.of(r)))):
    name, setting = variant(result)
    groups.setdefault(setting.label(name), []).append(result)
  return groups


def parse_args(argv, description: str, workdir: str) -> argparse.Namespace:
  """The command line of the table studies: --tables, --seeds, --steps, --scaling, --weighting,
  --workdir, --out."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument(
    "--tables", nargs="+", default=["penguins"], choices=sorted(real_tables.TABLES)
  )
  parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
  parser.add_argument("--steps", type=int, default=8000)
  parser.add_argument(
    "--scaling", default="range", choices=tables.SCALINGS, help="the runs' data.scaling"
  )
  parser.add_argument(
    "--weighting",
    default=WEIGHTING,
    choices=LATENT_WEIGHTINGS,
    help="the runs' objective.latent_weighting",
  )
  parser.add_argument("--workdir", default=workdir)
  parser.add_argument("--out", default="experiments/results/table_study")
  return parser.parse_args(argv)


def run_study(args: argparse.Namespace, stem: str, run_seed, summarise) -> None:
  """run_seed(table, seed, steps, workdir, setting) -> dict for every table and seed of args,
  saved after each in <out>/<stem>.json (the saved results of other tables, seeds and settings
  are kept) and summarise(results) -> markdown in <out>/<stem>.md."""
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, f"{stem}.json")
  results = []
  if os.path.isfile(path):
    with open(path) as f:
      results = json.load(f)
  setting = Setting(args.scaling, args.weighting)
  for name in args.tables:
    for seed in args.seeds:
      began = time.time()
      key = (name, setting, seed)
      results = [r for r in results if (*variant(r), r["seed"]) != key]
      results.append(run_seed(name, seed, args.steps, args.workdir, setting))
      print(f"{name} seed {seed}: {time.time() - began:.0f} s", flush=True)
      with open(path, "w") as f:
        json.dump(results, f, indent=1)
      with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
        f.write(summarise(results))


def main(argv=None) -> None:
  args = parse_args(argv, __doc__.splitlines()[0], "runs/table_study")
  run_study(args, "table_study", run_seed, summarise)


if __name__ == "__main__":
  main()
