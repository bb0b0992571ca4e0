"""One row of a latent study: train (or resume) a run, evaluate it, export its codes, score them.

Every row, ParamReL or a baseline, goes
through the same steps, so rows differ only in their configs:

  1. `train.train_and_evaluate` (resumes from the workdir);
  2. `eval_modes.run_eval`: with a Bayesian flow (ParamReL) the test loss and negative ELBO;
  3. `eval_modes.run_export_latents`, the codes of the first `eval.num_examples` examples of both
     splits (ParamReL: the encoder mean at `eval.latent_time`; a baseline: its posterior mean);
  4. the latent evaluators' `score` (`evaluators.AurocEvaluator`, `DciEvaluator`,
     `TadEvaluator`) on the evaluation split's codes;
  5. from the run's `metrics.jsonl`: the last logged loss terms and latent diagnostics
     (z_shuffle_gap, active_dims), the logged evaluator scalars per step (a learning curve) and
     the training time without compilation and evaluations.

`pca_row` scores the PCA of the pixels, the floor every learned code should beat.
`sample_quality` judges a finished run's prior samples against the evaluation split.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import ml_collections
import numpy as np

from paramrel_jax import api, metrics
from paramrel_jax.cli import eval_modes
from paramrel_jax.config import configuration
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.evaluation import evaluators, latents
from paramrel_jax.training import runs, train, workdir_utils

LATENT_KINDS = ("auroc", "dci", "tad")


def scorers(
  config: ExperimentConfig, scores: dict[str, dict[str, Any]]
) -> list[evaluators.LatentEvaluator]:
  """Latent evaluators of `scores` (name -> settings as in `config.evals`, 'every' not needed).

  Raises:
    ValueError: an evaluator that is not a latent one, or any error of its construction.
  """
  built = []
  for name, settings in scores.items():
    kind = settings.get("type", name)
    if kind not in LATENT_KINDS:
      raise ValueError(f"study score {name!r}: {kind!r} is not a latent evaluator {LATENT_KINDS}.")
    # Built as in-training evaluators (whose cadence must be a multiple of log_every), scoring
    # the evaluation split's codes unless the settings name a split (the standard DCI protocol
    # needs 15,000 training codes).
    settings = {"split": config.data.eval_split, **settings, "every": config.training.log_every}
    built.append(evaluators.EVALUATORS[kind](config, settings, name))
  return built


def codes_needed(built: list[evaluators.LatentEvaluator]) -> dict[str, int]:
  """{split: the most codes any evaluator of `built` scores on it}."""
  needed: dict[str, int] = {}
  for e in built:
    split = e.settings["split"]
    needed[split] = max(needed.get(split, 0), e.settings["num_examples"])
  return needed


def score_codes(
  built: list[evaluators.LatentEvaluator], codes: dict[str, dict[str, np.ndarray]]
) -> dict:
  """{name: JSON-able result} of every evaluator on the first `num_examples` codes of its split.

  Args:
    built: the evaluators (`scorers`).
    codes: {split: {'z': (N, L) codes, and the split's annotations (N, ...)}}.
  """
  results = {}
  for e in built:
    arrays = codes[e.settings["split"]]
    n = e.settings["num_examples"]
    results[e.name] = evaluators.jsonable(e.score({k: v[:n] for k, v in arrays.items()}))
  return results


def read_log(workdir: str) -> dict:
  """The run's metrics.jsonl summarised: last values, per-step eval scalars, training seconds."""
  path = os.path.join(workdir, "metrics.jsonl")
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  if not rows:
    raise ValueError(f"{path} holds no logged steps.")
  seconds, previous = 0.0, 0
  for row in rows:  # steps_per_sec excludes compilation, diagnostics and evaluators
    if row["step"] > previous and row.get("steps_per_sec"):
      seconds += (row["step"] - previous) / row["steps_per_sec"]
    previous = row["step"]
  curve = [
    {"step": r["step"], **{k: v for k, v in r.items() if k.startswith("eval/")}}
    for r in rows
    if any(k.startswith("eval/") for k in r)
  ]
  last = {k: v for k, v in rows[-1].items() if not k.startswith("eval/")}
  return {"last": last, "curve": curve, "train_seconds": round(seconds, 1)}


def train_run(
  config: ml_collections.ConfigDict,
  resolved: ExperimentConfig,
  workdir: str,
  *,
  export: bool = True,
  num_examples: dict[str, int] | None = None,
) -> dict:
  """Trains or resumes the run of `config` in `workdir`, evaluates it and exports its codes.

  Args:
    config, resolved: the run's config and its resolution, as `runs.settle` gives them.
    workdir: the run directory.
    export: also write latents/<split>.npz (needs latent_dim > 0).
    num_examples: {split: codes to export} where more than eval.num_examples are needed.

  Returns:
    {'workdir', 'model_kind', 'train_seconds' (this call's training, compiles included), 'step',
    'likelihood' (None without a Bayesian flow), 'versions', 'latents' ({split: path})}.
  """
  workdir_utils.prepare_workdir(workdir, config)
  start = time.perf_counter()
  train.train_and_evaluate(resolved, workdir)
  train_seconds = time.perf_counter() - start
  evaluated = eval_modes.run_eval(resolved, workdir)  # the likelihood needs a Bayesian flow
  return {
    "workdir": workdir,
    "model_kind": resolved.model_kind,
    "train_seconds": round(train_seconds, 1),
    "step": evaluated["step"],
    "likelihood": evaluated.get("likelihood"),
    "versions": evaluated["versions"],
    "latents": (
      eval_modes.run_export_latents(resolved, workdir, num_examples=num_examples) if export else {}
    ),
  }


def run_row(
  config: ml_collections.ConfigDict,
  workdir: str,
  scores: dict[str, dict[str, Any]],
  *,
  export: bool = True,
) -> dict:
  """`train_run`, then the latent evaluators of `scores` on the evaluation split's codes.

  Args:
    config: the run's config; a run already saved in workdir keeps its run settings (`runs.settle`).
    workdir: the run directory.
    scores: latent evaluators (name -> settings) applied to the evaluation split's codes.
    export: export and score the codes (False for a run without latents, e.g. a plain BFN).

  Returns:
    {'workdir', 'model_kind', 'step', 'likelihood' (None for a baseline), 'log' (`read_log`),
    'scores' ({name: result})}.
  """
  config, resolved = runs.settle(config, workdir)
  built = scorers(resolved, scores)  # bad settings fail before training
  needed = codes_needed(built)
  run = train_run(config, resolved, workdir, export=export, num_examples=needed)
  result_scores = {}
  if export:
    codes = {split: latents.load_latents(path) for split, path in run["latents"].items()}
    result_scores = score_codes(built, codes)
  return {
    "workdir": workdir,
    "model_kind": run["model_kind"],
    "step": run["step"],
    "likelihood": run["likelihood"],
    "log": read_log(workdir),
    "scores": result_scores,
  }


def pca_row(config: ml_collections.ConfigDict, scores: dict[str, dict[str, Any]]) -> dict:
  """The floor: PCA with `model.latent_dim` components of the pixels, fitted on the first
  `eval.num_examples` training images, scored on each evaluator's split like `run_row`'s codes."""
  resolved = configuration.resolve(config)
  built = scorers(resolved, scores)
  train_split, fit = resolved.data.train_split, resolved.eval.num_examples
  needed = codes_needed(built)
  needed[train_split] = max(needed.get(train_split, 0), fit)
  codes = {
    split: latents.export_pixels(
      resolved.data, split=split, batch_size=resolved.eval.batch_size, num_examples=n
    )
    for split, n in needed.items()
  }
  splits = list(codes)
  _, features = metrics.pca_features(
    codes[train_split]["z"][:fit],
    np.concatenate([codes[s]["z"] for s in splits]),
    resolved.network.latent_dim,
    seed=resolved.seed,
  )
  sizes = [len(codes[split]["z"]) for split in splits]
  for split, z in zip(splits, np.split(features, np.cumsum(sizes)[:-1]), strict=True):
    codes[split]["z"] = z
  return {"model_kind": "pca", "scores": score_codes(built, codes)}


def sample_quality(
  workdir: str, *, num_samples: int, z_prior: str = "fitted", dim: int = 32, seed: int = 0
) -> dict:
  """Prior samples of the run in `workdir` (z from `z_prior`, the `sampling.z_prior` choice)
  against the evaluation split, by `metrics.frechet_distance` on `dim` principal components of
  the training pixels (`metrics.pca_frechet_distance`, with the PCA fitted once).

  The PCA is fitted on the first `eval.num_examples` training images; the reference is the first
  `eval.num_examples` evaluation images. 'held_out', the distance of the next `num_samples`
  training images, is the floor that sampling noise alone gives at this sample size.

  Returns:
    {'samples', 'held_out' (distances), 'num_samples', 'z_prior', 'dim', 'step' (the sampled
    checkpoint)}.
  """
  model = api.load(workdir).with_sampling(z_prior=z_prior)
  config = model.config
  fit = config.eval.num_examples

  def pixels(split: str, num: int) -> np.ndarray:
    return latents.export_pixels(
      config.data, split=split, batch_size=config.eval.batch_size, num_examples=num
    )["z"]

  train = pixels(config.data.train_split, fit + num_samples)
  if len(train) < fit + num_samples:
    raise ValueError(
      f"sample_quality needs {fit + num_samples} training images (eval.num_examples"
      f" + num_samples), the split has {len(train)}."
    )
  reference = pixels(config.data.eval_split, fit)
  samples, _ = model.generate(num_samples, seed=seed)
  sets = (reference, samples.reshape(num_samples, -1), train[fit:])
  _, features = metrics.pca_features(train[:fit], np.concatenate(sets), dim, seed=config.seed)
  reference, samples, held_out = np.split(features, np.cumsum([len(s) for s in sets[:2]]))
  return {
    "samples": metrics.frechet_distance(reference, samples),
    "held_out": metrics.frechet_distance(reference, held_out),
    "num_samples": num_samples,
    "z_prior": z_prior,
    "dim": dim,
    "step": model.step,
  }
