"""PCA of pixels: a floor baseline for the representation metrics.

A learned code should carry more about the labels than the same number of principal components
of the raw images; `latent_auroc(pca_features(...)[1], labels)` gives that floor.
"""

import numpy as np
from sklearn.decomposition import PCA

from paramrel_jax.metrics import validation


def _flatten(x, name: str) -> np.ndarray:
  x = validation.check_finite_real(x, name)
  if x.ndim < 2 or x.shape[0] == 0:
    raise ValueError(
      f"{name} must have shape (N, ...) with N >= 1, e.g. (N, H, W, C); got {x.shape}."
    )
  return x.reshape(x.shape[0], -1).astype(np.float32)


def pca_features(x_train, x_test, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Projects images onto the top `dim` principal components of the training images.

  Images are flattened to vectors; sklearn's `PCA(n_components=dim, random_state=seed)` (centred,
  not whitened; the solver is sklearn's 'auto' choice, randomized SVD for large inputs) is fitted
  on the training images only and applied to both sets.

  Args:
    x_train: images, shape (N_train, ...) such as (N, H, W, C), any real dtype (discrete class
      indices are used as numbers), finite.
    x_test: images with the same per-example shape, (N_test, ...).
    dim: number of components, 1 <= dim <= min(N_train, number of pixel values).
    seed: random state of the randomized SVD.

  Returns:
    (train features (N_train, dim), test features (N_test, dim)), float32.

  Raises:
    ValueError: on non-finite or non-real images, different per-example shapes, or a bad `dim`.
  """
  train = _flatten(x_train, "x_train")
  test = _flatten(x_test, "x_test")
  if np.shape(x_train)[1:] != np.shape(x_test)[1:]:
    raise ValueError(
      "x_train and x_test must have the same per-example shape, got "
      f"{np.shape(x_train)[1:]} and {np.shape(x_test)[1:]}."
    )
  dim = validation.check_int_at_least(dim, "dim", 1)
  if dim > min(train.shape):
    raise ValueError(
      f"dim must be <= min(N_train, pixels per example) = {min(train.shape)}, got {dim}."
    )
  seed = validation.check_int_at_least(seed, "seed", 0)
  pca = PCA(n_components=dim, random_state=seed).fit(train)
  return pca.transform(train).astype(np.float32), pca.transform(test).astype(np.float32)
