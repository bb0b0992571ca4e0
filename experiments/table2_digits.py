r"""Paper Table 2 on real digits: latent AUROC of ParamReLd (progressive / vanilla encoder) vs BFN.

  .venv/bin/python -m experiments.table2_digits                       # mnist10k, default budget
  .venv/bin/python -m experiments.table2_digits --steps=300 --seeds 0  # a quick check
  .venv/bin/python -m experiments.table2_digits --dataset=bmnist --data_dir=~/tensorflow_datasets

Three models are trained with `paramrel_jax.training.train.train_and_evaluate` on binarised digits
(threshold 127) for each seed:

  paramrel_progressive  discrete ParamReL, self-encoder q(z_t | e, t) (e: model.encoder_input)
  paramrel_vanilla      discrete ParamReL, encoder q(z | e) without the time input
  bfn                   the plain BFN (model.latent_dim = 0); it has no latents and probing its
                        network's features is not allowed, so its AUROC row is the floor
                        baseline: a PCA of the binarised pixels with the same dimensionality
                        (fitted on the training split)

Each run then writes `eval/metrics.json` (test likelihood, `cli.eval_modes.run_eval`) and
`latents/{train,test}.npz` (`run_export_latents`, the encoder mean at flow time 1). The AUROC
follows the paper (Sec. 5.1.1): a logistic probe on the codes of the labelled test split,
5-fold cross-validated (80 % / 20 %), one-vs-rest macro AUROC over the 10 digits, mean +- std
over folds (`metrics.latent_auroc`); with several seeds the table also gives the mean over seeds.

Results go to `<out>/table2_digits.json` and `.md` (`table2_<dataset>.*` for TFDS data) with the
budget, seeds, hardware and library versions. Runs resume from
`<workdir>/<dataset>/<model>/seed<k>`.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from paramrel_jax import data, metrics, study
from paramrel_jax.config import configuration
from paramrel_jax.configs import bfashionmnist, bmnist
from paramrel_jax.evaluation import latents
from paramrel_jax.study import apply_overrides, hardware
from paramrel_jax.training import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODELS = {
  "paramrel_progressive": {"model.encoder": "progressive"},
  "paramrel_vanilla": {"model.encoder": "vanilla"},
  "bfn": {"model.latent_dim": 0},
}
DATASETS = {
  "mnist10k": (bmnist, {"data.source": "npz", "data.path": "../shared/data/mnist10k.npz"}),
  "bmnist": (bmnist, {}),
  "bfashionmnist": (bfashionmnist, {}),
}


def split_pixels(config, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(binarised images (N, H, W, C), labels (N,)) of a whole split, as the models see them."""
  resolved = configuration.resolve(config)
  images, labels = [], []
  for batch in data.create_eval_iterator(
    resolved.data, split=split, batch_size=200, shard_index=0, shard_count=1
  ):
    images.append(batch["image"][batch["mask"]])
    labels.append(batch["label"][batch["mask"]])
  return np.concatenate(images), np.concatenate(labels)


def summarise(values: list[float]) -> dict:
  return {"mean": float(np.mean(values)), "std_over_seeds": float(np.std(values)), "n": len(values)}


