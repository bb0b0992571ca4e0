r"""The latent study (issue 15): what the encoder reads, variants and baselines at one budget.

  .venv/bin/python -m experiments.latent_study                          # everything, resumable
  .venv/bin/python -m experiments.latent_study --datasets mnist10k --rows paramrel ae pca

Every row is trained and scored by the one shared harness, `paramrel_jax.study`
(`run_row`: the trainer, the likelihood evaluation, the latent export and the latent evaluators;
`pca_row`: the floor). Rows differ only in config overrides (`ROWS`) on the dataset's config
(`DATASETS`), all at the budget of the flags. `--seeds` applies to `MULTI_SEED_ROWS` (per
dataset: the default, the paper-literal form and the strongest baseline); the other rows use the
first seed.

Scores, on the codes of the first `--num_examples` evaluation-split images:
  mnist10k   5-fold logistic-probe AUROC on the digit labels (paper Table 2);
  shapes2d   DCI disentanglement / completeness / informativeness, TAD and ATTRS on the factors
  scenes3d   binarised at the middle of their range, and the mean factor AUROC (paper Table 3).
Every ParamReL row also reports the test loss and -ELBO (nats / image), the last logged
z_shuffle_gap (the BFN loss increase when each image gets another image's z) and active
dimensions; the default row logs its AUROC every `--curve_every` steps (the learning curve).

`--sample_quality N` judges N prior samples of each finished run with a prior, with z from N(0, I)
and from the fitted prior (`study.sample_quality`): `<out>/sample_quality.json` and `.md`.

`--merge A.json B.json ...` tabulates the `--rows` of saved results of one budget (runs made in
several sittings or processes): a row is the last file's, or the union of the files' seeds where
those are disjoint and the overrides equal.

Runs live in `<workdir>/<dataset>/<row>/seed<k>` and resume; a finished row's result is cached in
its workdir (`study_row.json`), so rerunning the script only computes what is missing. Writes
`<out>/latent_study.json` and `.md` after every row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

import ml_collections
import numpy as np

from paramrel_jax import study
from paramrel_jax.cli import generation_modes
from paramrel_jax.config import configuration
from paramrel_jax.configs import base, bmnist
from paramrel_jax.evaluation import evaluators
from paramrel_jax.methods import registry

MNIST_PATH = "../shared/data/mnist10k.npz"

# Dataset -> (base config, overrides, latent scores).
DATASETS: dict[str, tuple] = {
  "mnist10k": (
    bmnist.get_config,
    {"data.source": "npz", "data.path": MNIST_PATH},
    {"auroc": {}},
  ),
  "shapes2d": (
    base.get_config,
    {"data.name": "shapes2d", "data.source": "generated", "data.num_examples": 10_000},
    {"dci": {"protocol": "quick", "n_estimators": 20}, "tad": {}, "auroc": {}},
  ),
  "scenes3d": (
    base.get_config,
    {
      "data.name": "scenes3d",
      "data.source": "generated",
      "data.num_examples": 10_000,
      "data.image_size": 32,
      "flow.data_type": "discretised",
      "flow.num_bins": 16,
      "objective.latent_weighting": "elbo",
      "objective.time_power": 1.0,
    },  # as configs/shapes3d.py
    {"dci": {"protocol": "quick", "n_estimators": 20}, "tad": {}, "auroc": {}},
  ),
}

# Row -> config overrides on the dataset's config; None: the PCA floor.
ROWS: dict[str, dict | None] = {
  "paramrel": {},  # the default config
  "paramrel_final_params": {"model.encoder_input": "final_params"},
  # paper Eq. 3 and 12 literally: the defaults before the study (workdir_utils.RUN_SETTINGS)
  "paramrel_theta_t": {
    "model.encoder_input": "theta_t",
    "model.adagn": "paper",
    "model.latent_map": False,
    "model.posterior_logvar_init": 0.0,
    "objective.latent_weighting": "elbo",
    "objective.mmd_scale": "none",
    "objective.mmd_weight": 0.1,
    "objective.time_power": 1.0,
    "sampling.z_prior": "standard",
  },
  "paramrel_vanilla": {"model.encoder": "vanilla"},
  # the plain BFN (uniform times, as the official BFN): likelihood and samples only
  "bfn": {"model.latent_dim": 0, "objective.time_power": 1.0},
  "diffae": {"model.kind": "diffae"},
  "infodiffusion": {"model.kind": "infodiffusion"},
  "ae": {"model.kind": "ae"},
  "beta_vae": {"model.kind": "beta_vae"},
  "pca": None,
}
# Further baselines, run only when named in --rows.
EXTRA_ROWS: dict[str, dict] = {
  "vae": {"model.kind": "vae"},
  "infovae": {"model.kind": "infovae"},
  "beta_tcvae": {"model.kind": "beta_tcvae"},  # total-correlation weight model.beta (4)
}
# The path from the pre-study defaults (with the data as the encoder input) to today's, one
# change at a time (experiments/README.md); not run unless named in --rows.
_BEFORE = {
  "model.posterior_logvar_init": 0.0,
  "model.latent_map": False,
  "objective.latent_weighting": "elbo",
  "objective.mmd_scale": "none",
  "objective.mmd_weight": 0.1,
  "objective.time_power": 1.0,
}
# The default before time_power 2, which the MMD and rate rows below were measured against.
_UNIFORM_TIMES = {"objective.time_power": 1.0}
ABLATIONS: dict[str, dict] = {
  "ablation_before": _BEFORE,
  "ablation_diffae_adagn": {**_BEFORE, "model.adagn": "diffae"},
  "ablation_flat_encoder": {**_BEFORE, "objective.latent_weighting": "flat"},
  "ablation_deterministic": {
    **_BEFORE,
    "objective.posterior": "deterministic",
    "objective.kl_weight": 0.0,
  },
  "ablation_logvar_init": {**_BEFORE, "model.posterior_logvar_init": -6.0},
  "ablation_latent_map": {**_BEFORE, "model.posterior_logvar_init": -6.0, "model.latent_map": True},
  # the MMD weight (per data dimension; default 1e-4) against prior-sample quality
  "mmd_1e-1": {**_UNIFORM_TIMES, "objective.mmd_weight": 1e-1},
  "mmd_1": {**_UNIFORM_TIMES, "objective.mmd_weight": 1.0},
  # the rate's weight (default 1e-3) against disentanglement, as beta in a beta-VAE
  "kl_1e-2": {**_UNIFORM_TIMES, "objective.kl_weight": 1e-2},
  "kl_1e-1": {**_UNIFORM_TIMES, "objective.kl_weight": 1e-1},
  "kl_1": {**_UNIFORM_TIMES, "objective.kl_weight": 1.0},
  # weaker pulls on the codes than the default's, against the AE's AUROC (t = u ** 2)
  "mmd_0": {"objective.mmd_weight": 0.0},
  "kl_1e-4": {"objective.kl_weight": 1e-4},
  # the authors' variant (deterministic z, MMD only) on today's defaults
  "deterministic": {"objective.posterior": "deterministic", "objective.kl_weight": 0.0},
  # training times t = u ** p (default 2 for discrete data): 1, the uniform times of the
  # default before; 2 where a config keeps 1 (scenes3d); 3
  "time_power_1": _UNIFORM_TIMES,
  "time_power_2": {"objective.time_power": 2.0},  # the discrete-data default, on scenes3d
  "time_power_3": {"objective.time_power": 3.0},
  # VDM's low-discrepancy training times (one u per stratum of the batch)
  "stratified": {"objective.time_sampling": "stratified"},
  # the flat weighting of both networks where a config keeps the ELBO's (scenes3d)
  "flat_both": {"objective.latent_weighting": "flat_both"},
  "flat_both_time_power_2": {
    "objective.latent_weighting": "flat_both",
    "objective.time_power": 2.0,
  },
}
# How z enters the output network and how the encoder pools its features (disentanglement);
# not run unless named in --rows.
_XATTN = {"model.conditioning": "cross_attention"}
_PRIOR_RECON = {"model.encoder_pool": "flatten", "objective.prior_recon_weight": 1.0}
FACTOR_ROWS: dict[str, dict] = {
  "xattn": _XATTN,
  "xattn_l10": {**_XATTN, "model.latent_dim": 10},
  "xattn_l20": {**_XATTN, "model.latent_dim": 20},
  "xattn_pool_attention": {**_XATTN, "model.encoder_pool": "attention"},
  "pool_flatten": {"model.encoder_pool": "flatten"},
  "xattn_flatten": {**_XATTN, "model.encoder_pool": "flatten"},
  "pool_attention": {"model.encoder_pool": "attention"},
  "coords": {"model.encoder_coords": True},
  # a rate that presses on each unit (kl_weight 1e-1 instead of 1e-3), as a beta-VAE's does
  "pool_flatten_kl_1e-1": {"model.encoder_pool": "flatten", "objective.kl_weight": 0.1},
  "xattn_flatten_kl_1e-1": {**_XATTN, "model.encoder_pool": "flatten", "objective.kl_weight": 0.1},
  # the batch's total correlation (the MMD's isotropic N(0, I) leaves z's axes free, TC[q(z)]
  # does not): at beta-TCVAE's weight (beta - 1 = 3), and at a tenth of it on the flattened head
  "tc_3": {"objective.tc_weight": 3.0},
  "pool_flatten_tc_3e-1": {"model.encoder_pool": "flatten", "objective.tc_weight": 0.3},
  # the output network also decodes z alone, at the prior theta_0 (z must then carry what
  # theta_t settles late: the object's factors), at weight 1 and at 1e-1
  "pool_flatten_prior_recon": _PRIOR_RECON,
  "pool_flatten_prior_recon_w1e-1": {**_PRIOR_RECON, "objective.prior_recon_weight": 0.1},
  # with z now worth thousands of nats, the pressures that collapsed it before (session 16): the
  # batch's total correlation at beta-TCVAE's weight, and a rate of weight 1 on each unit
  "pool_flatten_prior_recon_tc_3": {**_PRIOR_RECON, "objective.tc_weight": 3.0},
  "pool_flatten_prior_recon_kl_1": {**_PRIOR_RECON, "objective.kl_weight": 1.0},
  # each unit's content placed by its own mask (FDAE's form), alone and with the prior
  # reconstruction, whose decoding of z from theta_0 must place the object in space
  "mask_flatten": {"model.conditioning": "content_mask", "model.encoder_pool": "flatten"},
  "mask_flatten_prior_recon": {**_PRIOR_RECON, "model.conditioning": "content_mask"},
  # the same at a tenth of the prior reconstruction's weight (its likelihood cost), and with
  # one content and mask per pair of units
  "mask_flatten_prior_recon_w1e-1": {
    **_PRIOR_RECON,
    "model.conditioning": "content_mask",
    "objective.prior_recon_weight": 0.1,
  },
  # masks at a tenth of the softmax temperature: trained at 1, they stay nearly uniform
  # (experiments/content_masks.py: the largest mask at a pixel is 0.10 on average, 1/16 = 0.06)
  "mask_flatten_prior_recon_t1e-1": {
    **_PRIOR_RECON,
    "model.conditioning": "content_mask",
    "model.mask_temperature": 0.1,
  },
  # the temperature on either side of 0.1
  "mask_flatten_prior_recon_t3e-2": {
    **_PRIOR_RECON,
    "model.conditioning": "content_mask",
    "model.mask_temperature": 0.03,
  },
  "mask_flatten_prior_recon_t3e-1": {
    **_PRIOR_RECON,
    "model.conditioning": "content_mask",
    "model.mask_temperature": 0.3,
  },
  "mask_flatten_prior_recon_g2": {
    **_PRIOR_RECON,
    "model.conditioning": "content_mask",
    "model.latent_group_size": 2,
  },
}
ALL_ROWS = {**ROWS, **EXTRA_ROWS, **ABLATIONS, **FACTOR_ROWS}
# Per dataset: the default, the paper-literal form and the strongest baseline (the AE by AUROC on
# digits, the beta-VAE by DCI disentanglement on the factor sets).
MULTI_SEED_ROWS = {
  "mnist10k": ("paramrel", "paramrel_theta_t", "ae"),
  "shapes2d": ("paramrel", "paramrel_theta_t", "beta_vae"),
  "scenes3d": ("paramrel", "paramrel_theta_t", "beta_vae"),
}
ROW_FILE = "study_row.json"
Z_PRIORS = ("standard", "fitted")  # the p(z) of prior samples (sampling.z_prior)


# --dci_protocol standard: disentanglement_lib's 10,000 + 5,000 codes from the training split,
# which then needs this many generated examples (90 % of them train).
STANDARD_DCI_EXAMPLES = 20_000


def dataset_scores(dataset: str, args) -> dict:
  """The latent scores of a dataset's rows; DCI by the protocol of --dci_protocol."""
  scores = dict(DATASETS[dataset][2])
  if "dci" in scores:
    # the standard protocol's 10,000 + 5,000 codes come from the training split
    standard = {"protocol": "standard", "split": base.get_config().data.train_split}
    dci = standard if args.dci_protocol == "standard" else scores["dci"]
    scores["dci"] = {**dci, "n_jobs": args.dci_jobs}
  return scores


