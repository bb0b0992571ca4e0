"""Latent AUROC: how linearly decodable labels are from a representation (paper Sec. 5.1.1).

Protocol of the paper (Table 2 and the AUROC column of Table 3), following InfoDiffusion's
`eval_disentanglement.py`: 5-fold cross-validation (80% of the examples train a probe, the other
20% test it), latents standardised with statistics of the training part, a logistic-regression
probe, AUROC on the test part, reported as the mean and standard deviation over the folds.
"""

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from paramrel_jax.metrics import validation

# Enough L-BFGS iterations for the probe to converge on standardised latents (sklearn's default
# of 100 can stop early); the probe is otherwise sklearn's default (L2, C = 1).
_MAX_ITER = 1000


def _probe_scores(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, seed: int):
  """Fits a standardised logistic-regression probe; returns (test probabilities, classes)."""
  scaler = StandardScaler().fit(z_train)
  probe = LogisticRegression(max_iter=_MAX_ITER, random_state=seed)
  probe.fit(scaler.transform(z_train), y_train)
  return probe.predict_proba(scaler.transform(z_test)), probe.classes_


def _class_label_folds(z, labels, n_folds, seed):
  """Per-fold AUROC for one integer label per example (binary or one-vs-rest macro)."""
  classes, counts = np.unique(labels, return_counts=True)
  if classes.size < 2:
    raise ValueError(f"labels must contain at least 2 classes, got only {classes.tolist()}.")
  if counts.min() < n_folds:
    rare = classes[counts < n_folds].tolist()
    raise ValueError(
      f"labels: classes {rare} have fewer than n_folds={n_folds} examples; every class needs at "
      "least one example in each test fold."
    )
  folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(z, labels)
  per_fold = []
  for train, test in folds:
    probs, probe_classes = _probe_scores(z[train], labels[train], z[test], seed)
    if classes.size == 2:
      per_fold.append(roc_auc_score(labels[test], probs[:, 1]))
    else:
      per_fold.append(
        roc_auc_score(labels[test], probs, multi_class="ovr", average="macro", labels=probe_classes)
      )
  task = "binary" if classes.size == 2 else "multiclass"
  return task, np.asarray(per_fold), None


def _attribute_folds(z, attributes, n_folds, seed):
  """Per-fold and per-attribute AUROC for binary attributes (one probe per attribute)."""
  validation.check_binary_counts(
    attributes, "labels", n_folds, f"for {n_folds}-fold cross-validation"
  )
  folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(z)
  scores = np.zeros((n_folds, attributes.shape[1]))
  for fold, (train, test) in enumerate(folds):
    for index in range(attributes.shape[1]):
      for part, rows in (("training", train), ("test", test)):
        if np.unique(attributes[rows, index]).size < 2:
          raise ValueError(
            f"labels[:, {index}] is constant on the {part} part of fold {fold}; use fewer folds, "
            "more examples, or drop this attribute."
          )
      probs, _ = _probe_scores(z[train], attributes[train, index], z[test], seed)
      scores[fold, index] = roc_auc_score(attributes[test, index], probs[:, 1])
  return "multilabel", scores.mean(axis=1), scores.mean(axis=0)


def latent_auroc(z, labels, *, n_folds: int = 5, seed: int = 0) -> dict:
  """Cross-validated AUROC of a logistic-regression probe on latent codes (paper Sec. 5.1.1).

  For each of `n_folds` folds (shuffled with `seed`; with 5 folds each probe trains on 80% and is
  tested on 20% of the examples) the latents are standardised with the training part's mean and
  std, sklearn's `LogisticRegression` (L2, C = 1) is fitted, and the AUROC of its predicted
  probabilities on the test part is computed:

  * labels of shape (N,), integer classes: `StratifiedKFold` splits (every class in every test
    fold); 2 classes give the binary AUROC, more the one-vs-rest macro AUROC.
  * labels of shape (N, A), binary attributes (e.g. CelebA): plain `KFold` splits (as
    InfoDiffusion; multi-label data cannot be stratified), one probe per attribute, and the fold's
    AUROC is the mean over attributes. Every attribute needs at least `n_folds` positive and
    `n_folds` negative examples, and an attribute that is still constant on some fold's training
    or test part is an error (AUROC is undefined there) rather than silently skipped.

  Args:
    z: latent codes, shape (N, L), real and finite.
    labels: int/bool class labels of shape (N,), or binary {0, 1} attributes of shape (N, A).
    n_folds: number of cross-validation folds (>= 2).
    seed: shuffles the folds (and seeds the probe).

  Returns:
    A dict with 'auroc_mean' and 'auroc_std' (population std over folds, as InfoDiffusion's
    np.std), 'per_fold' (list of n_folds AUROCs), 'n_folds', 'task' ('binary', 'multiclass' or
    'multilabel'), 'sklearn_version', and for attributes 'per_attribute' (list of A AUROCs,
    each the mean over folds).

  Raises:
    ValueError: on a non-2-D or non-finite `z`, float or wrongly shaped `labels`, mismatched N,
      fewer than 2 classes, or too few examples of a class / attribute value for `n_folds`.
  """
  z = validation.check_latents(z, "z")
  labels = validation.check_integer_labels(labels, "labels")
  if labels.ndim == 2:
    labels = validation.check_binary_attributes(labels, "labels")
  elif labels.ndim != 1:
    raise ValueError(
      f"labels must have shape (N,) (classes) or (N, A) (binary attributes), got {labels.shape}."
    )
  n_examples = validation.check_same_length(z=z, labels=labels)
  n_folds = validation.check_n_folds(n_folds, n_examples)
  seed = validation.check_int_at_least(seed, "seed", 0)

  if labels.ndim == 1:
    task, per_fold, per_attribute = _class_label_folds(z, labels, n_folds, seed)
  else:
    task, per_fold, per_attribute = _attribute_folds(z, labels, n_folds, seed)
  result = {
    "auroc_mean": float(per_fold.mean()),
    "auroc_std": float(per_fold.std()),
    "per_fold": per_fold.tolist(),
    "n_folds": n_folds,
    "task": task,
    "sklearn_version": sklearn.__version__,
  }
  if per_attribute is not None:
    result["per_attribute"] = per_attribute.tolist()
  return result
