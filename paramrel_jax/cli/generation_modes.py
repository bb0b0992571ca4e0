"""CLI modes that use a trained model: sample, reconstruct, conditional, interpolate, traverse.

Each is a thin wrapper over the Python API's model-space methods (`api.LoadedModel`:
`generate`, `reconstruct_arrays`, `time_varying_arrays`, `conditional_arrays`,
`interpolate_arrays`, `traverse_arrays`) with the config's seed: it reads the latest checkpoint's
EMA parameters in `workdir`, takes its inputs from the evaluation split (`data.eval_split`, the
first `eval.num_examples` examples) and writes the model-space `.npz` arrays, PNG grids and a
`summary.json` under `workdir/<mode>/`. `sample` and `reconstruct` work for every model
(`interface.Model`); with a Bayesian flow (`interface.FLOW`: ParamReL) reconstruct also writes
the flow's own end point and the time-varying reconstruction, and conditional, interpolate and
traverse need one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from paramrel_jax import api, data
from paramrel_jax.cli import eval_modes, outputs
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.evaluation import latents
from paramrel_jax.methods import interface
from paramrel_jax.methods.paramrel import reverse_sampling
from paramrel_jax.training.logging_utils import stage
from paramrel_jax.viz import images


def _stage(description: str):
  """Process 0 names a generation that reports no progress of its own (jitted calls), with its
  time, compile included (`logging_utils.stage`)."""
  return stage(f"{description} (compile included)", enabled=outputs.writes())


def _in_steps(model: api.LoadedModel) -> str:
  """' in n steps' for a Bayesian flow's n-step generation; baselines have their own samplers."""
  if not interface.has(model.trained.model, interface.FLOW):
    return ""
  return f" in {model.trained.model.sample_steps} steps"


def _inputs(config: ExperimentConfig, num: int) -> np.ndarray:
  """The first `num` images of the evaluation split (B, H, W, C), padding rows dropped."""
  cfg = config.eval
  it = data.create_eval_iterator(
    config.data, split=config.data.eval_split, batch_size=min(cfg.batch_size, num), num_examples=num
  )
  return np.concatenate([b["image"][b["mask"]] for b in it])[:num]


def _grid(
  path: str,
  x,
  config: ExperimentConfig,
  nrow: int,
  *,
  row_labels: Sequence[str] = (),
  col_labels: Sequence[str] = (),
) -> None:
  """Writes the PNG grid of `images.save_grid` (process 0)."""
  if not outputs.writes():
    return
  images.save_grid(
    path, np.asarray(x), nrow=nrow, flow=config.flow, row_labels=row_labels, col_labels=col_labels
  )


def _load(config: ExperimentConfig, workdir: str, mode: str) -> api.LoadedModel:
  """`outputs.load`; conditional, interpolate and traverse need a Bayesian flow."""
  model = outputs.load(config, workdir, mode)
  if mode in ("conditional", "interpolate", "traverse"):
    interface.require(model.trained.model, interface.FLOW, f"--mode={mode}")
  return model


def run_sample(config: ExperimentConfig, workdir: str) -> dict:
  """`sampling.num_samples` samples of the model's sampler (`api.LoadedModel.generate`:
  ParamReL: Eq. 4 in `sampling.num_steps` steps, z from the prior or the encoder,
  `sampling.z_source`, the prior by `sampling.z_prior`; VAEs: the decoder of prior z;
  InfoDiffusion: DDIM); writes
  sample/samples.npz (keys `samples`, `z`) and samples.png."""
  model = _load(config, workdir, "sample")
  cfg = config.sampling
  trained = model.trained
  if latents.uses_prior(trained.model, config) and not os.path.isfile(
    latents.prior_path(workdir, trained.step, config)
  ):  # kept in the run once fitted
    with _stage(
      f"fitting the latent prior to the codes of up to {cfg.prior_examples} training images"
    ):
      model.latent_prior()
  with _stage(f"sampling {cfg.num_samples} images{_in_steps(model)}"):
    x, z = model.generate(cfg.num_samples, seed=config.seed)
  out = outputs.outdir(workdir, "sample")
  outputs.savez(os.path.join(out, "samples.npz"), samples=x, z=z)
  _grid(os.path.join(out, "samples.png"), x, config, nrow=int(np.ceil(cfg.num_samples**0.5)))
  summary = {
    "step": model.step,
    "num_samples": cfg.num_samples,
    "num_steps": cfg.num_steps,
    "z_source": cfg.z_source,
    "z_prior": cfg.z_prior,
    "seed": config.seed,
  }
  outputs.write_summary(out, summary)
  return summary


