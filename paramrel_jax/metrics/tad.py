"""TAD (Total AUROC Difference) and ATTRS (Yeats et al., NashAE, ECCV 2022), paper Table 3.

Implements `TADMetric.evaluate` of InfoDiffusion's `eval_disentanglement.py`
(github.com/isjakewong/InfoDiffusion), which adapts the CelebA evaluation of
github.com/ericyeats/nashae-beamsynthesis (`celeba_eval.ipynb`):

1. Detector AUROCs: for attribute a and latent dimension l, AUROC[a, l] = max(AUC(y_a, z_l),
   AUC(y_a, -z_l)) = max(auc, 1 - auc), with the dimension's raw value as the score (sklearn's
   `roc_auc_score` in InfoDiffusion; ties count 1/2). Unlike NashAE's notebook, which sweeps 101
   thresholds and leaves dimensions of range <= 0.2 at 0.5, no dimension is skipped.
2. Per attribute: the best AUROC over dimensions minus the second best (the best with the
   argmax dimension removed). Dimensions are not assigned exclusively: one dimension may be the
   best detector of several attributes, and each of them then counts.
3. Entropy reduction: with the empirical mutual information MI[a, b] of binary attributes (natural
   log, 0 log 0 = 0; MI[a, a] = H(y_a)), attribute a's entropy reduction is
   max_{b != a} MI[a, b] / H(y_a): the share of its entropy explained by the most informative
   other attribute.
4. An attribute is captured when its best AUROC >= 0.75 and its entropy reduction <= 0.2.
   TAD is the SUM of the AUROC differences of the captured attributes; ATTRS is their number.

InfoDiffusion reports mean +- std over 5 `KFold(shuffle=True, random_state=0)` folds, TAD being
computed on each fold's 80% training part (`tad_cv`); CelebA uses its first 10,000 examples.
"""

import numpy as np
import sklearn
from scipy.stats import rankdata
from sklearn.model_selection import KFold

from paramrel_jax.metrics import validation


def detector_aurocs(z, attributes) -> np.ndarray:
  """AUROC of every latent dimension as a detector of every attribute, either sign.

  Computed in closed form from ranks (the Mann-Whitney statistic, ties averaged), which equals
  sklearn's `roc_auc_score(attributes[:, a], z[:, l])` exactly.

  Args:
    z: codes, shape (N, L), real and finite.
    attributes: binary {0, 1}, shape (N, A); each attribute must take both values.

  Returns:
    max(auc, 1 - auc), float64, shape (A, L), values in [0.5, 1].
  """
  z = validation.check_latents(z, "z")
  attributes = validation.check_binary_attributes(attributes, "attributes")
  validation.check_same_length(z=z, attributes=attributes)
  validation.check_binary_counts(attributes, "attributes", 1, "for an AUROC")
  ranks = rankdata(z, axis=0)  # (N, L), average ranks for ties
  positives = attributes.sum(axis=0).astype(np.float64)  # (A,)
  negatives = attributes.shape[0] - positives
  rank_sums = attributes.T.astype(np.float64) @ ranks  # (A, L)
  auc = (rank_sums - (positives * (positives + 1) / 2)[:, None]) / (positives * negatives)[:, None]
  return np.maximum(auc, 1.0 - auc)


def entropy_reduction(attributes) -> np.ndarray:
  """Share of each binary attribute's entropy explained by the most informative other attribute.

  Args:
    attributes: binary {0, 1}, shape (N, A); each attribute must take both values.

  Returns:
    max_{b != a} MI[a, b] / H(y_a), float64, shape (A,), in [0, 1]; 0 when A == 1.
  """
  attributes = validation.check_binary_attributes(attributes, "attributes")
  validation.check_binary_counts(attributes, "attributes", 1, "for an entropy")
  y = attributes.astype(np.float64)
  n = y.shape[0]
  marginals = (1.0 - y.mean(axis=0), y.mean(axis=0))  # p(y_a = 0), p(y_a = 1), each (A,)
  indicators = (1.0 - y, y)
  mi = np.zeros((y.shape[1], y.shape[1]))
  for u in (0, 1):
    for v in (0, 1):
      joint = indicators[u].T @ indicators[v] / n  # p(y_a = u, y_b = v), (A, A)
      expected = np.outer(marginals[u], marginals[v])
      with np.errstate(divide="ignore", invalid="ignore"):
        mi += np.where(joint > 0, joint * np.log(joint / expected), 0.0)
  entropy = np.diag(mi).copy()
  np.fill_diagonal(mi, 0.0)  # MI >= 0, so a zero diagonal leaves the row maximum unchanged
  return mi.max(axis=1) / entropy


