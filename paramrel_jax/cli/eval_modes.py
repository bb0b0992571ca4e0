"""The command-line modes `--mode=eval` and `--mode=export_latents` on a trained run directory.

  python -m paramrel_jax.main --config=configs/bmnist.py --workdir=runs/bmnist --mode=eval
  python -m paramrel_jax.main --config=configs/bmnist.py --workdir=runs/bmnist \
      --mode=export_latents
  python -m paramrel_jax.main --config=configs/bmnist.py --workdir=runs/bmnist \
      --mode=plot_latents

All restore the EMA parameters of the latest checkpoint in `workdir` (`runs.restore`).
`run_eval` writes `workdir/eval/metrics.json`: for a model with a Bayesian flow the test
likelihood of the evaluation split (`likelihood.evaluate_likelihood` with the `eval` section's
settings; with sampling.z_prior='fitted' also the bound against the fitted prior), and for any
model the full result of every latent evaluator configured in `evals`, with the checkpoint step,
a summary of the config and the library versions.
`run_export_latents` writes `workdir/latents/<split>.npz` for the training and evaluation splits
(`latents.export_latents`, any model's codes; layout in `paramrel_jax.evaluation.latents`).
`run_plot_latents` exports them and writes their PCA and t-SNE pictures,
`workdir/plot_latents/<split>_{pca,tsne}.png` (`latent_plots.save_projections`).

This module loads checkpoints through the trainer's code, so it is imported only by `main.py`
and scripts, never by the trainer.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform

import flax
import jax
import numpy as np
import optax
import sklearn

import paramrel_jax
from paramrel_jax import data
from paramrel_jax.cli import outputs
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.evaluation import evaluators, latent_plots, latents, likelihood
from paramrel_jax.methods import interface
from paramrel_jax.training import checkpointing, runs, workdir_utils
from paramrel_jax.viz import plots

EVAL_DIR = "eval"
PLOTS_DIR = "plot_latents"
METRICS_FILE = "metrics.json"
# Characters of TFDS split strings ('train[:90%]') mapped to ones safe in file names.
_SPLIT_CHARS = str.maketrans({"[": "_", "]": "", ":": "-", "%": "pc", "/": "_", " ": ""})


def _package_version() -> str:
  """The installed distribution's version; the source tree's, marked so, when run uninstalled."""
  try:
    return importlib.metadata.version("paramrel-jax")
  except importlib.metadata.PackageNotFoundError:
    return f"{paramrel_jax.__version__} (source tree, not installed)"


def versions() -> dict[str, str]:
  """Versions of Python and the libraries that determine the numbers."""
  return {
    "paramrel_jax": _package_version(),
    "python": platform.python_version(),
    "jax": jax.__version__,
    "flax": flax.__version__,
    "optax": optax.__version__,
    "numpy": np.__version__,
    "sklearn": sklearn.__version__,
  }


def config_summary(config: ExperimentConfig, workdir: str) -> dict:
  """What identifies the evaluated model: data, flow and network settings, and the config file."""
  return {
    "config_file": os.path.join(os.path.abspath(workdir), workdir_utils.CONFIG_FILE),
    "dataset": config.data.name,
    "source": config.data.source,
    "data_type": config.flow.data_type,
    "flow": repr(config.flow),
    "latent_dim": config.network.latent_dim,
    "encoder": config.network.encoder,
    "seed": config.seed,
  }


def latents_path(workdir: str, split: str) -> str:
  """workdir/latents/<split>.npz, the split string made safe for a file name."""
  return os.path.join(workdir, latents.LATENTS_DIR, f"{split.translate(_SPLIT_CHARS)}.npz")


def run_eval(config: ExperimentConfig, workdir: str) -> dict:
  """Evaluates the latest checkpoint of `workdir`; writes and returns workdir/eval/metrics.json.

  Raises:
    checkpointing.CheckpointError: no checkpoint, or one that does not fit the config.
    ValueError: a bad evaluation setting, or an evaluator that does not apply (naming it).
  """
  model = runs.restore(config, workdir)
  ecfg = config.eval
  configured = evaluators.build_evaluators(config, model.model)
  result = {
    "step": model.step,
    "config": config_summary(config, workdir),
    "versions": versions(),
  }
  if interface.has(model.model, interface.FLOW):  # a baseline has no BFN likelihood
    prior = latents.latent_prior(
      model.model,
      model.params,
      config,  # what sampling draws from
      path=latents.prior_path(workdir, model.step, config),
    )
    result["likelihood"] = likelihood.evaluate_likelihood(
      model.model,
      model.params,
      config.data,
      split=config.data.eval_split,
      batch_size=ecfg.batch_size,
      num_examples=ecfg.num_examples,
      loss_steps=ecfg.loss_steps,
      n_repeats=ecfg.n_repeats,
      sample_z=config.objective.posterior == "gaussian",
      seed=config.seed,
      prior=None if prior is None else (prior.mean, prior.covariance()),
    )
  for evaluator in configured:
    if evaluator.kind != "likelihood":
      result[evaluator.name] = {
        **evaluator.evaluate(model.model, model.params),
        "settings": evaluator.settings,
      }
  result = evaluators.jsonable(result)
  if outputs.writes():
    directory = os.path.join(workdir, EVAL_DIR)
    os.makedirs(directory, exist_ok=True)
    checkpointing.dump_json(os.path.join(directory, METRICS_FILE), result)
    for evaluator in configured:
      if evaluator.kind == "dci":
        _save_importance(
          os.path.join(directory, f"{evaluator.name}_importance.png"), result[evaluator.name]
        )
  return result


def _importance(dci: dict) -> np.ndarray:
  """(L, K) importance matrix of a DCI result (the folds' mean for the quick protocol)."""
  if "importance_matrix" in dci:
    return np.asarray(dci["importance_matrix"])
  return np.mean([fold["importance_matrix"] for fold in dci["per_fold"]], axis=0)


def factor_of_units(workdir: str, latent_dim: int) -> list[str] | None:
  """The factor each latent unit matters most for, by the DCI result of the last --mode=eval.

  Returns:
    L labels 'factor (share of the unit's importance)', or None without a DCI result for
    `latent_dim` units in workdir/eval/metrics.json.
  """
  path = os.path.join(workdir, EVAL_DIR, METRICS_FILE)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    result = json.load(f)
  for value in result.values():
    if (
      isinstance(value, dict)
      and "factor_names" in value
      and ("importance_matrix" in value or "per_fold" in value)
    ):
      matrix = _importance(value)
      if matrix.shape[0] != latent_dim:
        return None
      share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1e-12)
      names = value["factor_names"]
      return [f"{names[k]} ({share[d, k]:.0%})" for d, k in enumerate(share.argmax(axis=1))]
  return None