def run_reconstruct(config: ExperimentConfig, workdir: str) -> dict:
  """Encode eval inputs and decode them again (`api.LoadedModel.reconstruct_arrays`; ParamReL:
  reverse sampling into (z, subcodes), Eq. 5); with a progressive encoder also the time-varying
  reconstruction at `sampling.z_times` (Sec. 5.2.2).

  Writes reconstruct/reconstruct.npz (`input`, `reconstruction`, and for ParamReL
  `reconstruction_flow`), reconstruct.png (rows of inputs above their reconstructions) and
  summary.json with the errors.
  """
  model = _load(config, workdir, "reconstruct")
  x0 = _inputs(config, config.eval.num_examples)
  with _stage(f"reconstructing {len(x0)} images{_in_steps(model)}"):
    result = model.reconstruct_arrays(x0, seed=config.seed)
  rec = result.pop("reconstruction")
  out = outputs.outdir(workdir, "reconstruct")
  outputs.savez(
    os.path.join(out, "reconstruct.npz"),
    input=x0,
    reconstruction=rec,
    **({"reconstruction_flow": result.pop("reconstruction_flow")} if result else {}),
  )
  _grid(os.path.join(out, "reconstruct.png"), _interleave_rows(x0, rec, 8), config, nrow=8)
  summary = {"step": model.step, "num_examples": len(x0)}
  if not interface.has(model.trained.model, interface.FLOW):
    error = np.abs(rec.astype(np.float32) - x0.astype(np.float32))
    summary.update(model=type(model.trained.model).__name__, mean_abs_error=float(error.mean()))
    outputs.write_summary(out, summary)
    return summary
  summary["num_steps"] = config.sampling.num_steps
  summary.update({f"mean_{name}": float(np.mean(value)) for name, value in result.items()})
  flow = config.flow
  if not flow.finite_values:  # continuous data: the flow's end point is exact only within a bound
    summary["error_bound_flow"] = reverse_sampling.reconstruction_error_bound(flow.sigma1)
  if config.network.encoder == "progressive" and config.sampling.z_times:
    num = min(8, len(x0))
    times = np.asarray(config.sampling.z_times, np.float32)
    with _stage(f"reconstructing {num} images from their codes at {len(times)} times"):
      tv = model.time_varying_arrays(x0[:num], times, seed=config.seed)
    outputs.savez(
      os.path.join(out, "time_varying.npz"), input=x0[:num], times=times, reconstruction=tv
    )
    rows = np.concatenate([x0[None, :num], tv]).reshape(-1, *x0.shape[1:])
    _grid(os.path.join(out, "time_varying.png"), rows, config, nrow=num)
    summary["time_varying_times"] = [float(t) for t in times]
  outputs.write_summary(out, summary)
  return summary


def _interleave_rows(a: np.ndarray, b: np.ndarray, nrow: int) -> np.ndarray:
  """Rows of `nrow` images of a, each followed by the matching row of b."""
  rows = []
  for start in range(0, len(a), nrow):
    rows += [a[start : start + nrow], b[start : start + nrow]]
  pad = (-len(a)) % nrow
  if pad:  # a short last row: pad both of its rows to full width with blanks
    blank = np.zeros((pad, *a.shape[1:]), a.dtype)
    rows[-2] = np.concatenate([rows[-2], blank])
    rows[-1] = np.concatenate([rows[-1], blank])
  return np.concatenate(rows)


