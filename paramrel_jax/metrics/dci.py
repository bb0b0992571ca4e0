"""DCI: Disentanglement, Completeness and Informativeness (Eastwood & Williams, ICLR 2018).

Follows `disentanglement_lib/evaluation/metrics/dci.py` (google-research), which InfoDiffusion's
`eval_disentanglement.py` copies and the paper's Table 3 (3DShapes) reports: one
gradient-boosted-tree classifier per factor predicts the factor from the whole code; the absolute
feature importances form the importance matrix R (L codes x K factors), and

  D_l = 1 - H_K(R[l, :] / sum_k R[l, k]),   D = sum_l rho_l D_l,  rho_l = sum_k R[l, k] / sum R,
  C_k = 1 - H_L(R[:, k] / sum_l R[l, k]),   C = sum_k w_k C_k,    w_k = sum_l R[l, k] / sum R,

with H_b the entropy in base b. Informativeness is the classifiers' mean accuracy on the training
and test codes. In InfoDiffusion's evaluation the "DCI" column is D, averaged over 5 folds
(`dci_cv`).
"""

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import KFold

from paramrel_jax.metrics import validation

# disentanglement_lib adds this to the importances before normalising them (scipy.stats.entropy).
_EPS = 1e-11


def _normalized_entropy(weights: np.ndarray) -> np.ndarray:
  """Entropy of each row of `weights` (normalised to sum 1), in base = number of columns."""
  p = weights + _EPS
  p = p / p.sum(axis=1, keepdims=True)
  return -np.sum(p * np.log(p), axis=1) / np.log(weights.shape[1])


def _check_importance(importance_matrix) -> np.ndarray:
  importance = validation.check_finite_real(importance_matrix, "importance_matrix")
  if importance.ndim != 2 or min(importance.shape) < 2:
    raise ValueError(
      f"importance_matrix must be 2-D (L, K) with L, K >= 2, got shape {importance.shape}."
    )
  if np.any(importance < 0):
    raise ValueError("importance_matrix must be non-negative.")
  return importance.astype(np.float64)


def disentanglement_score(importance_matrix) -> tuple[float, np.ndarray]:
  """Importance-weighted disentanglement D of an importance matrix.

  Args:
    importance_matrix: non-negative, shape (L, K): importance of code l for factor k.

  Returns:
    (D, per-code scores D_l of shape (L,)). An all-zero matrix weights codes uniformly.
  """
  importance = _check_importance(importance_matrix)
  per_code = 1.0 - _normalized_entropy(importance)
  total = importance.sum()
  weights = (
    importance.sum(axis=1) / total if total > 0 else np.full(len(per_code), 1 / len(per_code))
  )
  return float(np.sum(per_code * weights)), per_code


def completeness_score(importance_matrix) -> tuple[float, np.ndarray]:
  """Importance-weighted completeness C of an importance matrix.

  Args:
    importance_matrix: non-negative, shape (L, K): importance of code l for factor k.

  Returns:
    (C, per-factor scores C_k of shape (K,)). An all-zero matrix weights factors uniformly.
  """
  importance = _check_importance(importance_matrix)
  per_factor = 1.0 - _normalized_entropy(importance.T)
  total = importance.sum()
  weights = (
    importance.sum(axis=0) / total if total > 0 else np.full(len(per_factor), 1 / len(per_factor))
  )
  return float(np.sum(per_factor * weights)), per_factor