def row_config(dataset: str, row: str, seed: int, args) -> ml_collections.ConfigDict:
  """The config of one run: the dataset's config, the shared budget, the row's overrides."""
  get_config, data_overrides, scores = DATASETS[dataset]
  if "dci" in scores and args.dci_protocol == "standard":
    data_overrides = {**data_overrides, "data.num_examples": STANDARD_DCI_EXAMPLES}
  config = study.apply_overrides(
    get_config(),
    {
      **data_overrides,
      "seed": seed,
      **study.budget_overrides(args, log_every=args.curve_every, checkpoint_every=args.curve_every),
      **(ALL_ROWS[row] or {}),
    },
  )
  if row == "paramrel" and dataset == "mnist10k":  # the learning curve of the default
    config.evals.auroc = dict(every=args.curve_every, split="test")
  return config


def row_scores(config: ml_collections.ConfigDict, scores: dict) -> dict:
  """The latent scores of a row: none for a plain BFN (latent_dim 0: likelihood only)."""
  return scores if config.model.latent_dim > 0 else {}


def cached_row(config: ml_collections.ConfigDict, workdir: str, scores: dict) -> dict | None:
  """The saved result of a run finished at this budget and scored by `scores`, else None."""
  path = os.path.join(workdir, ROW_FILE)
  scores = row_scores(config, scores)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    cached = json.load(f)
  if cached["step"] == config.training.num_steps and cached["scores"].keys() == scores.keys():
    return cached
  return None


