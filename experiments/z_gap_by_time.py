"""Where along the flow the output network reads z (issue 29).

  .venv/bin/python -m experiments.z_gap_by_time RUN [RUN ...] --out DIR

For each trained ParamReL run, the first `--num` images of its evaluation split: at each flow
time of `--times` one theta_t per image, and the BFN term L^inf (nats / image) with the image's
own code, another image's (`shuffled`) and z = 0 (`LoadedModel.latent_gap_arrays`). The loss at t
carries the ELBO's weight of t, so a gap's mean over the times (evenly spaced from 0 to 1) is its
share of the bound; `share` is each time's part of that mean. Writes DIR/z_gap_by_time.md,
.json and .png (the gaps against t, one panel per run and code).

If the output network read everything it needs from theta_t, the own code would help only at
the early times, where theta_t holds little of x.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from paramrel_jax import api
from paramrel_jax.viz import plots

DEFAULT_TIMES = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def run_gaps(run: str, times: np.ndarray, num: int, seed: int) -> dict:
  """{'times', 'own', 'shuffled', 'zero'}: the mean BFN term per time (T,) of one run."""
  model = api.load(run)
  terms = model.latent_gap_arrays(model.to_model(model.eval_data(num)), times, seed=seed)
  return {"times": times.tolist(), **{k: v.mean(axis=1).tolist() for k, v in terms.items()}}


def table(results: dict[str, dict]) -> list[str]:
  """Markdown rows: per run and time the own code's loss, the gaps and each gap's share."""
  rows = [
    "| run | t | own z | shuffled - own | share | zero - own | share |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ]
  for run, r in results.items():
    own = np.asarray(r["own"])
    gaps = {name: np.asarray(r[name]) - own for name in ("shuffled", "zero")}
    total = {name: gap.sum() for name, gap in gaps.items()}
    for k, t in enumerate(r["times"]):
      cells = [f"{own[k]:.1f}"]
      for name, gap in gaps.items():
        share = gap[k] / total[name] if total[name] else float("nan")
        cells += [f"{gap[k]:.1f}", f"{share:.2f}"]
      rows.append(f"| {run} | {t:.2f} | " + " | ".join(cells) + " |")
    means = " | ".join(f"{gaps[n].mean():.1f} | 1.00" for n in gaps)
    rows.append(f"| {run} | mean | {own.mean():.1f} | {means} |")
  return rows


def main(argv: list[str] | None = None) -> list[str]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("runs", nargs="+", help="trained ParamReL run directories")
  parser.add_argument("--times", type=float, nargs="+", default=DEFAULT_TIMES)
  parser.add_argument("--num", type=int, default=512, help="evaluation images per run")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", required=True, help="folder for the .md, .json and .png")
  args = parser.parse_args(argv)
  times = np.asarray(args.times, np.float32)
  results = {run.rstrip("/"): run_gaps(run, times, args.num, args.seed) for run in args.runs}
  rows = table(results)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "z_gap_by_time.json"), "w") as f:
    json.dump({"num": args.num, "seed": args.seed, "runs": results}, f, indent=1)
  with open(os.path.join(args.out, "z_gap_by_time.md"), "w") as f:
    f.write("\n".join(rows) + "\n")
  curves = {}
  for run, r in results.items():
    name = os.path.join(*run.split(os.sep)[-3:])  # dataset/row/seed
    for code in ("shuffled", "zero"):
      curves[f"{name}: {code} - own"] = (r["times"], np.subtract(r[code], r["own"]))
  plots.save_curves(os.path.join(args.out, "z_gap_by_time.png"), curves)
  print("\n".join(rows))
  return rows


if __name__ == "__main__":
  main()
