"""The `:smoke` variant shared by every dataset config: tiny network, batch and step count.

Tests and CI run every dataset config through exactly this path
(`--config=configs/<dataset>.py:smoke`); it trains a few steps in seconds on one CPU core.
"""

import ml_collections


def apply_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  config.model.size = "tiny"
  config.model.latent_dim = 4
  config.data.num_examples = 256
  config.data.num_workers = 0  # no worker processes to start for a few steps
  config.training.batch_size = 8
  config.training.num_steps = 4
  config.training.warmup_steps = 2
  config.training.log_every = 2
  config.training.checkpoint_every = 2
  config.sampling.num_steps = 4
  config.sampling.num_samples = 4
  config.eval.num_examples = 16
  config.eval.batch_size = 8
  return config