def run_cached(config: ml_collections.ConfigDict, workdir: str, scores: dict) -> dict:
  """`study.run_row`, or its cached result when the run is finished and was scored."""
  cached = cached_row(config, workdir, scores)
  if cached is not None:
    return cached
  path = os.path.join(workdir, ROW_FILE)
  scores = row_scores(config, scores)
  result = study.run_row(config, workdir, scores, export=config.model.latent_dim > 0)
  with open(path, "w") as f:
    json.dump(result, f, indent=1, sort_keys=True)
  return result


# Grids of the first seed's runs: (row, mode); the samples draw z from the fitted prior.
PICTURES = (
  ("paramrel", "sample"),
  ("paramrel", "conditional"),
  ("paramrel", "traverse"),
  ("bfn", "sample"),
)
MODES = {
  "sample": generation_modes.run_sample,
  "conditional": generation_modes.run_conditional,
  "traverse": generation_modes.run_traverse,
}


def pictures(dataset: str, args) -> list[str]:
  """Writes the PICTURES grids of trained runs to <out>/latent_study/<dataset>_<row>_<mode>.png;
  a ParamReL row's samples also with z ~ N(0, I), as <dataset>_<row>_sample_standard.png."""
  written = []
  grids = [(row, mode, "fitted", "") for row, mode in PICTURES]
  grids += [
    (row, mode, "standard", "_standard")
    for row, mode in PICTURES
    if mode == "sample" and row != "bfn"
  ]
  for row, mode, z_prior, suffix in grids:
    workdir = os.path.join(args.workdir, dataset, row, f"seed{args.seeds[0]}")
    if not os.path.isfile(os.path.join(workdir, ROW_FILE)):
      continue  # not trained (yet)
    config = row_config(dataset, row, args.seeds[0], args)
    config.sampling.num_samples = 64
    config.sampling.z_prior = z_prior
    MODES[mode](configuration.resolve(config), workdir)
    name = {"sample": "samples.png"}.get(mode, f"{mode}.png")
    target = os.path.join(args.out, "latent_study", f"{dataset}_{row}_{mode}{suffix}.png")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(os.path.join(workdir, mode, name), target)
    written.append(target)
  return written