def tad(z, attributes, *, auroc_threshold: float = 0.75, entropy_threshold: float = 0.2) -> dict:
  """Total AUROC Difference and number of captured attributes (ATTRS); see the module docstring.

  Args:
    z: codes, shape (N, L), L >= 2, real and finite (the result does not depend on their scale or
      sign, so standardising first changes nothing).
    attributes: binary {0, 1}, shape (N, A), e.g. CelebA's 40 attributes; each attribute must take
      both values.
    auroc_threshold: least best-detector AUROC of a captured attribute (0.75 in NashAE).
    entropy_threshold: largest entropy reduction of a captured attribute (0.2 in NashAE).

  Returns:
    A dict with 'tad' (float, sum of AUROC differences over captured attributes), 'attrs' (int,
    number captured), 'per_attribute' (dict of (A,) arrays: 'best_dim', 'best_auroc',
    'auroc_difference', 'entropy_reduction', 'captured'), 'aurocs' ((A, L) detector AUROCs) and
    'sklearn_version'.

  Raises:
    ValueError: on non-2-D / non-finite `z`, L < 2, non-binary or constant attributes, mismatched
      N, or thresholds outside [0.5, 1] / [0, 1].
  """
  z = validation.check_latents(z, "z", min_dims=2)
  if not 0.5 <= auroc_threshold <= 1.0:
    raise ValueError(f"auroc_threshold must be in [0.5, 1], got {auroc_threshold}.")
  if not 0.0 <= entropy_threshold <= 1.0:
    raise ValueError(f"entropy_threshold must be in [0, 1], got {entropy_threshold}.")
  aurocs = detector_aurocs(z, attributes)
  reduction = entropy_reduction(attributes)

  best_dim = np.argmax(aurocs, axis=1)
  rows = np.arange(aurocs.shape[0])
  best = aurocs[rows, best_dim]
  others = aurocs.copy()
  others[rows, best_dim] = -np.inf
  difference = best - others.max(axis=1)
  captured = (best >= auroc_threshold) & (reduction <= entropy_threshold)
  return {
    "tad": float(difference[captured].sum()),
    "attrs": int(captured.sum()),
    "per_attribute": {
      "best_dim": best_dim,
      "best_auroc": best,
      "auroc_difference": difference,
      "entropy_reduction": reduction,
      "captured": captured,
    },
    "aurocs": aurocs,
    "sklearn_version": sklearn.__version__,
  }


def tad_cv(
  z,
  attributes,
  *,
  n_folds: int = 5,
  seed: int = 0,
  auroc_threshold: float = 0.75,
  entropy_threshold: float = 0.2,
) -> dict:
  """TAD and ATTRS over k-fold splits, as InfoDiffusion reports them (paper Table 3).

  The examples are split by `KFold(n_folds, shuffle=True, random_state=seed)` and `tad` is
  computed on each fold's training part (80% for 5 folds; the test parts are unused, as in
  InfoDiffusion's `eval_disentanglement.py`).

  Args:
    z: codes, shape (N, L), L >= 2.
    attributes: binary {0, 1}, shape (N, A).
    n_folds: number of folds (>= 2).
    seed: shuffles the folds.
    auroc_threshold: see `tad`.
    entropy_threshold: see `tad`.

  Returns:
    A dict with 'tad_mean', 'tad_std', 'attrs_mean', 'attrs_std' (population std over folds),
    'per_fold' (list of {'tad', 'attrs'}), 'n_folds' and 'sklearn_version'.

  Raises:
    ValueError: as `tad`, or on a bad `n_folds`.
  """
  z = validation.check_latents(z, "z", min_dims=2)
  attributes = validation.check_binary_attributes(attributes, "attributes")
  n_examples = validation.check_same_length(z=z, attributes=attributes)
  n_folds = validation.check_n_folds(n_folds, n_examples)
  seed = validation.check_int_at_least(seed, "seed", 0)
  per_fold = []
  for train, _ in KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(z):
    fold = tad(
      z[train],
      attributes[train],
      auroc_threshold=auroc_threshold,
      entropy_threshold=entropy_threshold,
    )
    per_fold.append({"tad": fold["tad"], "attrs": fold["attrs"]})
  tads = np.array([fold["tad"] for fold in per_fold])
  attrs = np.array([fold["attrs"] for fold in per_fold], dtype=np.float64)
  return {
    "tad_mean": float(tads.mean()),
    "tad_std": float(tads.std()),
    "attrs_mean": float(attrs.mean()),
    "attrs_std": float(attrs.std()),
    "per_fold": per_fold,
    "n_folds": n_folds,
    "sklearn_version": sklearn.__version__,
  }
