"""CLI modes that use a trained model: sample, reconstruct, conditional, interpolate, traverse.

`sample` and `reconstruct` work for every model (`interface.Model`); with a Bayesian flow
(`interface.FLOW`: ParamReL) reconstruct also writes the flow's own end point and the
time-varying reconstruction, and conditional, interpolate and traverse need one. Each reads the
latest checkpoint's EMA parameters in `workdir` and writes `.npz` arrays, PNG grids and a
`summary.json` under `workdir/<mode>/`. Inputs come from the config's evaluation
split (`data.eval_split`, the first `eval.num_examples` examples). Everything heavy is a jitted
function of `sampling` / `reverse_sampling` (`lax.scan` over the steps, one compile per shape).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from paramrel_jax import data
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.methods import interface
from paramrel_jax.methods.paramrel import interpolation, reverse_sampling
from paramrel_jax.training import inference
from paramrel_jax.training.checkpointing import dump_json
from paramrel_jax.viz import images


def _writes() -> bool:
  """Every process computes the same outputs (same seed); process 0 alone writes them."""
  return jax.process_index() == 0


def _outdir(workdir: str, mode: str) -> str:
  path = os.path.join(workdir, mode)
  if _writes():
    os.makedirs(path, exist_ok=True)
  return path


def _savez(path: str, **arrays) -> None:
  if _writes():
    np.savez(path, **arrays)


def _summary(out: str, summary: dict) -> None:
  if _writes():
    dump_json(os.path.join(out, "summary.json"), summary)


def _inputs(config: ExperimentConfig, num: int) -> np.ndarray:
  """The first `num` images of the evaluation split (B, H, W, C), padding rows dropped."""
  cfg = config.eval
  it = data.create_eval_iterator(config.data, split=config.data.eval_split,
                                 batch_size=min(cfg.batch_size, num),
                                 num_examples=num)
  return np.concatenate([b["image"][b["mask"]] for b in it])[:num]


def _grid(path: str, x, config: ExperimentConfig, nrow: int, **labels) -> None:
  """Writes the PNG grid (process 0); `labels`: row_labels / col_labels of `images.save_grid`."""
  if not _writes():
    return
  flow = config.flow
  images.save_grid(path, np.asarray(x), nrow=nrow, data_type=flow.data_type,
                   num_classes=getattr(flow, "num_classes", 2), **labels)


def _flow_model(model: inference.TrainedModel, mode: str):
  """The run's model if it has a Bayesian flow and a self-encoder; else a ValueError."""
  flow_model = interface.require(model.model, interface.FLOW, f"--mode={mode}")
  _require_latents(model, mode)
  return flow_model


def _require_latents(model: inference.TrainedModel, mode: str) -> None:
  if model.model.latent_dim == 0:
    raise ValueError(f"--mode={mode} needs a self-encoder, but model.latent_dim = 0.")


def run_sample(config: ExperimentConfig, workdir: str) -> dict:
  """`sampling.num_samples` samples of the model's sampler (ParamReL: Eq. 4 in
  `sampling.num_steps` steps, z from the prior or the encoder, `sampling.z_source`; VAEs: the
  decoder of prior z; InfoDiffusion: DDIM); writes sample/samples.npz (keys `samples`, `z`) and
  samples.png."""
  model = inference.load(config, workdir)
  cfg = config.sampling
  key = jax.random.key(config.seed)
  out = _outdir(workdir, "sample")
  x, z = model.model.sample(model.params, key, cfg.num_samples)
  _savez(os.path.join(out, "samples.npz"), samples=np.asarray(x), z=np.asarray(z))
  _grid(os.path.join(out, "samples.png"), x, config, nrow=int(np.ceil(cfg.num_samples**0.5)))
  summary = {"step": model.step, "num_samples": cfg.num_samples, "num_steps": cfg.num_steps,
             "z_source": cfg.z_source, "seed": config.seed}
  _summary(out, summary)
  return summary


def _encode_batches(flow_model, params, x0: np.ndarray, key: jax.Array, *, n_steps: int,
                    batch_size: int):
  """Reverse sampling (Eq. 5) in batches (the subcodes take n_steps times the data's memory)."""
  for start in range(0, len(x0), batch_size):
    batch = jnp.asarray(x0[start:start + batch_size])
    codes = reverse_sampling.encode(jax.random.fold_in(key, start), flow_model.flow,
                                    flow_model.net, params, batch, n_steps=n_steps)
    yield batch, codes


