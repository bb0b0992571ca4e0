r"""ParamReL against the baselines of paper Tables 2 and 3, in one harness at one budget.

  .venv/bin/python experiments/compare_baselines.py                  # the default budget
  .venv/bin/python experiments/compare_baselines.py --num_steps=200 --seeds=0 \
      --eval_examples=500                                             # a smoke-scale run

For every dataset and seed, each model of `MODELS` is trained with the trainer's own compiled step
(`train.compile_steps`: AdamW with warm-up and clipping, EMA) on the same batches (the data
iterator's seed is the run's seed) for the same number of steps, with the same network size and
latent_dim (the baselines reuse the ParamReL self-encoder, see `paramrel_jax.baselines`). The EMA
parameters then encode the first `--eval_examples` examples of the training and evaluation splits
(`encode`, the posterior mean; ParamReL: the self-encoder mean at t = 1, its export
format; saved under `--latents_dir` in the layout of `evaluation.latents`) and are scored:

  mnist     (Table 2) 5-fold AUROC of a logistic probe on the digit labels, evaluation-split codes
            (real digits: ../shared/data/mnist10k.npz, binarised at 127);
  shapes2d  (Table 3) generated binary dSprites-like shapes with 5 known factors, and
  scenes3d  (Table 3) generated RGB 3DShapes-like scenes with 6 factors, 256 bins: DCI
            (classifiers fit on training-split codes, scored on evaluation-split codes), TAD /
            ATTRS on the factors binarised at the middle of their range (evaluation split), and
            the AUROC of each factor's probe, averaged over factors.

A plain BFN (latent_dim 0) has no latents; its row is the PCA-of-pixels floor instead: the top
latent_dim principal components of the training images, scored the same way. Each model also
reconstructs `--recon_examples` evaluation images (AE / VAEs: decode(z); DiffAE, InfoDiffusion:
DDIM inversion and decoding, `--ddim_steps`; ParamReL: reverse sampling with as many steps) and
reports the error (binary: fraction of wrong pixels; images: mean absolute error in [-1, 1]).

Writes experiments/results/compare_baselines.json (every seed's numbers, the budget, hardware
and versions) and .md (mean +- std over seeds), rewritten after every model. Duration on the
2 shared CPU cores of the development machine: 200 steps and 1 seed (`--num_steps=200
--seeds=0 --eval_examples=500`, the committed table) took 37 minutes for all datasets and models
(the `small` network: 0.1-0.3 s per step at batch 32 on 28x28 binary images, about 1.5 s for
ParamReL on 32x32 RGB with 256 bins); the default (500 steps, 3 seeds) takes about 4 hours.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `configs` is imported as a package from the repository root
  sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from configs import base  # noqa: E402
from paramrel_jax import (  # noqa: E402
  baselines,
  configuration,
  data,
  metrics,
  registry,
  train,
)
from paramrel_jax.evaluation import evaluators, latents, modes  # noqa: E402

MNIST_PATH = os.path.join(os.path.dirname(ROOT), "shared", "data", "mnist10k.npz")
RESULTS = os.path.join(ROOT, "experiments", "results", "compare_baselines")

# Overrides of configs/base.py per dataset.
DATASETS: dict[str, dict] = {
  "mnist": {
    "data.name": "mnist10k",
    "data.source": "npz",
    "data.path": MNIST_PATH,
    "data.image_size": 28,
    "data.binarize": "threshold",
    "flow.data_type": "discrete",
  },
  "shapes2d": {
    "data.name": "shapes2d",
    "data.source": "generated",
    "data.image_size": 28,
    "data.num_examples": 10_000,
    "data.binarize": "threshold",
    "flow.data_type": "discrete",
  },
  "scenes3d": {
    "data.name": "scenes3d",
    "data.source": "generated",
    "data.image_size": 32,
    "data.num_examples": 10_000,
    "data.binarize": "none",
    "flow.data_type": "discretised",
    "flow.num_bins": 256,
    "flow.sigma1": 1e-3,
  },
}
TABLE = {"mnist": "Table 2", "shapes2d": "Table 3", "scenes3d": "Table 3"}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A row of the table: the model kind and its config overrides (None: the PCA floor)."""

  label: str
  kind: str | None
  overrides: tuple[tuple[str, object], ...] = ()


