"""Latent codes of a dataset split: a model's posterior mean (`interface.Model.encode`).

For ParamReL, for each example x and flow time t the code is the mean of q(z_t | e, t) (paper
Sec. 3.1), e the encoder input of training (`objective.encoder_input`: the data, or theta_1 /
theta_t drawn from p_F(theta | x; .) with a seeded key). At t = 1 theta is the data-end of the
flow (nearly the data for continuous flows at small sigma1; a sharp but still noisy categorical
for discrete flows). The same key is used at every time, so the codes of one example at
different times come from one coupled draw. A baseline's code is its encoder mean (t = 1 only).

An exported file (`save_latents`) is an .npz with
  'z'          float32 (N, L): codes at `latent_time`;
  'z_t<time>'  float32 (N, L): codes at each of `latent_times` (e.g. 'z_t0.5'; `latent_key`);
  'label', 'attributes', 'factors'   int32 (N,) / (N, A) / (N, F): those the dataset has;
with the examples in split order.

`fit_prior` / `draw_prior`: a Gaussian p(z) fitted to codes after training; `latent_prior`: the
one that sampling and the -ELBO against the fitted prior use (`sampling.z_prior`), kept per
checkpoint in `<workdir>/latents/prior_<step>_n<examples>_k<times>.npz` ('mean', 'scale').
"""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from paramrel_jax import data
from paramrel_jax.bfn import checks
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.evaluation.likelihood import split_size
from paramrel_jax.methods import interface, registry
from paramrel_jax.methods.interface import Model

LABEL_KEYS = ("label", "attributes", "factors")


def latent_key(time: float) -> str:
  """The .npz key of the codes at flow time `time`, e.g. 'z_t0.5'."""
  return f"z_t{time:g}"


@functools.partial(jax.jit, static_argnames=("model", "t"))
def encode(
  model: Model, params: dict, key: jax.Array, x: jax.Array, *, t: float = 1.0
) -> jax.Array:
  """`model.encode(params, key, x, t)` jitted, one compile per model, time and batch shape."""
  return model.encode(params, key, x, t)


def _check_time(name: str, time: float) -> float:
  if not 0.0 <= time <= 1.0:
    raise ValueError(f"{name} must lie in [0, 1], got {time}.")
  return float(time)


def export_latents(
  model: Model,
  params: dict,
  data_cfg: data.DataConfig,
  *,
  split: str,
  batch_size: int,
  num_examples: int,
  latent_time: float = 1.0,
  latent_times: Sequence[float] = (),
  seed: int = 0,
) -> dict[str, np.ndarray]:
  """Codes (`model.encode`) and labels of the first `num_examples` examples of a split (module
  docstring).

  Every process reads and encodes all examples (the codes feed host-side metrics).

  Args:
    model: ParamReL or a baseline (latent_dim > 0).
    params: its (EMA) parameters.
    data_cfg: data settings.
    split: the split to encode.
    batch_size: examples per forward pass.
    num_examples: examples to encode; more than the split has means the whole split.
    latent_time: flow time of 'z', in [0, 1] (1 for a model without flow times).
    latent_times: further flow times, each stored as `latent_key(time)`.
    seed: seed of the flow draws; batch i draws with fold_in(key(seed), i).

  Returns:
    The arrays of the file layout in the module docstring, N = min(num_examples, split size).

  Raises:
    ValueError: latent_dim == 0, a time outside [0, 1], a time other than 1 for a model without
      flow times, num_examples < 1, bad data settings.
  """
  if model.latent_dim == 0:
    raise ValueError("the model has model.latent_dim = 0 (a plain BFN): there are no latents.")
  times = {"z": _check_time("latent_time", latent_time)}
  for time in latent_times:
    times[latent_key(time)] = _check_time("latent_times", time)
  checks.check_static_int("num_examples", num_examples, 1)
  encoders = {
    name: functools.partial(encode, model, params, t=time) for name, time in times.items()
  }
  return _encode_split(
    data_cfg, encoders, split=split, batch_size=batch_size, num_examples=num_examples, seed=seed
  )


