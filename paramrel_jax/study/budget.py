"""The training budget a study gives every row alike: its flags and its config overrides.

add_budget_flags(parser, steps=..., ...)   --steps --batch_size --size --latent_dim
                                           --learning_rate --ema_decay --num_examples
budget_overrides(args, log_every=, checkpoint_every=)   the dotted config overrides
apply_overrides(config, overrides)          sets them on a ConfigDict, refusing unknown keys
"""

from __future__ import annotations

import argparse
from typing import Any

import ml_collections

BUDGET_DEFAULTS = {
  "steps": 1500,
  "batch_size": 32,
  "size": "small",
  "latent_dim": 16,
  "learning_rate": 1e-3,
  "ema_decay": 0.99,
  "num_examples": 1000,
}
_HELP = {
  "steps": "training steps of every run",
  "batch_size": "training batch size",
  "size": "network variant (paramrel_jax.networks)",
  "latent_dim": "latent dimensions L",
  "learning_rate": "peak learning rate",
  "ema_decay": "decay of the evaluated EMA weights",
  "num_examples": "examples evaluated and scored per run (at most)",
}


def add_budget_flags(parser: argparse.ArgumentParser, **defaults: Any) -> None:
  """Adds the budget flags (BUDGET_DEFAULTS, each replaced by `defaults` where given)."""
  unknown = sorted(set(defaults) - set(BUDGET_DEFAULTS))
  if unknown:
    raise ValueError(f"unknown budget flag(s) {unknown}; known: {sorted(BUDGET_DEFAULTS)}.")
  for name, default in {**BUDGET_DEFAULTS, **defaults}.items():
    parser.add_argument(f"--{name}", type=type(default), default=default, help=_HELP[name])


def apply_overrides(
  config: ml_collections.ConfigDict, overrides: dict[str, Any]
) -> ml_collections.ConfigDict:
  """Sets 'section.key' (or top-level 'key') entries of `config` in place and returns it.

  Raises:
    ValueError: a key the config does not have.
  """
  for dotted, value in overrides.items():
    *sections, key = dotted.split(".")
    node = config
    for section in sections:
      if section not in node:
        raise ValueError(f"unknown config key {dotted!r}.")
      node = node[section]
    if key not in node:
      raise ValueError(f"unknown config key {dotted!r}.")
    node[key] = value
  return config


def budget_overrides(args: Any, *, log_every: int, checkpoint_every: int) -> dict[str, Any]:
  """The dotted config overrides of a study's shared training budget.

  Args:
    args: the study's flags: steps, batch_size, learning_rate, ema_decay, size (the network
      variant), latent_dim and num_examples (evaluated examples).
    log_every: training.log_every (and the cadence of the evaluators in `evals`).
    checkpoint_every: training.checkpoint_every.
  """
  return {
    "model.size": args.size,
    "model.latent_dim": args.latent_dim,
    "training.num_steps": args.steps,
    "training.batch_size": args.batch_size,
    "training.learning_rate": args.learning_rate,
    "training.warmup_steps": min(100, args.steps // 10),
    "training.ema_decay": args.ema_decay,
    "training.log_every": log_every,
    "training.checkpoint_every": checkpoint_every,
    "eval.num_examples": args.num_examples,
    "eval.batch_size": 100,
  }
