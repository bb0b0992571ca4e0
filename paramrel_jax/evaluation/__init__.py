"""Evaluation: test likelihood, latent export and the evaluators run during training.

likelihood   BFN test loss and ParamReL negative ELBO over a split (nats / bits per dimension)
latents      encoder means at chosen flow times, exported with the dataset's labels
evaluators   the `evals` registry (likelihood, auroc, dci, tad), `build_evaluators`, `run_due`
latent_plots PCA and t-SNE pictures of exported codes, coloured by label, attribute or factor

The command line's modes over these (`run_eval`, `run_export_latents`, `run_plot_latents`) are in
`paramrel_jax.cli.eval_modes`, a layer above: they open runs through `training.runs`.
"""

from paramrel_jax.evaluation.evaluators import (
  EVALUATORS,
  AurocEvaluator,
  DciEvaluator,
  Evaluator,
  LikelihoodEvaluator,
  TadEvaluator,
  binarize_factors,
  build_evaluators,
  run_due,
)
from paramrel_jax.evaluation.latents import export_latents, load_latents, save_latents
from paramrel_jax.evaluation.likelihood import evaluate_likelihood

__all__ = [
  "EVALUATORS",
  "AurocEvaluator",
  "DciEvaluator",
  "Evaluator",
  "LikelihoodEvaluator",
  "TadEvaluator",
  "binarize_factors",
  "build_evaluators",
  "evaluate_likelihood",
  "export_latents",
  "load_latents",
  "run_due",
  "save_latents",
]
