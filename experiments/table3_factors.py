r"""Paper Table 3 on the generated factor datasets: DCI, TAD / ATTRS and factor AUROC of ParamReL.

  .venv/bin/python -m experiments.table3_factors                        # default budget
  .venv/bin/python -m experiments.table3_factors --steps=300 --num_examples=500   # a quick check

Models (each trained with `paramrel_jax.training.train.train_and_evaluate`, progressive
self-encoder):

  paramrelc_discretised  ParamReLc on `scenes3d` (3DShapes-like RGB scenes, 6 factors), data on
                         16 bins, discretised flow (sigma1 = 0.02)
  paramrelc_continuous   the same data with the continuous flow (off by default: --models)
  paramreld              ParamReLd on binary `shapes2d` (dSprites-like, 5 factors), discrete flow

After training, the registry's evaluators (`paramrel_jax.evaluation.evaluators`) score the encoder
means at flow time 1 of the first `--num_examples` training images:

  dci    5-fold DCI (`metrics.dci_cv`; gradient-boosted trees with --n_estimators stages, factors
         used as classes); D is the paper's "DCI" column;
  tad    5-fold TAD and ATTRS (`metrics.tad_cv`) on the factors binarised one attribute per factor:
         factor k with S_k values -> [2 * value >= S_k], the upper half of its value range vs the
         lower half (`evaluators.binarize_factors`); the factors are independent, so every
         attribute passes the entropy filter and ATTRS counts the factors captured by one latent
         dimension with AUROC >= 0.75;
  auroc  5-fold logistic-probe AUROC of each factor (one-vs-rest macro over its values), mean
         over factors (`metrics.latent_auroc`).

Results go to `<out>/table3_factors.json` and `.md`, with budget, seeds, hardware and versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import numpy as np

from paramrel_jax import study
from paramrel_jax.configs import default
from paramrel_jax.evaluation import evaluators
from paramrel_jax.study import apply_overrides, hardware
from paramrel_jax.training import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = {
  "data.name": "scenes3d",
  "data.image_size": 32,
  "flow.num_bins": 16,
  "flow.sigma1": 0.02,
}
MODELS = {
  "paramrelc_discretised": {**SCENES, "flow.data_type": "discretised"},
  "paramrelc_continuous": {**SCENES, "flow.data_type": "continuous"},
  "paramreld": {
    "data.name": "shapes2d",
    "data.image_size": 28,
    "flow.data_type": "discrete",
  },
}


def markdown_table(result: dict) -> str:
  """The Markdown version of the results."""
  budget = result["budget"]
  lines = [
    "# Table 3 on generated factor datasets: DCI, TAD / ATTRS, factor AUROC",
    "",
    f"Budget per model: {budget['steps']} steps at batch {budget['batch_size']} "
    f"(`{budget['size']}` network, latent_dim {budget['latent_dim']}, lr "
    f"{budget['learning_rate']}, EMA {budget['ema_decay']}), {budget['num_examples']} of "
    f"{budget['dataset_size']} generated images; DCI with {budget['n_estimators']} boosting "
    f"stages; seeds {result['seeds']}; hardware: {result['hardware']}.",
    "",
    "| model | seed | DCI D | DCI C | DCI I (test acc.) | TAD | ATTRS | factor AUROC | "
    "test loss (nats / image) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for name, rows in result["models"].items():
    for row in rows:
      dci, tad, auroc = row["dci"], row["tad"], row["auroc"]
      lines.append(
        f"| {name} | {row['seed']} | {dci['disentanglement_mean']:.3f} +- "
        f"{dci['disentanglement_std']:.3f} | {dci['completeness_mean']:.3f} | "
        f"{dci['informativeness_test_mean']:.3f} | {tad['tad_mean']:.3f} +- {tad['tad_std']:.3f} | "
        f"{tad['attrs_mean']:.1f} / {len(tad['attribute_names'])} | {auroc['auroc_mean']:.3f} | "
        f"{row['likelihood']['nats_per_image']['test_loss']:.1f} |"
      )
  lines += [
    "",
    "Mean +- std over the 5 folds. TAD attributes: each factor binarised as "
    "[2 * value >= number of values] (upper vs lower half of its range).",
  ]
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  study.add_budget_flags(parser, latent_dim=10)
  parser.add_argument("--dataset_size", type=int, default=20_000)
  parser.add_argument("--n_estimators", type=int, default=20, help="DCI boosting stages")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0])
  parser.add_argument(
    "--models", nargs="+", choices=sorted(MODELS), default=["paramrelc_discretised", "paramreld"]
  )
  parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "table3"))
  parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results"))
  args = parser.parse_args(argv)

  budget = {
    k: getattr(args, k)
    for k in (
      "steps",
      "batch_size",
      "size",
      "latent_dim",
      "learning_rate",
      "ema_decay",
      "dataset_size",
      "num_examples",
      "n_estimators",
    )
  }
  common = {
    "model.encoder": "progressive",
    "data.num_examples": args.dataset_size,
    **study.budget_overrides(args, log_every=max(1, args.steps // 10), checkpoint_every=args.steps),
  }
  every = {"every": max(1, args.steps // 10)}  # any multiple of log_every: run here by hand
  evals = {
    # the 5-fold estimate InfoDiffusion reports (paper Table 3), not the standard protocol
    "dci": {**every, "protocol": "quick", "n_estimators": args.n_estimators},
    "tad": dict(every),
    "auroc": dict(every),
  }
  rows: dict[str, list[dict]] = {name: [] for name in args.models}
  for seed in args.seeds:
    for name in args.models:
      config = apply_overrides(default.get_config(), {**common, **MODELS[name], "seed": seed})
      workdir = os.path.join(args.workdir, name, f"seed{seed}")
      config, resolved = runs.settle(config, workdir)
      run = study.train_run(config, resolved, workdir, export=False)
      resolved = dataclasses.replace(resolved, evals=evals)
      model = runs.restore(resolved, workdir)
      row = {"seed": seed, **run}
      for evaluator in evaluators.build_evaluators(resolved, model.model):
        row[evaluator.name] = evaluators.jsonable(evaluator.evaluate(model.model, model.params))
      rows[name].append(row)
      print(
        f"{name} seed {seed}: DCI D {row['dci']['disentanglement_mean']:.3f}, "
        f"TAD {row['tad']['tad_mean']:.3f} ({row['tad']['attrs_mean']:.1f} attrs), "
        f"factor AUROC {row['auroc']['auroc_mean']:.3f}"
      )

  result = {
    "seeds": args.seeds,
    "budget": budget,
    "hardware": hardware(),
    "versions": next(iter(rows.values()))[0]["versions"],
    "models": rows,
    "summary": {
      name: {
        score: float(np.mean([r[section][key] for r in rs]))
        for score, section, key in (
          ("dci_disentanglement", "dci", "disentanglement_mean"),
          ("tad", "tad", "tad_mean"),
          ("attrs", "tad", "attrs_mean"),
          ("factor_auroc", "auroc", "auroc_mean"),
        )
      }
      for name, rs in rows.items()
    },
  }
  os.makedirs(args.out, exist_ok=True)
  stem = os.path.join(args.out, "table3_factors")
  with open(f"{stem}.json", "w") as f:
    json.dump(result, f, indent=2, sort_keys=True)
  with open(f"{stem}.md", "w") as f:
    f.write(markdown_table(result))
  print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
  main()