def markdown_table(result: dict) -> str:
  """The Markdown version of the results."""
  budget = result["budget"]
  lines = [
    f"# Table 2 on {result['dataset']}: latent AUROC (5-fold, test split) and test likelihood",
    "",
    f"Budget per model: {budget['steps']} steps at batch {budget['batch_size']} "
    f"(`{budget['size']}` network, latent_dim {budget['latent_dim']}, lr "
    f"{budget['learning_rate']}, EMA {budget['ema_decay']}), seeds {result['seeds']}; "
    f"hardware: {result['hardware']}; probe on {result['num_probe_examples']} test digits.",
    "",
    "| model | AUROC (mean +- std over folds) | test loss (nats / image) | "
    "-ELBO (nats / image) | bits / dim | train time (s) |",
    "| --- | --- | --- | --- | --- | --- |",
  ]
  for name, rows in result["models"].items():
    for row in rows:
      auroc = row["auroc"]
      nats = row["likelihood"]["nats_per_image"]
      label = f"{name} (seed {row['seed']})"
      if name == "bfn":
        label += f" / AUROC: PCA-{result['budget']['latent_dim']} of pixels"
      lines.append(
        f"| {label} | {auroc['auroc_mean']:.4f} +- {auroc['auroc_std']:.4f} | "
        f"{nats['test_loss']:.2f} | {nats['neg_elbo']:.2f} | "
        f"{row['likelihood']['bits_per_dim']['test_loss']:.4f} | {row['train_seconds']} |"
      )
  if len(result["seeds"]) > 1:
    lines += ["", "| model | AUROC mean over seeds | std over seeds |", "| --- | --- | --- |"]
    for name, summary in result["summary"].items():
      lines.append(f"| {name} | {summary['mean']:.4f} | {summary['std_over_seeds']:.4f} |")
  lines += [
    "",
    "Test loss = n-step / continuous-time BFN loss + reconstruction loss (the official BFN test "
    "loss); -ELBO adds the step-averaged rate KL[q(z_t | e, t) || N(0, I)] (paper Eq. 6). "
    f"Likelihood settings: {result['likelihood_settings']}.",
  ]
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist10k")
  parser.add_argument("--data_dir", default="", help="TFDS data_dir for bmnist / bfashionmnist.")
  parser.add_argument(
    "--data_path",
    default="",
    help="the mnist10k npz (default: the data.path of DATASETS['mnist10k'])",
  )
  study.add_budget_flags(parser, steps=500)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0])
  parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
  parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "table2"))
  parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results"))
  args = parser.parse_args(argv)

  module, data_overrides = DATASETS[args.dataset]
  if args.data_path:
    data_overrides = {**data_overrides, "data.path": args.data_path}
  budget = {
    "steps": args.steps,
    "batch_size": args.batch_size,
    "size": args.size,
    "latent_dim": args.latent_dim,
    "learning_rate": args.learning_rate,
    "ema_decay": args.ema_decay,
  }
  common = {
    **data_overrides,
    **study.budget_overrides(args, log_every=max(1, args.steps // 10), checkpoint_every=args.steps),
  }
  if args.data_dir:
    common["data.data_dir"] = os.path.expanduser(args.data_dir)

  reference = apply_overrides(module.get_config(), common)
  resolved = configuration.resolve(reference)
  test_split = resolved.data.eval_split
  x_train, _ = split_pixels(reference, resolved.data.train_split)
  x_test, y_test = split_pixels(reference, test_split)
  x_test, y_test = x_test[: args.num_examples], y_test[: args.num_examples]
  _, pca_test = metrics.pca_features(x_train, x_test, args.latent_dim, seed=0)

  rows: dict[str, list[dict]] = {name: [] for name in args.models}
  for seed in args.seeds:
    for name in args.models:
      config = apply_overrides(module.get_config(), {**common, **MODELS[name], "seed": seed})
      workdir = os.path.join(args.workdir, args.dataset, name, f"seed{seed}")
      config, resolved_run = runs.settle(config, workdir)
      run = study.train_run(config, resolved_run, workdir, export=name != "bfn")
      if name == "bfn":
        z, labels, features = pca_test, y_test, f"PCA-{args.latent_dim} of the test pixels"
      else:
        arrays = latents.load_latents(run["latents"][test_split])
        z, labels = arrays["z"], arrays["label"]
        features = "encoder mean at t = 1 of the test images"
      auroc = metrics.latent_auroc(z, labels, n_folds=5, seed=seed)
      rows[name].append({"seed": seed, "features": features, "auroc": auroc, **run})
      print(
        f"{name} seed {seed}: AUROC {auroc['auroc_mean']:.4f} +- {auroc['auroc_std']:.4f}, "
        f"test loss {run['likelihood']['nats_per_image']['test_loss']:.2f} nats/image"
      )

  first = next(iter(rows.values()))[0]["likelihood"]
  result = {
    "dataset": args.dataset,
    "seeds": args.seeds,
    "budget": budget,
    "hardware": hardware(),
    "num_probe_examples": int(len(y_test)),
    "likelihood_settings": {
      k: first[k] for k in ("split", "num_examples", "loss_steps", "n_repeats", "loss_samples", "z")
    },
    "versions": next(iter(rows.values()))[0]["versions"],
    "models": rows,
    "summary": {
      name: summarise([r["auroc"]["auroc_mean"] for r in rs]) for name, rs in rows.items()
    },
  }
  os.makedirs(args.out, exist_ok=True)
  stem = os.path.join(
    args.out, "table2_digits" if args.dataset == "mnist10k" else f"table2_{args.dataset}"
  )
  with open(f"{stem}.json", "w") as f:
    json.dump(result, f, indent=2, sort_keys=True)
  with open(f"{stem}.md", "w") as f:
    f.write(markdown_table(result))
  print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
  main()