def run_conditional(config: ExperimentConfig, workdir: str) -> dict:
  """Conditional generation (Fig. 3a-c, `api.LoadedModel.conditional_arrays`): the codes of each
  input (at every step's time), fresh subcodes; one row per input (the input first, then
  `sampling.num_variations` samples)."""
  model = _load(config, workdir, "conditional")
  x0 = _inputs(config, min(8, config.eval.num_examples))
  variations = config.sampling.num_variations
  with _stage(f"sampling {variations} variations of each of {len(x0)} inputs{_in_steps(model)}"):
    samples = model.conditional_arrays(x0, variations, seed=config.seed)
  out = outputs.outdir(workdir, "conditional")
  outputs.savez(os.path.join(out, "conditional.npz"), input=x0, samples=samples)
  rows = np.concatenate([x0[:, None], samples], axis=1).reshape(-1, *x0.shape[1:])
  _grid(
    os.path.join(out, "conditional.png"),
    rows,
    config,
    nrow=variations + 1,
    row_labels=[f"x{k}" for k in range(len(x0))],
    col_labels=["input", *(f"sample {k + 1}" for k in range(variations))],
  )
  summary = {"step": model.step, "num_inputs": len(x0), "num_variations": variations}
  outputs.write_summary(out, summary)
  return summary


def run_interpolate(config: ExperimentConfig, workdir: str) -> dict:
  """App. E (`api.LoadedModel.interpolate_arrays`): the codes of input pairs (2k, 2k + 1)
  interpolated (`sampling.interpolation_method`, `sampling.interpolation_points` points), both z
  and subcodes; one row per pair, from the reconstruction of 2k to that of 2k + 1."""
  model = _load(config, workdir, "interpolate")
  cfg = config.sampling
  num_pairs = max(1, min(4, config.eval.num_examples // 2))
  x0 = _inputs(config, 2 * num_pairs)
  with _stage(f"interpolating {num_pairs} pairs, {cfg.interpolation_points} points each"):
    x = model.interpolate_arrays(x0[0::2], x0[1::2], cfg.interpolation_points, seed=config.seed)
  out = outputs.outdir(workdir, "interpolate")
  outputs.savez(
    os.path.join(out, "interpolate.npz"), input_a=x0[0::2], input_b=x0[1::2], interpolation=x
  )
  _grid(
    os.path.join(out, "interpolate.png"),
    x.reshape(-1, *x0.shape[1:]),
    config,
    nrow=cfg.interpolation_points,
  )
  summary = {
    "step": model.step,
    "num_pairs": num_pairs,
    "points": cfg.interpolation_points,
    "method": cfg.interpolation_method,
  }
  outputs.write_summary(out, summary)
  return summary


def run_traverse(config: ExperimentConfig, workdir: str) -> dict:
  """Sec. 5.2.4 (`api.LoadedModel.traverse_arrays`): each latent dimension of the first eval
  input varied over [-traverse_range, traverse_range] in `sampling.traverse_steps` steps, the
  others fixed, decoded with the input's own subcodes; one grid row per dimension, after the
  input itself, labelled with the dimension (rows; with the factor it matters most for, where
  --mode=eval has scored DCI) and its value (columns)."""
  model = _load(config, workdir, "traverse")
  cfg = config.sampling
  x0 = _inputs(config, 1)
  with _stage(f"traversing {model.latent_dim} latent units, {cfg.traverse_steps} values each"):
    zs, x = model.traverse_arrays(x0, seed=config.seed)
  latent_dim, steps = zs.shape[:2]
  out = outputs.outdir(workdir, "traverse")
  outputs.savez(os.path.join(out, "traverse.npz"), input=x0, z=zs, traversal=x)
  rows = np.concatenate([np.broadcast_to(x0, (latent_dim, 1, *x0.shape[1:])), x], axis=1)
  values = np.linspace(-cfg.traverse_range, cfg.traverse_range, steps)
  factors = eval_modes.factor_of_units(workdir, latent_dim)
  labels = [f"z[{d}]" + (f" {factors[d]}" if factors else "") for d in range(latent_dim)]
  _grid(
    os.path.join(out, "traverse.png"),
    rows.reshape(-1, *x0.shape[1:]),
    config,
    nrow=steps + 1,
    row_labels=labels,
    col_labels=["input", *(f"{v:+.1f}" for v in values)],
  )
  summary = {
    "step": model.step,
    "latent_dim": latent_dim,
    "steps": steps,
    "range": cfg.traverse_range,
    "row_labels": labels,
  }
  outputs.write_summary(out, summary)
  return summary


MODES = {
  "sample": run_sample,
  "reconstruct": run_reconstruct,
  "conditional": run_conditional,
  "interpolate": run_interpolate,
  "traverse": run_traverse,
}
