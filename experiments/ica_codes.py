"""DCI of exported codes before and after a FastICA unmixing fitted on them (issue 29).

  .venv/bin/python -m experiments.ica_codes runs/dis_std/scenes3d/paramrel/seed0 \
      runs/dis_std/scenes3d/beta_tcvae/seed0

Each run's `latents/train.npz` (`z` and `factors`, as the study's standard DCI protocol exports
them) is scored by `metrics.dci` on the first `--train` codes and the next `--test`, once as it
is and once after scikit-learn's FastICA (as many components as units, unit variance), fitted on
the same training codes. If the codes were a linear mix of independent factors, the unmixing
would raise DCI disentanglement. Prints one markdown row per run and code.
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
from sklearn.decomposition import FastICA

from paramrel_jax.metrics import dci


def scores(z: np.ndarray, factors: np.ndarray, args) -> dict:
  """DCI of codes z (N, L) on the first args.train rows, tested on the next args.test."""
  split = args.train + args.test
  if len(z) < split:
    raise ValueError(f"the protocol needs {split} codes, the file holds {len(z)}.")
  return dci(
    z[: args.train],
    factors[: args.train],
    z[args.train : split],
    factors[args.train : split],
    n_estimators=args.n_estimators,
    n_jobs=args.jobs,
  )


def unmix(z: np.ndarray, num_train: int, seed: int) -> np.ndarray:
  """z through FastICA (L components, unit variance) fitted on its first num_train rows."""
  ica = FastICA(z.shape[1], whiten="unit-variance", random_state=seed, max_iter=2000, tol=1e-3)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a FastICA that stops at max_iter still gives its unmixing
    ica.fit(z[:num_train])
  return ica.transform(z)


def main(argv: list[str] | None = None) -> list[str]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("runs", nargs="+", help="run directories with latents/train.npz")
  parser.add_argument("--train", type=int, default=10_000)
  parser.add_argument("--test", type=int, default=5_000)
  parser.add_argument("--n_estimators", type=int, default=100)
  parser.add_argument("--jobs", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  rows = ["| run | codes | D | C | I |", "| --- | --- | --- | --- | --- |"]
  for run in args.runs:
    with np.load(os.path.join(run, "latents", "train.npz")) as data:
      z, factors = data["z"], data["factors"]
    for name, codes in (("as exported", z), ("FastICA", unmix(z, args.train, args.seed))):
      result = scores(codes, factors, args)
      rows.append(
        f"| {run} | {name} | {result['disentanglement']:.3f} | {result['completeness']:.3f} | "
        f"{result['informativeness_test']:.3f} |"
      )
      print(rows[-1], flush=True)
  return rows


if __name__ == "__main__":
  main()