MODELS: dict[str, ModelSpec] = {
  "paramrel_progressive": ModelSpec(
    "ParamReL (progressive)", "paramrel", (("model.encoder", "progressive"),)
  ),
  "paramrel_vanilla": ModelSpec("ParamReL (vanilla)", "paramrel", (("model.encoder", "vanilla"),)),
  "bfn_pca": ModelSpec("plain BFN: no latents (PCA-of-pixels floor)", None),
  "ae": ModelSpec("AE", "ae"),
  "vae": ModelSpec("VAE", "vae"),
  "beta_vae": ModelSpec("beta-VAE", "beta_vae"),
  "infovae": ModelSpec("InfoVAE", "infovae"),
  "diffae": ModelSpec("DiffAE", "diffae"),
  "infodiffusion": ModelSpec("InfoDiffusion", "infodiffusion"),
}

_DATASETS = flags.DEFINE_list("datasets", list(DATASETS), f"Datasets, of {list(DATASETS)}.")
_MODELS = flags.DEFINE_list("models", list(MODELS), f"Models, of {list(MODELS)}.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (training, data order, probes).")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 500, "Training steps of every model.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Training batch of every model.")
_LR = flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate (AdamW).")
_WARMUP = flags.DEFINE_integer("warmup_steps", 50, "Linear warm-up steps.")
_EMA = flags.DEFINE_float("ema_decay", 0.99, "EMA decay of the evaluated parameters.")
_SIZE = flags.DEFINE_string("size", "small", "Network variant (paramrel_jax.models.variants).")
_LATENT = flags.DEFINE_integer("latent_dim", 8, "latent_dim of every model.")
_BETA = flags.DEFINE_float("beta", 4.0, "KL weight of the beta-VAE.")
_DIFFUSION_STEPS = flags.DEFINE_integer("diffusion_steps", 1000, "T of DiffAE / InfoDiffusion.")
_DDIM_STEPS = flags.DEFINE_integer(
  "ddim_steps", 20, "DDIM / reverse-sampling reconstruction steps."
)
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", 1000, "Examples encoded per split.")
_RECON_EXAMPLES = flags.DEFINE_integer("recon_examples", 64, "Evaluation images reconstructed.")
_N_ESTIMATORS = flags.DEFINE_integer("dci_estimators", 50, "Boosting stages of the DCI trees.")
_OUT = flags.DEFINE_string("out", RESULTS, "Output path without extension (.json and .md).")
_LATENTS_DIR = flags.DEFINE_string(
  "latents_dir",
  os.path.join(ROOT, "runs", "compare_baselines", "latents"),
  "Where the codes go: <dir>/<dataset>/<model>_seed<seed>_<split>.npz ('' = not saved).",
)

SMOKE_STEPS = 2_000  # below this many steps the table is labelled a smoke-scale budget


def experiment_config(dataset: str, spec: ModelSpec, seed: int) -> configuration.ExperimentConfig:
  """The resolved config of one run: base config, dataset overrides, the shared budget."""
  config = base.get_config()
  overrides = {
    **DATASETS[dataset],
    "seed": seed,
    "model.size": _SIZE.value,
    "model.latent_dim": _LATENT.value,
    "training.batch_size": _BATCH.value,
    "training.num_steps": _NUM_STEPS.value,
    "training.learning_rate": _LR.value,
    "training.warmup_steps": _WARMUP.value,
    "training.ema_decay": _EMA.value,
    "sampling.num_steps": _DDIM_STEPS.value,
    "eval.batch_size": 100,
    **dict(spec.overrides),
  }
  for key, value in overrides.items():
    *sections, name = key.split(".")
    node = config
    for section in sections:
      node = node[section]
    if name not in node:
      raise ValueError(f"unknown config key {key!r}.")
    node[name] = value
  return configuration.resolve(config)


def build_model(spec: ModelSpec, cfg: configuration.ExperimentConfig, image_shape):
  """The `interface.Model` of a table row."""
  return registry.make_model(
    spec.kind,
    flow=cfg.flow,
    network=cfg.network,
    objective=cfg.objective,
    image_shape=image_shape,
    settings=baselines.BaselineConfig(beta=_BETA.value, diffusion_steps=_DIFFUSION_STEPS.value),
    ddim_steps=_DDIM_STEPS.value,
  )