def discretize_factors(
  factors_train: np.ndarray, factors_test: np.ndarray, num_bins: int
) -> tuple[np.ndarray, np.ndarray]:
  """Turns factors into class indices for the per-factor classifiers.

  A factor with at most `num_bins` distinct values on the training set keeps its values as classes
  (the index of the value among the sorted distinct train and test values), so integer or
  categorical factors (e.g. the 3DShapes factors) are used as they are. A factor with more distinct
  values is cut into `num_bins` equal-width bins spanning its training range (the histogram
  discretiser of disentanglement_lib); test values outside that range fall into the end bins.

  Args:
    factors_train: real factors, shape (N_train, K).
    factors_test: real factors, shape (N_test, K).
    num_bins: most classes per factor (>= 2).

  Returns:
    int64 class indices of shapes (N_train, K) and (N_test, K).
  """
  factors_train = np.asarray(factors_train)
  factors_test = np.asarray(factors_test)
  if factors_train.ndim != 2 or factors_test.ndim != 2:
    raise ValueError(
      "factors_train and factors_test must be 2-D (N, K), got shapes "
      f"{factors_train.shape} and {factors_test.shape}."
    )
  if factors_train.shape[1] != factors_test.shape[1]:
    raise ValueError(
      "factors_train and factors_test must have the same number of factors K, got "
      f"{factors_train.shape[1]} and {factors_test.shape[1]}."
    )
  num_bins = validation.check_int_at_least(num_bins, "num_bins", 2)
  codes_train = np.empty(factors_train.shape, dtype=np.int64)
  codes_test = np.empty(factors_test.shape, dtype=np.int64)
  for k in range(factors_train.shape[1]):
    train, test = factors_train[:, k], factors_test[:, k]
    if np.unique(train).size <= num_bins:
      _, inverse = np.unique(np.concatenate([train, test]), return_inverse=True)
      codes_train[:, k], codes_test[:, k] = inverse[: len(train)], inverse[len(train) :]
    else:
      inner_edges = np.histogram_bin_edges(train, bins=num_bins)[1:-1]
      codes_train[:, k] = np.digitize(train, inner_edges)
      codes_test[:, k] = np.digitize(test, inner_edges)
  return codes_train, codes_test


def _check_pair(z, factors, z_name: str, factors_name: str) -> tuple[np.ndarray, np.ndarray]:
  z = validation.check_latents(z, z_name, min_dims=2)
  factors = validation.check_finite_real(factors, factors_name)
  if factors.ndim != 2 or factors.shape[1] < 2:
    raise ValueError(
      f"{factors_name} must be 2-D with shape (N, K), K >= 2 factors, got shape {factors.shape}."
    )
  validation.check_same_length(**{z_name: z, factors_name: factors})
  return z, factors.astype(np.float64)


def _fit_factor(z_train, y_train, z_test, y_test, n_estimators: int, seed: int):
  """One factor's classifier: (|feature importances| (L,), train accuracy, test accuracy)."""
  model = GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)
  model.fit(z_train, y_train)
  return (
    np.abs(model.feature_importances_).astype(np.float64),
    float(np.mean(model.predict(z_train) == y_train)),
    float(np.mean(model.predict(z_test) == y_test)),
  )


