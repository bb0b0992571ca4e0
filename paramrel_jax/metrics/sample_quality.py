"""Sample quality: the Frechet distance between Gaussian fits of two sets of features.

FID's formula on features that need no pretrained network: the top principal components of the
training pixels. It compares a model's samples with held-out images; the same distance between
real held-out sets of the same sizes is the floor that sampling noise alone gives.
"""

import numpy as np
from scipy import linalg

from paramrel_jax.metrics import pca, validation


def frechet_distance(features_a, features_b) -> float:
  """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of the two sets' Gaussian fits.

  Args:
    features_a: (N_a, d) real and finite, N_a >= 2.
    features_b: (N_b, d), the same d, N_b >= 2.

  Returns:
    The squared 2-Wasserstein distance between N(mu_a, S_a) and N(mu_b, S_b) (sample means and
    unbiased covariances), >= 0.
  """
  a = validation.check_latents(features_a, "features_a")
  b = validation.check_latents(features_b, "features_b")
  if a.shape[1] != b.shape[1]:
    raise ValueError(
      f"features_a and features_b must have the same dimension d, got "
      f"{a.shape[1]} and {b.shape[1]}."
    )
  if min(a.shape[0], b.shape[0]) < 2:
    raise ValueError(
      f"each feature set needs N >= 2 rows for a covariance, got {a.shape[0]} and {b.shape[0]}."
    )
  cov_a = np.atleast_2d(np.cov(a, rowvar=False))
  cov_b = np.atleast_2d(np.cov(b, rowvar=False))
  root = linalg.sqrtm(cov_a @ cov_b)
  distance = (
    np.sum((a.mean(0) - b.mean(0)) ** 2)
    + np.trace(cov_a)
    + np.trace(cov_b)
    - 2.0 * np.trace(np.real(root))
  )
  return float(max(distance, 0.0))


def pca_frechet_distance(x_train, x_reference, x_samples, dim: int = 32, seed: int = 0) -> float:
  """`frechet_distance` of samples to reference images on `dim` principal components.

  Args:
    x_train: images (N_train, ...) that fit the PCA (`pca.pca_features`).
    x_reference: held-out images (N_ref >= 2, ...), the same per-example shape.
    x_samples: the images to judge (N >= 2, ...), the same per-example shape.
    dim: number of principal components.
    seed: random state of the PCA's solver.

  Returns:
    The distance between the features of `x_samples` and of `x_reference`.
  """
  reference = np.asarray(x_reference)
  samples = np.asarray(x_samples)
  if reference.shape[1:] != samples.shape[1:]:
    raise ValueError(
      f"x_reference and x_samples must have the same per-example shape, got "
      f"{reference.shape[1:]} and {samples.shape[1:]}."
    )
  _, features = pca.pca_features(x_train, np.concatenate([reference, samples]), dim, seed=seed)
  return frechet_distance(features[: len(reference)], features[len(reference) :])
