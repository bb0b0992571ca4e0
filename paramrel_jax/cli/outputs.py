"""What the CLI modes of a trained model share: the model of a run and its outputs under
`workdir/<mode>/`, written by process 0 alone (every process computes the same outputs with the
same seed)."""

from __future__ import annotations

import os

import jax
import numpy as np

from paramrel_jax import api
from paramrel_jax.config.configuration import ExperimentConfig
from paramrel_jax.training import runs
from paramrel_jax.training.checkpointing import dump_json


def writes() -> bool:
  """Whether this process writes the outputs: process 0."""
  return jax.process_index() == 0


def load(config: ExperimentConfig, workdir: str, mode: str) -> api.LoadedModel:
  """The run's latest checkpoint as the API's model (`api.model_for`: a TableModel for a table);
  every mode but sample needs a self-encoder, and says so naming `mode`."""
  model = api.model_for(config, runs.restore(config, workdir))
  if mode != "sample" and model.latent_dim == 0:
    raise ValueError(f"--mode={mode} needs a self-encoder, but model.latent_dim = 0.")
  return model


def outdir(workdir: str, mode: str) -> str:
  """workdir/<mode>, created by process 0."""
  path = os.path.join(workdir, mode)
  if writes():
    os.makedirs(path, exist_ok=True)
  return path


def savez(path: str, **arrays) -> None:
  if writes():
    np.savez(path, **arrays)


def write_summary(out: str, summary: dict) -> dict:
  """out/summary.json; returns the summary."""
  if writes():
    dump_json(os.path.join(out, "summary.json"), summary)
  return summary
