"""Test likelihood of a trained model over a split: the ParamReL likelihood terms
(`methods.paramrel.likelihood`: the BFN test loss and the negative ELBO) averaged over the
examples, in nats and bits per image and per dimension, with their standard error.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from paramrel_jax import data
from paramrel_jax.data import sources
from paramrel_jax.methods import interface
from paramrel_jax.methods.paramrel.likelihood import (
  DEFAULT_LOSS_SAMPLES,
  FITTED_TERMS,
  TERMS,
  prior_arrays,
)

__all__ = ["DEFAULT_LOSS_SAMPLES", "FITTED_TERMS", "TERMS", "evaluate_likelihood", "split_size"]


def split_size(data_cfg: data.DataConfig, split: str) -> int:
  """Number of examples of `split` of the configured dataset."""
  return len(sources.open_split(data_cfg, split))


def _sum_over_processes(values: np.ndarray) -> np.ndarray:
  if jax.process_count() == 1:
    return values
  return np.asarray(multihost_utils.process_allgather(values)).sum(axis=0)


def evaluate_likelihood(
  model: interface.FlowModel,
  params: dict,
  data_cfg: data.DataConfig,
  *,
  split: str,
  batch_size: int,
  num_examples: int,
  loss_steps: int,
  n_repeats: int,
  seed: int = 0,
  loss_samples: int = DEFAULT_LOSS_SAMPLES,
  sample_z: bool = True,
  prior: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
  """Test likelihood over the first `num_examples` examples of a split, each exactly once a pass.

  Each of the `n_repeats` passes draws fresh noise (times, flows, z, sender samples); the result
  is the mean over passes and its standard error std / sqrt(n_repeats), as the official BFN's
  `test.py`. Processes share the examples (`data.create_eval_iterator`) and sum their totals.

  Args:
    model: a model with the capability `interface.FLOW` (ParamReL).
    params: its (EMA) parameters.
    data_cfg: data settings.
    split: the split to evaluate (e.g. data_cfg.eval_split).
    batch_size: global batch size (the last batch is padded and masked).
    num_examples: examples to cover; more than the split has means the whole split.
    loss_steps: n > 0 for the n-step loss, 0 for continuous time.
    n_repeats: passes over the examples.
    seed: seed of the noise.
    loss_samples: sender samples of the n-step loss.
    sample_z: z drawn from q (True) or its mean (`methods.paramrel.likelihood.likelihood_terms`).
    prior: a fitted prior of code paths, (mean (K, L) or (L,), covariance (K L, K L)), for
      `FITTED_TERMS`.

  Returns:
    A JSON-able dict: 'nats_per_image', 'nats_per_dim', 'bits_per_dim' and
    'stderr_nats_per_image' ('..._record' for a table's records, with a 'column:<name>' share
    of test_loss per column) (each {term: float} over `TERMS`, and `FITTED_TERMS` with a
    prior), and 'split', 'num_examples', 'dims_per_example', 'loss_steps', 'n_repeats',
    'loss_samples', 'z' ('sample' or 'mean').

  Raises:
    ValueError: a model without `interface.FLOW`, loss_steps < 0, loss_samples, n_repeats or
      num_examples < 1, or a bad data setting.
  """
  interface.require(model, interface.FLOW, "the BFN likelihood")
  for name, value, minimum in (
    ("loss_steps", loss_steps, 0),
    ("loss_samples", loss_samples, 1),
    ("n_repeats", n_repeats, 1),
    ("num_examples", num_examples, 1),
  ):
    if value < minimum:
      raise ValueError(f"{name} must be >= {minimum}, got {value}.")
  num_examples = min(num_examples, split_size(data_cfg, split))
  terms = TERMS
  if prior is not None:
    prior = prior_arrays(*prior, model.latent_dim)
    terms = TERMS + FITTED_TERMS
  settings = {
    "loss_steps": loss_steps,
    "loss_samples": loss_samples,
    "sample_z": sample_z,
    "prior": prior,
  }
  base_key = jax.random.fold_in(jax.random.key(seed), jax.process_index())
  per_repeat = []
  dims = 0
  for repeat in range(n_repeats):
    totals = None  # the term sums, then the number of examples
    batches = data.create_eval_iterator(
      data_cfg, split=split, batch_size=batch_size, num_examples=num_examples
    )
    for index, batch in enumerate(batches):
      key = jax.random.fold_in(jax.random.fold_in(base_key, repeat), index)
      x = jax.tree.map(jnp.asarray, interface.batch_data(batch))
      values = jax.device_get(model.likelihood_terms(params, key, x, **settings))
      if totals is None:  # records add a share per column ('column:<name>')
        terms += tuple(t for t in values if t.startswith("column:") and t not in terms)
        totals = np.zeros(len(terms) + 1)
      mask = batch["mask"]
      totals[:-1] += [float(values[term][mask].sum()) for term in terms]
      totals[-1] += mask.sum()
      dims = sum(math.prod(leaf.shape[1:]) for leaf in jax.tree.leaves(x))
    totals = _sum_over_processes(totals)
    per_repeat.append(totals[:-1] / totals[-1])
  per_repeat = np.asarray(per_repeat)  # (n_repeats, len(terms)) nats per example
  mean = per_repeat.mean(axis=0)
  stderr = per_repeat.std(axis=0) / math.sqrt(n_repeats)
  unit = "record" if isinstance(x, dict) else "image"
  return {
    f"nats_per_{unit}": dict(zip(terms, mean.tolist(), strict=True)),
    "nats_per_dim": dict(zip(terms, (mean / dims).tolist(), strict=True)),
    "bits_per_dim": dict(zip(terms, (mean / (dims * math.log(2))).tolist(), strict=True)),
    f"stderr_nats_per_{unit}": dict(zip(terms, stderr.tolist(), strict=True)),
    "split": split,
    "num_examples": int(num_examples),
    "dims_per_example": int(dims),
    "loss_steps": int(loss_steps),
    "n_repeats": int(n_repeats),
    "loss_samples": int(loss_samples),
    "z": "sample" if sample_z else "mean",
  }
