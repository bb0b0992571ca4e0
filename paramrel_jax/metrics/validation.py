"""Input checks shared by the representation metrics.

Every check raises `ValueError` with a message that names the offending argument, and returns the
input converted to the numpy array the metrics compute with.
"""

import numpy as np


def _is_real(array: np.ndarray) -> bool:
  return array.dtype == np.bool_ or (
    np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating)
  )


def check_finite_real(array, name: str) -> np.ndarray:
  """Returns `array` as a numpy array after checking it is real-valued and finite."""
  array = np.asarray(array)
  if not _is_real(array):
    raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}.")
  if array.size and not np.all(np.isfinite(array)):
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf).")
  return array


def check_latents(z, name: str, *, min_dims: int = 1) -> np.ndarray:
  """Checks a batch of codes.

  Args:
    z: latent codes, shape (N, L), real and finite.
    name: the argument name used in error messages.
    min_dims: the smallest allowed L.

  Returns:
    z as float64, shape (N, L).
  """
  z = np.asarray(z)
  if z.ndim != 2:
    raise ValueError(f"{name} must be 2-D with shape (N, L), got shape {z.shape}.")
  if z.shape[0] == 0:
    raise ValueError(f"{name} must hold at least one example, got shape {z.shape}.")
  if z.shape[1] < min_dims:
    raise ValueError(f"{name} must have at least {min_dims} latent dimension(s), got {z.shape[1]}.")
  return check_finite_real(z, name).astype(np.float64)


def check_same_length(**arrays: np.ndarray) -> int:
  """Checks that all arrays share their leading dimension N and returns N."""
  lengths = {name: np.shape(array)[0] for name, array in arrays.items()}
  if len(set(lengths.values())) > 1:
    listed = ", ".join(f"{name}: {n}" for name, n in lengths.items())
    raise ValueError(f"Arguments must have the same number of examples N, got {listed}.")
  return next(iter(lengths.values()))


def check_integer_labels(labels, name: str) -> np.ndarray:
  """Checks integer (or boolean) labels and returns them as int64; floats are rejected."""
  labels = np.asarray(labels)
  if labels.dtype != np.bool_ and not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(
      f"{name} must hold integer class labels (or booleans), got dtype {labels.dtype}; "
      "convert with .astype(int) only if the values are meant as classes."
    )
  return labels.astype(np.int64)


def check_binary_attributes(attributes, name: str) -> np.ndarray:
  """Checks binary attributes.

  Args:
    attributes: shape (N, A), integer or boolean with values in {0, 1}.
    name: the argument name used in error messages.

  Returns:
    attributes as int64, shape (N, A).
  """
  attributes = check_integer_labels(attributes, name)
  if attributes.ndim != 2 or attributes.shape[1] == 0:
    raise ValueError(f"{name} must be 2-D with shape (N, A), A >= 1, got shape {attributes.shape}.")
  values = np.unique(attributes)
  if not np.all(np.isin(values, (0, 1))):
    raise ValueError(
      f"{name} must be binary with values in {{0, 1}}, got values {values[:10].tolist()}; "
      "map {-1, 1} attributes (CelebA's file format) with (a + 1) // 2."
    )
  return attributes


def check_int_at_least(value, name: str, minimum: int) -> int:
  """Checks that `value` is an integer >= `minimum`."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
  return int(value)


def check_n_folds(n_folds, n_examples: int) -> int:
  """Checks the number of cross-validation folds against the number of examples."""
  n_folds = check_int_at_least(n_folds, "n_folds", 2)
  if n_folds > n_examples:
    raise ValueError(f"n_folds ({n_folds}) cannot exceed the number of examples ({n_examples}).")
  return n_folds


def check_binary_counts(attributes: np.ndarray, name: str, minimum: int, reason: str) -> None:
  """Checks that every attribute has at least `minimum` positives and `minimum` negatives.

  Args:
    attributes: binary, shape (N, A).
    name: the argument name used in error messages.
    minimum: the least number of examples of each value.
    reason: what needs the examples (ends the error message).
  """
  positives = attributes.sum(axis=0)
  negatives = attributes.shape[0] - positives
  for index in range(attributes.shape[1]):
    if min(positives[index], negatives[index]) < minimum:
      raise ValueError(
        f"{name}[:, {index}] has {positives[index]} positive and {negatives[index]} negative "
        f"examples; at least {minimum} of each are needed {reason}."
      )