def sample_table(dataset: str, args) -> dict:
  """Prior-sample quality of the finished runs of args.rows that have a prior
  (`study.sample_quality`, `--sample_quality` samples per run and prior; cached in each
  workdir): {row: {'seeds', 'runs', 'samples', 'held_out'}}, one row '<row> (<prior>)' per
  p(z) for the rows with codes."""
  rows = {}
  for row in args.rows:
    model = row_config(dataset, row, args.seeds[0], args).model
    if ALL_ROWS[row] is None or not registry.has_prior(model.kind):
      continue  # the PCA floor, or no prior (AE, DiffAE)
    # Without codes both p(z) sample alike (the plain BFN): one row, named without a p(z).
    latent_dim = model.latent_dim
    for z_prior in Z_PRIORS if latent_dim else Z_PRIORS[:1]:
      seeds = args.seeds if row in MULTI_SEED_ROWS[dataset] else args.seeds[:1]
      runs, present = [], []
      for seed in seeds:
        config = row_config(dataset, row, seed, args)
        workdir = os.path.join(args.workdir, dataset, row, f"seed{seed}")
        if cached_row(config, workdir, dataset_scores(dataset, args)) is None:
          continue  # not finished at this budget
        path = os.path.join(workdir, f"sample_quality_{args.sample_quality}_{z_prior}.json")
        if os.path.isfile(path):
          with open(path) as f:
            runs.append(json.load(f))
        else:
          runs.append(
            study.sample_quality(workdir, num_samples=args.sample_quality, z_prior=z_prior)
          )
          with open(path, "w") as f:
            json.dump(runs[-1], f, indent=1, sort_keys=True)
        present.append(seed)
        print(f"{dataset} {row} seed {seed}: {runs[-1]}", flush=True)
      if runs:
        name = f"{row} ({z_prior})" if latent_dim else row
        rows[name] = {
          "seeds": present,
          "runs": runs,
          **{key: study.spread([r[key] for r in runs]) for key in ("samples", "held_out")},
        }
  return rows