def run_reconstruct(config: ExperimentConfig, workdir: str) -> dict:
  """Encode eval inputs into (z, subcodes) and decode them again (Eq. 5); with a progressive
  encoder also the time-varying reconstruction at `sampling.z_times` (Sec. 5.2.2).

  Writes reconstruct/reconstruct.npz (`input`, `reconstruction`, `reconstruction_flow`),
  reconstruct.png (rows of inputs above their reconstructions) and summary.json with the errors.
  """
  model = inference.load(config, workdir)
  x0 = _inputs(config, config.eval.num_examples)
  key = jax.random.key(config.seed)
  _require_latents(model, "reconstruct")
  if not interface.has(model.model, interface.FLOW):
    return _reconstruct_without_codes(config, workdir, model, x0, key)
  flow, net, params = model.model.flow, model.model.net, model.params
  recs, recs_flow, stats = [], [], []
  for batch, codes in _encode_batches(model.model, params, x0, key,
                                      n_steps=config.sampling.num_steps,
                                      batch_size=config.eval.batch_size):
    rec = reverse_sampling.decode(flow, net, params, codes)
    recs.append(np.asarray(rec.x))
    recs_flow.append(np.asarray(rec.x_flow))
    stats.append(jax.device_get(reverse_sampling.reconstruction_stats(flow, batch, rec)))
  rec, rec_flow = np.concatenate(recs), np.concatenate(recs_flow)
  out = _outdir(workdir, "reconstruct")
  _savez(os.path.join(out, "reconstruct.npz"), input=x0, reconstruction=rec,
           reconstruction_flow=rec_flow)
  _grid(os.path.join(out, "reconstruct.png"), _interleave_rows(x0, rec, 8), config, nrow=8)
  summary = {"step": model.step, "num_examples": len(x0), "num_steps": config.sampling.num_steps}
  for name in stats[0]:
    summary[f"mean_{name}"] = float(np.mean(np.concatenate([s[name] for s in stats])))
  if flow.data_type == "continuous":
    summary["error_bound_flow"] = reverse_sampling.reconstruction_error_bound(flow.sigma1)
  if net.config.encoder == "progressive" and config.sampling.z_times:
    times = jnp.asarray(config.sampling.z_times, jnp.float32)
    num = min(8, len(x0))
    tv = reverse_sampling.time_varying_reconstruction(
        key, flow, net, params, jnp.asarray(x0[:num]), times, n_steps=config.sampling.num_steps)
    _savez(os.path.join(out, "time_varying.npz"), input=x0[:num], times=np.asarray(times),
             reconstruction=np.asarray(tv))
    rows = np.concatenate([x0[None, :num], np.asarray(tv)]).reshape(-1, *x0.shape[1:])
    _grid(os.path.join(out, "time_varying.png"), rows, config, nrow=num)
    summary["time_varying_times"] = [float(t) for t in times]
  _summary(out, summary)
  return summary


def _reconstruct_without_codes(config: ExperimentConfig, workdir: str,
                               model: inference.TrainedModel, x0: np.ndarray,
                               key: jax.Array) -> dict:
  """The model's own `reconstruct` (AE / VAEs: decode z; DiffAE: DDIM inversion + decoding)."""
  reconstruct = jax.jit(model.model.reconstruct)
  size = config.eval.batch_size
  rec = np.concatenate([np.asarray(reconstruct(model.params, jax.random.fold_in(key, i),
                                               jnp.asarray(x0[i:i + size])))
                        for i in range(0, len(x0), size)])
  out = _outdir(workdir, "reconstruct")
  _savez(os.path.join(out, "reconstruct.npz"), input=x0, reconstruction=rec)
  _grid(os.path.join(out, "reconstruct.png"), _interleave_rows(x0, rec, 8), config, nrow=8)
  error = np.abs(rec.astype(np.float32) - x0.astype(np.float32))
  summary = {"step": model.step, "num_examples": len(x0), "model": type(model.model).__name__,
             "mean_abs_error": float(error.mean())}
  _summary(out, summary)
  return summary


def _interleave_rows(a: np.ndarray, b: np.ndarray, nrow: int) -> np.ndarray:
  """Rows of `nrow` images of a, each followed by the matching row of b."""
  rows = []
  for start in range(0, len(a), nrow):
    rows += [a[start:start + nrow], b[start:start + nrow]]
  pad = (-len(a)) % nrow
  if pad:  # a short last row: pad both of its rows to full width with blanks
    blank = np.zeros((pad, *a.shape[1:]), a.dtype)
    rows[-2] = np.concatenate([rows[-2], blank])
    rows[-1] = np.concatenate([rows[-1], blank])
  return np.concatenate(rows)