def split_arrays(cfg, split: str, num_examples: int) -> dict[str, np.ndarray]:
  """Images and annotations of the first `num_examples` examples of a split, in split order."""
  parts: dict[str, list[np.ndarray]] = {}
  batches = data.create_eval_iterator(
    cfg.data,
    split=split,
    batch_size=cfg.eval.batch_size,
    num_examples=num_examples,
    shard_index=0,
    shard_count=1,
  )
  for batch in batches:
    mask = batch["mask"]
    for name in ("image", *latents.LABEL_KEYS):
      if name in batch:
        parts.setdefault(name, []).append(np.asarray(batch[name])[mask])
  return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def encode_split(encode: Callable, params, images: np.ndarray, batch: int, seed: int):
  """Codes (N, L) float32 of images (N, H, W, C), in batches of `batch` (the last padded)."""
  codes = []
  base_key = jax.random.key(seed)
  for index, start in enumerate(range(0, len(images), batch)):
    chunk = images[start : start + batch]
    padded = np.concatenate([chunk, np.repeat(chunk[:1], batch - len(chunk), axis=0)])
    z = encode(params, jax.random.fold_in(base_key, index), jnp.asarray(padded))
    codes.append(np.asarray(z, np.float32)[: len(chunk)])
  return np.concatenate(codes)