def sample_markdown(result: dict, num_samples: int, steps: int) -> str:
  """The tables of `sample_table`'s results, {dataset: rows}."""
  lines = [
    f"# Prior samples: PCA-32 Frechet distance to the evaluation split "
    f"({num_samples} samples per run, {steps} steps)",
    "",
  ]
  for dataset, rows in result.items():
    lines += [
      f"## {dataset}",
      "",
      "| row (p(z)) | seeds | samples | held-out images (floor) |",
      "| --- | --- | --- | --- |",
    ]
    lines += [
      f"| {row} | {r['seeds']} | {r['samples']['mean']:.2f} +- {r['samples']['std']:.2f}"
      f" | {r['held_out']['mean']:.2f} |"
      for row, r in rows.items()
    ]
    lines.append("")
  return "\n".join(lines)


def headline(dataset: str, scores: dict) -> dict[str, float]:
  """The table's score columns of one run."""
  if dataset == "mnist10k":
    return {"AUROC": scores["auroc"]["auroc_mean"]} if scores else {}
  if not scores:
    return {}
  dci = evaluators.DciEvaluator.headline(scores["dci"])
  per_factor = zip(scores["dci"]["factor_names"], dci["informativeness_per_factor"], strict=True)
  return {
    "DCI D": dci["disentanglement"],
    "DCI C": dci["completeness"],
    "DCI I": dci["informativeness"],
    **{f"I {name}": float(value) for name, value in per_factor},
    "TAD": scores["tad"]["tad_mean"],
    "ATTRS": scores["tad"]["attrs_mean"],
    "factor AUROC": scores["auroc"]["auroc_mean"],
  }


def run_columns(result: dict) -> dict[str, float]:
  """Likelihood and latent-usage columns of one run (NaN where a row has none)."""
  nats = (result.get("likelihood") or {}).get("nats_per_image", {})
  last = result.get("log", {}).get("last", {})
  return {
    "z_shuffle_gap": last.get("z_shuffle_gap", np.nan),
    "active dims": last.get("active_dims", np.nan),
    "test loss": nats.get("test_loss", np.nan),
    "-ELBO": nats.get("neg_elbo", np.nan),
    "train s": result.get("log", {}).get("train_seconds", np.nan),
  }


def summarise(runs: list[dict], dataset: str) -> dict[str, dict[str, float]]:
  """{column: {'mean', 'std', 'n'}} over the seeds of a row."""
  columns: dict[str, list[float]] = {}
  for run in runs:
    for name, value in {**headline(dataset, run["scores"]), **run_columns(run)}.items():
      columns.setdefault(name, []).append(float(value))
  return {name: study.spread(v) for name, v in columns.items()}