def run_conditional(config: ExperimentConfig, workdir: str) -> dict:
  """Conditional generation (Fig. 3a-c): the codes of each input (at every step's time), fresh
  subcodes; one row per input (the input first, then `sampling.num_variations` samples)."""
  model = inference.load(config, workdir)
  flow_model = _flow_model(model, "conditional")
  num = min(8, config.eval.num_examples)
  x0 = _inputs(config, num)
  variations = config.sampling.num_variations
  result = reverse_sampling.conditional_sample(
      jax.random.key(config.seed), flow_model.flow, flow_model.net, model.params, jnp.asarray(x0),
      num_variations=variations, n_steps=config.sampling.num_steps)
  samples = np.asarray(result.x).reshape(len(x0), variations, *x0.shape[1:])
  out = _outdir(workdir, "conditional")
  _savez(os.path.join(out, "conditional.npz"), input=x0, samples=samples)
  rows = np.concatenate([x0[:, None], samples], axis=1).reshape(-1, *x0.shape[1:])
  _grid(os.path.join(out, "conditional.png"), rows, config, nrow=variations + 1,
        row_labels=[f"x{k}" for k in range(len(x0))],
        col_labels=["input", *(f"sample {k + 1}" for k in range(variations))])
  summary = {"step": model.step, "num_inputs": len(x0), "num_variations": variations}
  _summary(out, summary)
  return summary


def run_interpolate(config: ExperimentConfig, workdir: str) -> dict:
  """App. E: codes of input pairs (2k, 2k + 1) interpolated (`sampling.interpolation_method`,
  `sampling.interpolation_points` points), both z and subcodes; one row per pair."""
  model = inference.load(config, workdir)
  flow_model = _flow_model(model, "interpolate")
  cfg = config.sampling
  num_pairs = max(1, min(4, config.eval.num_examples // 2))
  x0 = _inputs(config, 2 * num_pairs)
  codes = reverse_sampling.encode(jax.random.key(config.seed), flow_model.flow, flow_model.net,
                                  model.params, jnp.asarray(x0), n_steps=cfg.num_steps)
  codes_a = jax.tree.map(lambda v: v[0::2], codes)
  codes_b = jax.tree.map(lambda v: v[1::2], codes)
  path = interpolation.interpolate_codes(codes_a, codes_b, cfg.interpolation_points,
                                         cfg.interpolation_method)
  x = np.asarray(reverse_sampling.decode(flow_model.flow, flow_model.net, model.params, path).x)
  out = _outdir(workdir, "interpolate")
  _savez(os.path.join(out, "interpolate.npz"), input_a=x0[0::2], input_b=x0[1::2],
           interpolation=x.reshape(num_pairs, cfg.interpolation_points, *x0.shape[1:]))
  _grid(os.path.join(out, "interpolate.png"), x, config, nrow=cfg.interpolation_points)
  summary = {"step": model.step, "num_pairs": num_pairs, "points": cfg.interpolation_points,
             "method": cfg.interpolation_method}
  _summary(out, summary)
  return summary


def run_traverse(config: ExperimentConfig, workdir: str) -> dict:
  """Sec. 5.2.4: each latent dimension of the first eval input varied over
  [-traverse_range, traverse_range] in `sampling.traverse_steps` steps, the others fixed, decoded
  with the input's own subcodes; one grid row per dimension, after the input itself, labelled
  with the dimension (rows) and its value (columns)."""
  model = inference.load(config, workdir)
  flow_model = _flow_model(model, "traverse")
  cfg = config.sampling
  x0 = _inputs(config, 1)
  codes = reverse_sampling.encode(jax.random.key(config.seed), flow_model.flow, flow_model.net,
                                  model.params, jnp.asarray(x0), n_steps=cfg.num_steps)
  zs = interpolation.traverse(codes.z[0], num_steps=cfg.traverse_steps, low=-cfg.traverse_range,
                              high=cfg.traverse_range)  # (L, M, L)
  latent_dim, steps = zs.shape[0], zs.shape[1]
  x = np.asarray(reverse_sampling.decode(
      flow_model.flow, flow_model.net, model.params,
      codes._replace(z=zs.reshape(latent_dim * steps, -1))).x)
  out = _outdir(workdir, "traverse")
  _savez(os.path.join(out, "traverse.npz"), input=x0, z=np.asarray(zs),
           traversal=x.reshape(latent_dim, steps, *x0.shape[1:]))
  rows = np.concatenate([np.broadcast_to(x0, (latent_dim, 1, *x0.shape[1:])),
                         x.reshape(latent_dim, steps, *x0.shape[1:])], axis=1)
  values = np.linspace(-cfg.traverse_range, cfg.traverse_range, steps)
  _grid(os.path.join(out, "traverse.png"), rows.reshape(-1, *x0.shape[1:]), config,
        nrow=steps + 1, row_labels=[f"z[{d}]" for d in range(latent_dim)],
        col_labels=["input", *(f"{v:+.1f}" for v in values)])
  summary = {"step": model.step, "latent_dim": latent_dim, "steps": steps,
             "range": cfg.traverse_range}
  _summary(out, summary)
  return summary


MODES = {
    "sample": run_sample,
    "reconstruct": run_reconstruct,
    "conditional": run_conditional,
    "interpolate": run_interpolate,
    "traverse": run_traverse,
}