def export_pixels(
  data_cfg: data.DataConfig, *, split: str, batch_size: int, num_examples: int
) -> dict[str, np.ndarray]:
  """Like `export_latents` with the flattened float32 pixels (N, H * W * C) as 'z'."""
  checks.check_static_int("num_examples", num_examples, 1)
  flatten = lambda key, x: x.reshape(x.shape[0], -1).astype(jnp.float32)  # noqa: E731
  return _encode_split(
    data_cfg, {"z": flatten}, split=split, batch_size=batch_size, num_examples=num_examples, seed=0
  )


class FittedPrior(NamedTuple):
  """A Gaussian p(z) = N(mean, scale scale^T) fitted to codes (L,) or code paths (K, L)."""

  mean: np.ndarray  # (L,) or (K, L)
  scale: np.ndarray  # (D, D), D = mean.size

  def covariance(self) -> np.ndarray:
    """scale scale^T, (D, D)."""
    return self.scale @ self.scale.T


def fit_prior(codes) -> FittedPrior:
  """The Gaussian fit (sample mean and covariance) of codes (N >= 2, L), or of code paths
  (N >= 2, K, L) (one image's codes at K flow times) as one vector of K L numbers each.

  Ex-post density estimation (Ghosh et al., 2020, "From variational to deterministic
  autoencoders"): a prior for sampling fitted to the codes of training images after training,
  where the aggregate posterior is not N(0, I). The scale is the covariance's symmetric
  square root, so a rank-deficient fit (N <= L) is still valid.
  """
  codes = np.asarray(codes, np.float64)
  if codes.ndim not in (2, 3) or codes.shape[0] < 2 or not np.all(np.isfinite(codes)):
    raise ValueError(
      f"codes must be finite with shape (N >= 2, L) or (N >= 2, K, L), got shape {codes.shape}."
    )
  flat = codes.reshape(len(codes), -1)
  eigval, eigvec = np.linalg.eigh(np.atleast_2d(np.cov(flat, rowvar=False)))
  scale = (eigvec * np.sqrt(np.clip(eigval, 0.0, None))) @ eigvec.T
  return FittedPrior(codes.mean(0).astype(np.float32), scale.astype(np.float32))


def draw_prior(prior: FittedPrior, key: jax.Array, num: int) -> jax.Array:
  """num draws (num, *mean.shape) float32 of the fitted prior: mean + scale eps, eps ~ N(0, I)."""
  eps = jax.random.normal(key, (num, prior.mean.size), jnp.float32)
  draws = jnp.asarray(prior.mean).reshape(-1) + eps @ jnp.asarray(prior.scale).T
  return draws.reshape(num, *prior.mean.shape)


# The sampling settings that `latent_prior` depends on.
PRIOR_KEYS = ("z_prior", "z_source", "prior_examples", "prior_times")
LATENTS_DIR = "latents"  # in a run directory: exported codes and the kept prior fits


def prior_times(config: ExperimentConfig) -> list[float]:
  """The flow times of the codes `latent_prior` fits: sampling.prior_times times linspace(0, 1)
  for ParamReL's progressive encoder (a code per generation step, `sampling.path_at`), else [1]."""
  cfg = config.sampling
  if (
    config.model_kind == "paramrel"
    and config.network.encoder == "progressive"
    and cfg.prior_times > 1
  ):
    return [float(t) for t in np.linspace(0.0, 1.0, cfg.prior_times)]
  return [1.0]


def prior_path(workdir: str, step: int, config: ExperimentConfig) -> str:
  """Where `latent_prior` keeps the fit of the checkpoint of `step` of the run in workdir."""
  name = f"prior_{step}_n{config.sampling.prior_examples}_k{len(prior_times(config))}.npz"
  return os.path.join(workdir, LATENTS_DIR, name)