def markdown(result: dict) -> str:
  """The study's tables, one per dataset, mean +- std over seeds."""
  budget = result["budget"]
  lines = [
    "# Latent study (issue 15): encoder input, variants and baselines at one budget",
    "",
    f"Budget per run: {budget['steps']} steps at batch {budget['batch_size']}, `{budget['size']}`"
    f" networks, latent_dim {budget['latent_dim']}, lr {budget['learning_rate']}, EMA "
    f"{budget['ema_decay']}; scores on {budget['num_examples']} evaluation-split images. "
    f"Hardware: {result['hardware']}.",
  ]
  for dataset, rows in result["datasets"].items():
    columns = list(dict.fromkeys(c for row in rows.values() for c in row["summary"]))
    lines += ["", f"## {dataset}"]
    protocols = {
      run["scores"]["dci"].get("protocol", "quick")
      for row in rows.values()
      for run in row["runs"]
      if "dci" in run["scores"]
    }
    if protocols == {"standard"}:
      lines += [
        "",
        "DCI by disentanglement_lib's protocol: gradient-boosted trees fitted on "
        "10,000 training-split codes, scored on the next 5,000.",
      ]
    elif protocols:
      lines += ["", "DCI by the quick protocol: 5-fold on the evaluation-split codes, 20 trees."]
    lines += [
      "",
      "| row | seeds | " + " | ".join(columns) + " |",
      "| --- | --- |" + " --- |" * len(columns),
    ]
    for name, row in rows.items():
      cells = []
      for column in columns:
        cell = row["summary"].get(column)
        if cell is None or np.isnan(cell["mean"]):
          cells.append("-")
        elif cell["n"] > 1:
          cells.append(f"{cell['mean']:.3f} +- {cell['std']:.3f}")
        else:
          cells.append(f"{cell['mean']:.3f}")
      lines.append(f"| {name} | {row['seeds']} | " + " | ".join(cells) + " |")
  default = result["datasets"].get("mnist10k", {}).get("paramrel")
  if default and default["runs"][0]["log"]["curve"]:
    steps = [point["step"] for point in default["runs"][0]["log"]["curve"]]
    lines += [
      "",
      "## Learning curve of the default on mnist10k (AUROC, test digits)",
      "",
      "| seed | " + " | ".join(f"step {k}" for k in steps) + " |",
      "| --- |" + " --- |" * len(steps),
    ]
    for seed, run in zip(default["seeds"], default["runs"], strict=True):
      lines.append(
        f"| {seed} | "
        + " | ".join(f"{point['eval/auroc/auroc']:.3f}" for point in run["log"]["curve"])
        + " |"
      )
  lines += [
    "",
    "+- is the standard deviation over seeds. test loss = BFN term + reconstruction "
    "(nats / image); -ELBO adds the unweighted rate; both '-' for baselines and the PCA "
    "floor. z_shuffle_gap and active dims: last training log, for the models that log "
    "them. train s: from the logged steps/s (the first window includes the compilation, "
    "evaluations are left out).",
  ]
  return "\n".join(lines) + "\n"


def merged(results: list[dict], datasets: list[str], rows: list[str]) -> dict:
  """One study result from saved ones of one budget: per dataset, the named `rows` in their
  order. A row found in several results is the last one's, or, where their seeds are disjoint
  and their overrides equal (seeds run in separate processes), all their seeds together.
  Raises ValueError on differing budgets."""
  budgets = [result["budget"] for result in results]
  if any(budget != budgets[0] for budget in budgets):
    raise ValueError(f"the results are of different budgets: {budgets}")
  out = {
    "budget": budgets[0],
    "hardware": "; ".join(  # each machine once, also where a result was a merge
      dict.fromkeys(name for result in results for name in result["hardware"].split("; "))
    ),
    "datasets": {},
  }
  for dataset in datasets:
    table = {}
    for row in rows:
      for result in results:
        found = result["datasets"].get(dataset, {}).get(row)
        if found is None:
          continue
        held = table.get(row)
        if (
          held is None
          or held["overrides"] != found["overrides"]
          or set(held["seeds"]) & set(found["seeds"])
        ):
          runs = list(zip(found["seeds"], found["runs"], strict=True))
        else:
          runs = sorted(
            zip(held["seeds"] + found["seeds"], held["runs"] + found["runs"], strict=True),
            key=lambda pair: pair[0],
          )
        # summarised again: a saved summary's columns come back sorted by name
        table[row] = {
          **found,
          "seeds": [seed for seed, _ in runs],
          "runs": [run for _, run in runs],
          "summary": summarise([run for _, run in runs], dataset),
        }
    if table:
      out["datasets"][dataset] = table
  return out


