"""The library of the latent studies: the scripts in `experiments/` are thin drivers over it.

budget   the training budget every row of a study shares: its flags (`add_budget_flags`), its
         config overrides (`budget_overrides`) and `apply_overrides`
rows     one row: train or resume a run, evaluate it, export and score its codes (`run_row`,
         `train_run`, `pca_row` for the PCA floor, `sample_quality`, `read_log`)
report   the spread over seeds (`spread`) and the machine (`hardware`) results are quoted with
"""

from paramrel_jax.study.budget import (
  BUDGET_DEFAULTS,
  add_budget_flags,
  apply_overrides,
  budget_overrides,
)
from paramrel_jax.study.report import hardware, spread
from paramrel_jax.study.rows import (
  LATENT_KINDS,
  codes_needed,
  pca_row,
  read_log,
  run_row,
  sample_quality,
  score_codes,
  scorers,
  train_run,
)

__all__ = [
  "BUDGET_DEFAULTS",
  "LATENT_KINDS",
  "add_budget_flags",
  "apply_overrides",
  "budget_overrides",
  "codes_needed",
  "hardware",
  "pca_row",
  "read_log",
  "run_row",
  "sample_quality",
  "score_codes",
  "scorers",
  "spread",
  "train_run",
]