def train_model(model, cfg, image_shape, seed: int) -> tuple[dict, dict[str, float]]:
  """Trains `model` for the budget; returns the EMA parameters and training statistics."""
  exp = train.Experiment(
    model=model,
    optimizer=train.make_optimizer(cfg.training),
    ema_decay=cfg.training.ema_decay,
  )
  mesh = train.make_mesh()
  steps = train.compile_steps(exp, mesh, (cfg.training.batch_size, *image_shape))
  iterator = data.create_train_iterator(
    cfg.data, batch_size=cfg.training.batch_size, seed=seed, shard_index=0, shard_count=1
  )
  state = steps.init(jax.random.key(seed))
  start = time.perf_counter()
  losses = []
  for _ in range(cfg.training.num_steps):
    batch = data.make_global_batch({"image": next(iterator)["image"]}, mesh, axis=train.DATA_AXIS)
    state, step_metrics = steps.train(state, batch)
    losses.append(step_metrics["loss"])
  losses = np.asarray(jax.device_get(losses), np.float64)
  if not np.all(np.isfinite(losses)):
    raise train.NonFiniteError(f"training became non-finite (seed {seed}).")
  diagnostics = jax.device_get(steps.diagnostics(state, batch))
  tail = max(1, len(losses) // 10)
  stats = {
    "train_seconds": time.perf_counter() - start,
    "loss_first": float(losses[:tail].mean()),
    "loss_last": float(losses[-tail:].mean()),
    "active_dims": float(diagnostics["active_dims"]),
    "z_shuffle_gap": float(diagnostics["z_shuffle_gap"]),
    "num_params": int(sum(np.size(leaf) for leaf in jax.tree.leaves(state.params))),
  }
  return state.ema_params, stats


def score(dataset: str, info, z_train, train_arrays, z_eval, eval_arrays, seed: int) -> dict:
  """The dataset's representation metrics of codes (module docstring)."""
  if dataset == "mnist":
    result = metrics.latent_auroc(z_eval, eval_arrays["label"], n_folds=5, seed=seed)
    return {"auroc": result["auroc_mean"], "auroc_fold_std": result["auroc_std"]}
  factors_eval = eval_arrays["factors"]
  aurocs = [
    metrics.latent_auroc(z_eval, factors_eval[:, k], n_folds=5, seed=seed)["auroc_mean"]
    for k in range(factors_eval.shape[1])
  ]
  dci = metrics.dci(
    z_train,
    train_arrays["factors"],
    z_eval,
    factors_eval,
    n_estimators=_N_ESTIMATORS.value,
    seed=seed,
  )
  attributes = evaluators.binarize_factors(factors_eval, info.factor_sizes)
  tad = metrics.tad_cv(z_eval, attributes, n_folds=5, seed=seed)
  return {
    "auroc": float(np.mean(aurocs)),
    "dci_disentanglement": dci["disentanglement"],
    "dci_completeness": dci["completeness"],
    "dci_informativeness": dci["informativeness_test"],
    "tad": tad["tad_mean"],
    "attrs": tad["attrs_mean"],
  }


def reconstruction_error(x_hat: np.ndarray, x: np.ndarray, binary: bool) -> float:
  """Fraction of wrong pixels (binary data) or mean absolute error (images)."""
  if binary:
    return float(np.mean(x_hat != x))
  return float(np.mean(np.abs(x_hat.astype(np.float32) - x.astype(np.float32))))


def run_one(dataset: str, name: str, seed: int) -> dict:
  """Trains (unless the PCA floor), encodes and scores one model on one dataset and seed."""
  spec = MODELS[name]
  cfg = experiment_config(dataset, spec, seed)
  info = data.dataset_info(cfg.data)
  n_train = min(_EVAL_EXAMPLES.value, info.num_train)
  n_eval = min(_EVAL_EXAMPLES.value, info.num_eval)
  train_arrays = split_arrays(cfg, cfg.data.train_split, n_train)
  eval_arrays = split_arrays(cfg, cfg.data.eval_split, n_eval)
  if spec.kind is None:
    z_train, z_eval = metrics.pca_features(
      train_arrays["image"], eval_arrays["image"], _LATENT.value, seed=seed
    )
    result = {}
  else:
    model = build_model(spec, cfg, info.image_shape)
    params, result = train_model(model, cfg, info.image_shape, seed)
    encode, reconstruct = jax.jit(model.encode), jax.jit(model.reconstruct)
    z_train = encode_split(encode, params, train_arrays["image"], cfg.eval.batch_size, seed)
    z_eval = encode_split(encode, params, eval_arrays["image"], cfg.eval.batch_size, seed)
    x = eval_arrays["image"][: _RECON_EXAMPLES.value]
    x_hat = np.asarray(reconstruct(params, jax.random.key(seed), jnp.asarray(x)))
    result["recon_error"] = reconstruction_error(x_hat, x, cfg.flow.data_type == "discrete")
  if _LATENTS_DIR.value:
    for split, z, arrays in (("train", z_train, train_arrays), ("eval", z_eval, eval_arrays)):
      path = os.path.join(_LATENTS_DIR.value, dataset, f"{name}_seed{seed}_{split}.npz")
      labels = {k: v for k, v in arrays.items() if k in latents.LABEL_KEYS}
      latents.save_latents(path, {"z": z, **labels})
  result.update(score(dataset, info, z_train, train_arrays, z_eval, eval_arrays, seed))
  return result


def summarise(runs: dict[str, dict[str, dict[int, dict]]]) -> dict:
  """mean and std (population, over seeds) of every numeric result."""
  summary = {}
  for dataset, by_model in runs.items():
    summary[dataset] = {}
    for name, by_seed in by_model.items():
      keys = sorted({k for r in by_seed.values() for k in r})
      summary[dataset][name] = {
        key: {
          "mean": float(np.mean([r[key] for r in by_seed.values()])),
          "std": float(np.std([r[key] for r in by_seed.values()])),
          "n": len(by_seed),
        }
        for key in keys
      }
  return summary


COLUMNS = {
  "mnist": [("auroc", "AUROC"), ("recon_error", "recon err")],
  "shapes2d": [
    ("auroc", "AUROC"),
    ("dci_disentanglement", "DCI D"),
    ("dci_completeness", "DCI C"),
    ("dci_informativeness", "DCI I"),
    ("tad", "TAD"),
    ("attrs", "ATTRS"),
    ("recon_error", "recon err"),
  ],
}
COLUMNS["scenes3d"] = COLUMNS["shapes2d"]
COMMON_COLUMNS = [
  ("active_dims", "active dims"),
  ("loss_last", "final loss"),
  ("num_params", "params"),
  ("train_seconds", "train s"),
]


def _cell(stats: dict | None, key: str) -> str:
  if stats is None or key not in stats:
    return "-"
  mean, std, n = stats[key]["mean"], stats[key]["std"], stats[key]["n"]
  if key == "num_params":
    return f"{mean:,.0f}"
  digits = 1 if key in ("train_seconds", "loss_last", "active_dims", "attrs") else 3
  return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if n > 1 else "")