def write_result(result: dict, out: str) -> None:
  """`<out>/latent_study.json` and `.md`."""
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "latent_study.json"), "w") as f:
    json.dump(result, f, indent=1, sort_keys=True)
  with open(os.path.join(out, "latent_study.md"), "w") as f:
    f.write(markdown(result))


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
  parser.add_argument("--rows", nargs="+", choices=list(ALL_ROWS), default=list(ROWS))
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  study.add_budget_flags(parser)
  parser.add_argument("--curve_every", type=int, default=250)
  parser.add_argument(
    "--dci_protocol",
    choices=["quick", "standard"],
    default="quick",
    help="quick: 5-fold DCI with 20 trees on --num_examples codes (the committed "
    "tables); standard: disentanglement_lib's 10,000 + 5,000 codes and 100 "
    f"trees, on {STANDARD_DCI_EXAMPLES:,} generated examples",
  )
  parser.add_argument(
    "--dci_jobs",
    type=int,
    default=1,
    help="DCI factors fitted in parallel (-1: one process per core); the "
    "scores do not depend on it",
  )
  parser.add_argument("--workdir", default="runs/latent_study")
  parser.add_argument("--out", default="experiments/results")
  parser.add_argument(
    "--cached_only", action="store_true", help="tabulate the finished runs only; train nothing"
  )
  parser.add_argument(
    "--sample_quality",
    type=int,
    default=0,
    metavar="N",
    help="only judge N prior samples of each finished run with a prior "
    "(PCA Frechet distance to the evaluation split)",
  )
  parser.add_argument(
    "--pictures", action="store_true", help="only write the grids of PICTURES from the trained runs"
  )
  parser.add_argument(
    "--merge",
    nargs="+",
    metavar="JSON",
    help="only tabulate the --rows of saved latent_study.json files of one "
    "budget (a later file's row replaces an earlier one's, or adds its "
    "seeds where they are new)",
  )
  args = parser.parse_args(argv)

  if args.merge:
    results = []
    for path in args.merge:
      try:
        with open(path) as f:
          results.append(json.load(f))
      except (OSError, ValueError) as e:
        parser.error(f"--merge: cannot read {path}: {e}")
    try:
      write_result(merged(results, args.datasets, args.rows), args.out)
    except (KeyError, TypeError) as e:
      parser.error(f"--merge: not a latent study result (missing {e})")
    except ValueError as e:
      parser.error(f"--merge: {e}")
    return

  if args.sample_quality:
    result = {dataset: sample_table(dataset, args) for dataset in args.datasets}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "sample_quality.json"), "w") as f:
      json.dump(result, f, indent=1, sort_keys=True)
    with open(os.path.join(args.out, "sample_quality.md"), "w") as f:
      f.write(sample_markdown(result, args.sample_quality, args.steps))
    return
  if args.pictures:
    for dataset in args.datasets:
      for path in pictures(dataset, args):
        print(f"wrote {path}")
    return
  keys = ("steps", "batch_size", "size", "latent_dim", "learning_rate", "ema_decay", "num_examples")
  result = {
    "budget": {k: getattr(args, k) for k in keys},
    "hardware": study.hardware(),
    "datasets": {},
  }
  for dataset in args.datasets:
    scores = dataset_scores(dataset, args)
    result["datasets"][dataset] = rows = {}
    for row in args.rows:
      seeds = args.seeds if row in MULTI_SEED_ROWS[dataset] else args.seeds[:1]
      runs, present = [], []
      for seed in seeds:
        config = row_config(dataset, row, seed, args)
        if row == "pca":
          runs.append(study.pca_row(config, scores))
          present.append(seed)
          continue
        workdir = os.path.join(args.workdir, dataset, row, f"seed{seed}")
        if args.cached_only and cached_row(config, workdir, scores) is None:
          continue  # not finished at this budget: --cached_only trains nothing
        runs.append(run_cached(config, workdir, scores))
        present.append(seed)
        print(f"{dataset} {row} seed {seed}: {headline(dataset, runs[-1]['scores'])}", flush=True)
      if not runs:
        continue
      rows[row] = {
        "seeds": present,
        "overrides": ALL_ROWS[row],
        "runs": runs,
        "summary": summarise(runs, dataset),
      }
      write_result(result, args.out)


if __name__ == "__main__":
  main()
