"""2-D pictures of latent codes: PCA and t-SNE projections coloured by what the dataset annotates.

`save_projections` writes one PNG per method, with a panel per annotation: the class label
(mnist-like data), each attribute (celeb_a) or each ground-truth factor (shapes3d, the generated
sets). At most `MAX_POINTS` codes are drawn, a seeded subsample, so t-SNE stays cheap (a few
seconds on a CPU core); both methods project the same points.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import threadpoolctl  # a dependency of scikit-learn
from sklearn.manifold import TSNE

from paramrel_jax.viz import plots

METHODS = ("pca", "tsne")
MAX_POINTS = 2000
TSNE_PERPLEXITY = 30.0


def _check_codes(z) -> np.ndarray:
  z = np.asarray(z)
  if z.ndim != 2 or z.shape[0] < 3 or z.shape[1] < 2:
    raise ValueError(f"codes must have shape (N, L) with N >= 3 and L >= 2, got {z.shape}.")
  if not np.issubdtype(z.dtype, np.floating) or not np.isfinite(z).all():
    raise ValueError(f"codes must be finite floats, got dtype {z.dtype}.")
  return z.astype(np.float64)


def pca_2d(z) -> np.ndarray:
  """The codes' coordinates on their first two principal axes, float32 (N, 2).

  Each axis's sign makes its largest loading positive, so the picture is the same on every
  machine.

  Raises:
    ValueError: z not finite floats of shape (N, L) with N >= 3, L >= 2.
  """
  z = _check_codes(z)
  centred = z - z.mean(axis=0)
  _, _, axes = np.linalg.svd(centred, full_matrices=False)
  axes = axes[:2]
  axes *= np.sign(axes[np.arange(2), np.argmax(np.abs(axes), axis=1)])[:, None]
  return (centred @ axes.T).astype(np.float32)


def tsne_2d(z, *, seed: int = 0) -> np.ndarray:
  """sklearn's t-SNE of the codes, float32 (N, 2), perplexity min(30, (N - 1) / 3).

  It runs on one thread: the Barnes-Hut sums then add up in one order on every machine (the same
  picture for a seed), and OpenMP threads do not spin against a busy machine (20x slower).

  Raises:
    ValueError: z not finite floats of shape (N, L) with N >= 3, L >= 2.
  """
  z = _check_codes(z)
  perplexity = min(TSNE_PERPLEXITY, (len(z) - 1) / 3)
  tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
  with threadpoolctl.threadpool_limits(limits=1):
    return tsne.fit_transform(z).astype(np.float32)


def colourings(
  arrays: dict[str, np.ndarray],
  *,
  attribute_names: Sequence[str] = (),
  factor_names: Sequence[str] = (),
) -> dict[str, np.ndarray]:
  """Panel title -> (N,) values: 'label', each attribute, each factor that `arrays` holds.

  Columns without a name (or names of another length) are called 'attribute <i>' / 'factor <i>'.
  """
  panels = {}
  if "label" in arrays:
    panels["label"] = arrays["label"]
  for key, names in (("attributes", attribute_names), ("factors", factor_names)):
    if key in arrays:
      columns = arrays[key].T
      if len(names) != len(columns):
        names = [f"{key[:-1]} {i}" for i in range(len(columns))]
      panels.update(zip(names, columns, strict=True))
  return panels


def save_projections(
  directory: str,
  name: str,
  arrays: dict[str, np.ndarray],
  *,
  attribute_names: Sequence[str] = (),
  factor_names: Sequence[str] = (),
  seed: int = 0,
  max_points: int = MAX_POINTS,
) -> dict[str, str]:
  """Writes directory/<name>_<method>.png for every method of METHODS.

  Args:
    directory: output folder (created).
    name: file name prefix, e.g. the split.
    arrays: 'z' (N, L) codes and the annotations of `colourings`, rows in the same order.
    attribute_names, factor_names: panel titles of the attribute and factor columns.
    seed: seed of the subsample, of t-SNE and of the drawing order.
    max_points: the most codes drawn.

  Returns:
    {method: path of its PNG}.

  Raises:
    ValueError: no 'z', codes that are not (N, L) finite floats with N >= 3 and L >= 2, or
      annotations with another number of rows.
  """
  if "z" not in arrays:
    raise ValueError(f"no codes to plot: the arrays hold no 'z' (keys: {sorted(arrays)}).")
  z = _check_codes(arrays["z"])
  panels = colourings(arrays, attribute_names=attribute_names, factor_names=factor_names)
  for title, values in panels.items():
    if len(values) != len(z):
      raise ValueError(f"{title!r} has {len(values)} rows but there are {len(z)} codes.")
  if len(z) > max_points:
    keep = np.sort(np.random.default_rng(seed).choice(len(z), max_points, replace=False))
    z, panels = z[keep], {title: values[keep] for title, values in panels.items()}
  projections = {"pca": pca_2d(z), "tsne": tsne_2d(z, seed=seed)}
  paths = {}
  for method in METHODS:
    paths[method] = os.path.join(directory, f"{name}_{method}.png")
    plots.save_scatter(paths[method], projections[method], panels, seed=seed)
  return paths