def uses_prior(model: Model, config: ExperimentConfig) -> bool:
  """Whether sampling draws z from a fitted prior, i.e. `latent_prior` returns one."""
  cfg = config.sampling
  return not (
    cfg.z_prior == "standard"
    or model.latent_dim == 0
    or not registry.has_prior(config.model_kind)
    or (config.model_kind == "paramrel" and cfg.z_source != "prior")
  )


def latent_prior(
  model: Model, params: dict, config: ExperimentConfig, *, path: str | None = None
) -> FittedPrior | None:
  """The p(z) that sampling draws from: None for N(0, I), else `fit_prior` of the codes of the
  first sampling.prior_examples training images at `prior_times(config)` (one vector of K L
  numbers per image where K > 1).

  None also where z is not drawn from a prior: no codes, no prior (AE, DiffAE), or ParamReL with
  sampling.z_source='encoder'. With `path` (`prior_path`), a fit saved there is read instead of
  refitted, and a new fit is saved (by the first process); an unreadable file is refitted.
  """
  if not uses_prior(model, config):
    return None
  kept = None if path is None else _read_prior(path)
  if kept is not None:
    return kept
  first, *rest = prior_times(config)
  codes = export_latents(  # 'z' at the first time, one encode per time
    model,
    params,
    config.data,
    split=config.data.train_split,
    batch_size=config.eval.batch_size,
    num_examples=config.sampling.prior_examples,
    latent_time=first,
    latent_times=rest,
  )
  if rest:  # (N, K, L)
    codes["z"] = np.stack([codes["z"], *(codes[latent_key(t)] for t in rest)], axis=1)
  prior = fit_prior(codes["z"])
  if path is not None and jax.process_index() == 0:
    save_latents(path, prior._asdict())
  return prior


def _read_prior(path: str) -> FittedPrior | None:
  """The fit kept at `path`; None where there is none or it cannot be read (garbled, cut short)."""
  if not os.path.isfile(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as f:
      return FittedPrior(f["mean"], f["scale"])
  except (OSError, ValueError, KeyError, zipfile.BadZipFile):
    return None


def _encode_split(
  data_cfg: data.DataConfig,
  encoders: dict,
  *,
  split: str,
  batch_size: int,
  num_examples: int,
  seed: int,
) -> dict[str, np.ndarray]:
  """Runs every encoder (key, x) -> z (B, L) over the split's first examples, with labels."""
  num_examples = min(num_examples, split_size(data_cfg, split))
  base_key = jax.random.key(seed)
  chunks: dict[str, list[np.ndarray]] = {}
  batches = data.create_eval_iterator(
    data_cfg,
    split=split,
    batch_size=batch_size,
    num_examples=num_examples,
    shard_index=0,
    shard_count=1,
  )
  for index, batch in enumerate(batches):
    key = jax.random.fold_in(base_key, index)
    x = jax.tree.map(jnp.asarray, interface.batch_data(batch))
    mask = batch["mask"]
    for name, encode in encoders.items():
      chunks.setdefault(name, []).append(np.asarray(encode(key, x))[mask])
    for name in LABEL_KEYS:
      if name in batch:
        chunks.setdefault(name, []).append(np.asarray(batch[name], np.int32)[mask])
  return {name: np.concatenate(parts) for name, parts in chunks.items()}


def save_latents(path: str, arrays: dict[str, np.ndarray]) -> None:
  """Writes the arrays as an uncompressed .npz, atomically (temp file, then rename)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp.npz"
  np.savez(tmp, **arrays)
  os.replace(tmp, path)


def load_latents(path: str) -> dict[str, np.ndarray]:
  """The arrays of a file written by `save_latents`.

  Raises:
    ValueError: the file does not exist or has no 'z'.
  """
  if not os.path.isfile(path):
    raise ValueError(f"no latents file at {path}: run --mode=export_latents first.")
  with np.load(path, allow_pickle=False) as f:
    arrays = {key: f[key] for key in f.files}
  if "z" not in arrays:
    raise ValueError(f"{path} holds no 'z' array (keys: {sorted(arrays)}).")
  return arrays