def _save_importance(path: str, dci: dict) -> None:
  """The DCI importance matrix as a heat map: a row per latent unit, a column per factor."""
  matrix = _importance(dci)
  headline = evaluators.DciEvaluator.headline(dci)
  title = (
    f"DCI importance ({dci.get('protocol', 'quick')}): D {headline['disentanglement']:.3f}"
    f" C {headline['completeness']:.3f} I {headline['informativeness']:.3f}"
  )
  plots.save_heatmap(
    path, matrix, [f"z[{d}]" for d in range(len(matrix))], list(dci["factor_names"]), title
  )


def run_export_latents(
  config: ExperimentConfig, workdir: str, *, num_examples: dict[str, int] | None = None
) -> dict[str, str]:
  """Writes workdir/latents/<split>.npz for the training and evaluation splits.

  Each file holds the first `eval.num_examples` examples of its split (all when the split is
  smaller), or `num_examples[split]` where that is more, codes at `eval.latent_time` and
  `eval.latent_times`, and the dataset's labels.

  Returns:
    {split: path of its file}.

  Raises:
    checkpointing.CheckpointError: no checkpoint, or one that does not fit the config.
    ValueError: the model has no latents (latent_dim = 0), or a bad setting.
  """
  model = runs.restore(config, workdir)
  ecfg = config.eval
  paths = {}
  for split in dict.fromkeys((config.data.train_split, config.data.eval_split)):
    arrays = latents.export_latents(
      model.model,
      model.params,
      config.data,
      split=split,
      batch_size=ecfg.batch_size,
      num_examples=max(ecfg.num_examples, (num_examples or {}).get(split, 0)),
      latent_time=ecfg.latent_time,
      latent_times=ecfg.latent_times,
      seed=config.seed,
    )
    paths[split] = latents_path(workdir, split)
    if outputs.writes():
      latents.save_latents(paths[split], arrays)
  return paths


def run_plot_latents(config: ExperimentConfig, workdir: str) -> dict[str, dict[str, str]]:
  """`run_export_latents`, then the PCA and t-SNE pictures of each split's codes, coloured by
  the label, each attribute or each factor: workdir/plot_latents/<split>_<method>.png.

  Returns:
    {split: {method: path of its PNG}}.

  Raises:
    checkpointing.CheckpointError: no checkpoint, or one that does not fit the config.
    ValueError: the model has fewer than 2 latent dimensions, or a split fewer than 3 examples.
  """
  info = data.dataset_info(config.data)
  written = {}
  for split, path in run_export_latents(config, workdir).items():
    name = os.path.splitext(os.path.basename(path))[0]
    if outputs.writes():
      written[split] = latent_plots.save_projections(
        os.path.join(workdir, PLOTS_DIR),
        name,
        latents.load_latents(path),
        attribute_names=info.attribute_names,
        factor_names=info.factor_names,
        seed=config.seed,
      )
  return written
