r"""Disentanglement against training steps (issue 29, item 6): one latent-study row on scenes3d.

  .venv/bin/python -m experiments.disentangle_curve --row pool_flatten --image_size 64 \
      --num_bins 256 --steps 100000 --every 1000 --workdir runs/curve          # train, then:
  .venv/bin/python -m experiments.disentangle_curve --workdir runs/curve --report

Trains the row's config (`latent_study.row_config` on scenes3d, at the flags' resolution and
bins) with a DCI evaluator in training: the quick protocol (`--num_examples` codes of the
evaluation split, 5-fold, 20 trees) every `--every` steps, on the EMA weights. Meant for an
accelerator, where `--steps` is an upper bound and the run is stopped by a time limit
(`timeout`): the curve is whatever was logged. `--report` reads the run's metrics.jsonl and writes
`<out>/disentangle_curve.json` and `.md` (D, C, I, test loss per evaluated step).
"""

from __future__ import annotations

import argparse
import json
import os

from experiments import latent_study
from paramrel_jax import study
from paramrel_jax.training import runs, train, workdir_utils

COLUMNS = ("disentanglement", "completeness", "informativeness_test")
ROW_FILE = "curve_row.json"  # the row a run trains, for --report


def curve_config(args) -> object:
  """The row's scenes3d config at the flags' resolution, bins and budget, with a DCI evaluator."""
  budget = argparse.Namespace(**vars(args), curve_every=args.every, dci_protocol="quick")
  config = latent_study.row_config("scenes3d", args.row, args.seed, budget)
  config.data.image_size = args.image_size
  config.flow.num_bins = args.num_bins
  config.evals.dci = dict(every=args.every, protocol="quick", n_estimators=20, n_jobs=args.dci_jobs)
  return config


def read_curve(workdir: str) -> list[dict]:
  """The logged DCI scores of a run: one dict per evaluated step."""
  rows = []
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      record = json.loads(line)
      if f"eval/dci/{COLUMNS[0]}" in record:
        rows.append(
          {
            "step": record["step"],
            "loss": record.get("loss"),
            **{c: record[f"eval/dci/{c}"] for c in COLUMNS},
          }
        )
  return rows


def markdown(rows: list[dict], config: dict) -> str:
  lines = [
    f"# DCI against steps: scenes3d {config['image_size']}x{config['image_size']}, "
    f"{config['num_bins']} bins, row {config['row']}",
    "",
    "Quick protocol (5-fold, 20 trees) on the evaluation split's codes, EMA weights.",
    "",
    "| step | D | C | I | training loss |",
    "| --- | --- | --- | --- | --- |",
  ]
  for r in rows:
    lines.append(
      f"| {r['step']} | {r['disentanglement']:.3f} | {r['completeness']:.3f} | "
      f"{r['informativeness_test']:.3f} | {r['loss']:.1f} |"
    )
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--row",
    default="pool_flatten",
    choices=list(latent_study.ALL_ROWS),
    help="the latent-study row to train (--report reads it from the run)",
  )
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--num_bins", type=int, default=256)
  study.add_budget_flags(parser, steps=100_000)  # --num_examples: the codes DCI scores
  parser.add_argument("--every", type=int, default=1000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--dci_jobs", type=int, default=1)
  parser.add_argument("--workdir", default="runs/disentangle_curve")
  parser.add_argument("--out", default="experiments/results")
  parser.add_argument(
    "--report", action="store_true", help="only tabulate the logged curve of --workdir"
  )
  args = parser.parse_args(argv)
  if args.report:
    with open(os.path.join(args.workdir, "config.json")) as f:
      saved = json.load(f)
    with open(os.path.join(args.workdir, ROW_FILE)) as f:
      row = json.load(f)["row"]
    config = {
      "row": row,
      "image_size": saved["data"]["image_size"],
      "num_bins": saved["flow"]["num_bins"],
    }
    rows = read_curve(args.workdir)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "disentangle_curve.json"), "w") as f:
      json.dump({"config": config, "curve": rows, "hardware": study.hardware()}, f, indent=1)
    with open(os.path.join(args.out, "disentangle_curve.md"), "w") as f:
      f.write(markdown(rows, config))
    print(markdown(rows, config))
    return
  config, resolved = runs.settle(curve_config(args), args.workdir)
  workdir_utils.prepare_workdir(args.workdir, config)
  with open(os.path.join(args.workdir, ROW_FILE), "w") as f:
    json.dump({"row": args.row}, f)
  train.train_and_evaluate(resolved, args.workdir)


if __name__ == "__main__":
  main()
