"""CLI modes of a table run (`configs/tabular.py`): sample, reconstruct and impute, as CSV files.

  python -m paramrel_jax.main --config=configs/tabular.py --workdir=runs/penguins --mode=sample
  python -m paramrel_jax.main --config=configs/tabular.py --workdir=runs/penguins \
      --mode=impute --config.data.path=paramrel_jax/configs/penguins.csv

Each restores the latest checkpoint's EMA parameters (`api.TableModel`) and writes under
`workdir/<mode>/` CSV files in the table's own units and category names (the schema saved with
the run, `data.tables.TableSchema`) and a `summary.json`:
  sample       samples.csv: `sampling.num_samples` generated records (Eq. 4, z from the prior),
               and samples.npz with their codes `z`;
  reconstruct  inputs.csv and reconstructions.csv: the first `eval.num_examples` records of the
               evaluation split, reverse-sampled (Eq. 5) and replayed; summary.json holds the mean
               errors of `reverse_sampling.reconstruction_stats`;
  impute       imputed.csv: the whole table at data.path with every missing cell of the run's
               columns filled given the record's observed cells (`api.TableModel.impute`).
The image modes (conditional, interpolate, traverse) do not apply to records.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import pandas as pd

from paramrel_jax import data
from paramrel_jax.cli import outputs
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.data import tables
from paramrel_jax.evaluation import latents
from paramrel_jax.methods import interface
from paramrel_jax.training.logging_utils import stage


def _write_csv(table: pd.DataFrame, path: str) -> None:
  """Writes the table (process 0) through a temporary file, so no half-written CSV is left."""
  if outputs.writes():
    table.to_csv(f"{path}.tmp", index=False)
    os.replace(f"{path}.tmp", path)


def run_sample(config: ExperimentConfig, workdir: str) -> dict:
  """`sampling.num_samples` generated records -> sample/samples.csv (and z, samples.npz)."""
  model = outputs.load(config, workdir, "sample")
  cfg = config.sampling
  if latents.uses_prior(model.trained.model, config):
    with stage("fitting the latent prior to the training codes", enabled=outputs.writes()):
      model.latent_prior()
  with stage(f"sampling {cfg.num_samples} records", enabled=outputs.writes()):
    records, z = model.generate(cfg.num_samples, seed=config.seed)
  out = outputs.outdir(workdir, "sample")
  _write_csv(model.to_table(records), os.path.join(out, "samples.csv"))
  outputs.savez(os.path.join(out, "samples.npz"), z=z)
  return outputs.write_summary(
    out,
    {
      "step": model.step,
      "num_samples": cfg.num_samples,
      "num_steps": cfg.num_steps,
      "z_prior": cfg.z_prior,
      "seed": config.seed,
      "columns": list(model.schema.names),
    },
  )


def _eval_records(config: ExperimentConfig, num: int) -> dict[str, np.ndarray]:
  """The first `num` records of the evaluation split, {name: (num, 1)}."""
  it = data.create_eval_iterator(
    config.data,
    split=config.data.eval_split,
    batch_size=min(config.eval.batch_size, num),
    num_examples=num,
  )
  parts = [jax.tree.map(lambda a, b=b: a[b["mask"]], interface.batch_data(b)) for b in it]
  return jax.tree.map(lambda *leaves: np.concatenate(leaves)[:num], *parts)


def run_reconstruct(config: ExperimentConfig, workdir: str) -> dict:
  """Eval records reverse-sampled and replayed -> reconstruct/{inputs,reconstructions}.csv."""
  model = outputs.load(config, workdir, "reconstruct")
  num = min(config.eval.num_examples, data.dataset_info(config.data).num_eval)
  x0 = _eval_records(config, num)
  with stage(f"reconstructing {num} records", enabled=outputs.writes()):
    result = model.reconstruct_arrays(x0, seed=config.seed)
  out = outputs.outdir(workdir, "reconstruct")
  _write_csv(model.to_table(x0), os.path.join(out, "inputs.csv"))
  _write_csv(model.to_table(result.pop("reconstruction")), os.path.join(out, "reconstructions.csv"))
  result.pop("reconstruction_flow")
  summary = {"step": model.step, "num_examples": num, "num_steps": config.sampling.num_steps}
  summary.update({f"mean_{name}": float(np.mean(value)) for name, value in result.items()})
  return outputs.write_summary(out, summary)


def run_impute(config: ExperimentConfig, workdir: str, path: str) -> dict:
  """The table at `path` with its missing cells filled -> impute/imputed.csv.

  `config` is the run's, with the table it was trained on (main: `--config.data.path` names the
  table to fill, which may have any number of rows and gaps anywhere, its label included).
  """
  model = outputs.load(config, workdir, "impute")
  table = tables.read_table(path)
  missing = {name: int(table[name].isna().sum()) for name in model.schema.names if name in table}
  with stage(
    f"imputing {sum(missing.values())} cells of {len(table)} records", enabled=outputs.writes()
  ):
    filled = model.impute(table, seed=config.seed)
  out = outputs.outdir(workdir, "impute")
  _write_csv(filled, os.path.join(out, "imputed.csv"))
  return outputs.write_summary(
    out,
    {
      "step": model.step,
      "input": os.path.abspath(path),
      "num_records": len(table),
      "filled_cells": missing,
      "num_steps": config.sampling.num_steps,
      "seed": config.seed,
    },
  )


MODES = {"sample": run_sample, "reconstruct": run_reconstruct}  # and run_impute, given a table