def markdown(report: dict) -> str:
  """The comparison tables (mean ± std over seeds) with the budget, hardware and versions."""
  budget = report["budget"]
  smoke = budget["num_steps"] < SMOKE_STEPS
  lines = ["# ParamReL vs. baselines (paper Tables 2 and 3), one harness, one budget", ""]
  if smoke:
    lines += [
      f"**Smoke-scale budget ({budget['num_steps']} steps of batch {budget['batch_size']}, "
      f"{len(budget['seeds'])} seed(s)).** The paper trains 50 epochs with the paper-size "
      "networks (Table 5); these numbers only show that every model runs end to end in the same "
      "harness and must not be read as a reproduction of the paper's values.",
      "",
    ]
  lines += [
    f"Budget: {json.dumps(budget)}",
    "",
    f"Hardware: {json.dumps(report['hardware'])}",
    "",
    f"Versions: {json.dumps(report['versions'])}",
    "",
    "Each cell is the mean ± std over seeds (population std; a single seed: the value). "
    "recon err: fraction of wrong pixels (binary data) or mean absolute error (images); "
    "DCI I is the test accuracy of the factor classifiers; TAD / ATTRS on factors binarised "
    "at the middle of their range. The PCA row has no training; plain BFN has no latents. "
    "ParamReL (reverse sampling) and DiffAE / InfoDiffusion (DDIM inversion) reconstruct from z "
    "plus image-sized stochastic codes, the AE / VAEs from z alone. The final loss is each "
    "model's own objective (not comparable across models).",
    "",
  ]
  for dataset, by_model in report["summary"].items():
    columns = COLUMNS[dataset] + COMMON_COLUMNS
    lines += [
      f"## {dataset} ({TABLE[dataset]})",
      "",
      "| model | " + " | ".join(title for _, title in columns) + " |",
      "| --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for name, stats in by_model.items():
      cells = " | ".join(_cell(stats, key) for key, _ in columns)
      lines.append(f"| {MODELS[name].label} | {cells} |")
    lines.append("")
  return "\n".join(lines)


def write_report(report: dict, out: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump(evaluators.jsonable(report), f, indent=2)
  with open(out + ".md", "w") as f:
    f.write(markdown(report))


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  for flag, values, known in (
    ("datasets", _DATASETS.value, DATASETS),
    ("models", _MODELS.value, MODELS),
  ):
    unknown = sorted(set(values) - set(known))
    if unknown:
      raise app.UsageError(f"--{flag}: unknown {unknown}; known: {list(known)}.")
  seeds = [int(seed) for seed in _SEEDS.value]
  report = {
    "budget": {
      "num_steps": _NUM_STEPS.value,
      "batch_size": _BATCH.value,
      "learning_rate": _LR.value,
      "warmup_steps": _WARMUP.value,
      "ema_decay": _EMA.value,
      "network": _SIZE.value,
      "latent_dim": _LATENT.value,
      "beta": _BETA.value,
      "diffusion_steps": _DIFFUSION_STEPS.value,
      "ddim_steps": _DDIM_STEPS.value,
      "eval_examples": _EVAL_EXAMPLES.value,
      "recon_examples": _RECON_EXAMPLES.value,
      "dci_estimators": _N_ESTIMATORS.value,
      "seeds": seeds,
    },
    "hardware": {
      "platform": platform.platform(),
      "cpu_count": os.cpu_count(),
      "devices": [d.device_kind for d in jax.devices()],
    },
    "versions": modes.versions(),
    "runs": {},
  }
  for dataset in _DATASETS.value:
    for name in _MODELS.value:
      for seed in seeds:
        start = time.perf_counter()
        result = run_one(dataset, name, seed)
        report["runs"].setdefault(dataset, {}).setdefault(name, {})[seed] = result
        report["summary"] = summarise(report["runs"])
        write_report(report, _OUT.value)
        print(
          f"{dataset} {name} seed {seed}: {time.perf_counter() - start:.0f} s "
          + json.dumps({k: round(v, 4) for k, v in result.items()}),
          flush=True,
        )
  print(f"wrote {_OUT.value}.json and {_OUT.value}.md")


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
