"""Representation metrics as numpy functions (scikit-learn underneath).

latent_auroc   cross-validated AUROC of a logistic probe (paper Table 2, Table 3 AUROC)
dci, dci_cv    Disentanglement / Completeness / Informativeness (Table 3, 3DShapes)
tad, tad_cv    Total AUROC Difference and ATTRS (Table 3, CelebA)
pca_features   PCA-of-pixels floor baseline features
frechet_distance, pca_frechet_distance   sample quality (FID's formula, PCA features)
"""

from paramrel_jax.metrics.auroc import latent_auroc
from paramrel_jax.metrics.dci import (
  completeness_score,
  dci,
  dci_cv,
  discretize_factors,
  disentanglement_score,
)
from paramrel_jax.metrics.pca import pca_features
from paramrel_jax.metrics.sample_quality import frechet_distance, pca_frechet_distance
from paramrel_jax.metrics.tad import detector_aurocs, entropy_reduction, tad, tad_cv

__all__ = [
  "completeness_score",
  "dci",
  "dci_cv",
  "detector_aurocs",
  "discretize_factors",
  "disentanglement_score",
  "entropy_reduction",
  "frechet_distance",
  "latent_auroc",
  "pca_features",
  "pca_frechet_distance",
  "tad",
  "tad_cv",
]