def dci(
  z_train,
  factors_train,
  z_test,
  factors_test,
  *,
  num_bins: int = 20,
  n_estimators: int = 100,
  seed: int = 0,
  n_jobs: int = 1,
) -> dict:
  """DCI scores of codes against ground-truth factors (Eastwood & Williams 2018).

  Per factor k, sklearn's `GradientBoostingClassifier(n_estimators, random_state=seed)` (otherwise
  sklearn defaults, as disentanglement_lib) is fitted on (z_train, factor k discretised by
  `discretize_factors`); its `feature_importances_` form column k of the importance matrix. Trees
  are invariant to monotone rescaling of each code, so the codes are not standardised.

  Args:
    z_train: codes, shape (N_train, L), L >= 2, real and finite.
    factors_train: factors, shape (N_train, K), K >= 2, real and finite; each factor must take at
      least 2 values on the training set.
    z_test: codes, shape (N_test, L).
    factors_test: factors, shape (N_test, K).
    num_bins: factors with more distinct training values are binned into this many equal-width
      bins (disentanglement_lib's default is 20).
    n_estimators: boosting stages per classifier (sklearn and disentanglement_lib use 100; fewer
      is faster).
    seed: random state of the classifiers.
    n_jobs: factors fitted in parallel (joblib; -1: one process per core). Every classifier has
      its own fixed random state, so the scores do not depend on it.

  Returns:
    A dict with 'disentanglement', 'completeness', 'informativeness_train' and
    'informativeness_test' (mean classification accuracy over factors),
    'informativeness_per_factor' (the test accuracies (K,): which factors the codes carry),
    'importance_matrix' (float64, shape (L, K)), 'disentanglement_per_code' (L,),
    'completeness_per_factor' (K,), and 'sklearn_version'.

  Raises:
    ValueError: on badly shaped or non-finite inputs, different L (or K) between train and test,
      a factor constant on the training set, or bad settings.
  """
  z_train, factors_train = _check_pair(z_train, factors_train, "z_train", "factors_train")
  z_test, factors_test = _check_pair(z_test, factors_test, "z_test", "factors_test")
  if z_train.shape[1] != z_test.shape[1]:
    raise ValueError(
      f"z_train and z_test must have the same L, got {z_train.shape[1]} and {z_test.shape[1]}."
    )
  n_estimators = validation.check_int_at_least(n_estimators, "n_estimators", 1)
  seed = validation.check_int_at_least(seed, "seed", 0)
  if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
    raise ValueError(f"n_jobs must be a nonzero int (-1: one per core), got {n_jobs!r}.")
  for k in range(factors_train.shape[1]):
    if np.unique(factors_train[:, k]).size < 2:
      raise ValueError(f"factors_train[:, {k}] is constant; every factor needs at least 2 values.")

  y_train, y_test = discretize_factors(factors_train, factors_test, num_bins)
  fits = joblib.Parallel(n_jobs=n_jobs)(
    joblib.delayed(_fit_factor)(z_train, y_train[:, k], z_test, y_test[:, k], n_estimators, seed)
    for k in range(y_train.shape[1])
  )
  importance = np.stack([fit[0] for fit in fits], axis=1)
  train_accuracy = [fit[1] for fit in fits]
  test_accuracy = [fit[2] for fit in fits]

  disentanglement, per_code = disentanglement_score(importance)
  completeness, per_factor = completeness_score(importance)
  return {
    "disentanglement": disentanglement,
    "completeness": completeness,
    "informativeness_train": float(np.mean(train_accuracy)),
    "informativeness_test": float(np.mean(test_accuracy)),
    "informativeness_per_factor": np.asarray(test_accuracy),
    "importance_matrix": importance,
    "disentanglement_per_code": per_code,
    "completeness_per_factor": per_factor,
    "sklearn_version": sklearn.__version__,
  }


def dci_cv(
  z,
  factors,
  *,
  n_folds: int = 5,
  seed: int = 0,
  num_bins: int = 20,
  n_estimators: int = 100,
  n_jobs: int = 1,
) -> dict:
  """DCI over k-fold splits of one set of codes, as InfoDiffusion reports it (paper Table 3).

  The examples are split by `KFold(n_folds, shuffle=True, random_state=seed)`; on each fold `dci`
  is computed with the training part (80% for 5 folds) as train and the rest as test.

  Args:
    z: codes, shape (N, L), L >= 2.
    factors: factors, shape (N, K), K >= 2.
    n_folds: number of folds (>= 2).
    seed: shuffles the folds and seeds the classifiers.
    num_bins: see `dci`.
    n_estimators: see `dci`.
    n_jobs: see `dci`.

  Returns:
    A dict with '<score>_mean' and '<score>_std' (population std over folds) for score in
    disentanglement, completeness, informativeness_train, informativeness_test;
    'informativeness_per_factor_mean' (K,), the folds' mean; 'per_fold' (list of the `dci`
    result dicts), 'n_folds' and 'sklearn_version'.

  Raises:
    ValueError: as `dci`, or on mismatched N or a bad `n_folds`.
  """
  z, factors = _check_pair(z, factors, "z", "factors")
  n_folds = validation.check_n_folds(n_folds, len(z))
  seed = validation.check_int_at_least(seed, "seed", 0)
  folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(z)
  per_fold = [
    dci(
      z[train],
      factors[train],
      z[test],
      factors[test],
      num_bins=num_bins,
      n_estimators=n_estimators,
      seed=seed,
      n_jobs=n_jobs,
    )
    for train, test in folds
  ]
  result = {}
  for score in ("disentanglement", "completeness", "informativeness_train", "informativeness_test"):
    values = np.array([fold[score] for fold in per_fold])
    result[f"{score}_mean"] = float(values.mean())
    result[f"{score}_std"] = float(values.std())
  per_factor = np.mean([fold["informativeness_per_factor"] for fold in per_fold], axis=0)
  result.update(
    informativeness_per_factor_mean=per_factor,
    per_fold=per_fold,
    n_folds=n_folds,
    sklearn_version=sklearn.__version__,
  )
  return result
