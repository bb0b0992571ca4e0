"""Tables of mixed-type records: one Bayesian flow over continuous, discretised and discrete
columns (`bfn.mixed.MixedFlow`), a `RecordNet` and an 8-dimensional z.

  python -m paramrel_jax.main --config=configs/tabular.py --workdir=runs/penguins

The default table is the Palmer penguins (344 rows, 7 columns with missing cells; CC0 data of
Horst, Hill and Gorman, from the `palmerpenguins` package), bundled beside this file, with
`species` as the probe label. Another table: `--config.data.path=FILE.csv` (or .parquet) and
`--config.data.label=COLUMN`. Column
kinds are inferred and printed at the start of a run; `--config.data.columns='year:discrete'`
overrides them. The schema is saved as WORKDIR/schema.json. Afterwards --mode=sample writes
sample/samples.csv, --mode=impute (with --config.data.path=FILE.csv) the completed table,
--mode=export_latents latents/<split>.npz and --mode=eval nats per record, per column and in
total. `:smoke` trains 4 steps of a tiny network.
"""

import os

from paramrel_jax.configs import base, smoke

PENGUINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "penguins.csv")


def get_config(variant: str = ""):
  config = base.get_config()
  config.data.name = "penguins"
  config.data.source = "csv"
  config.data.path = PENGUINS
  config.data.label = "species"
  config.data.test_fraction = 0.2
  config.flow.data_type = "mixed"
  config.flow.beta1 = 3.0  # discrete columns
  config.model.size = "record"
  config.model.latent_dim = 8
  # each training cell hidden from the encoder with probability 0.3: without it z describes only
  # complete records, and imputation given 70 % of a penguin fills at the mean / mode's level
  # (experiments/README.md, "Tables")
  config.objective.encoder_mask = 0.3
  config.objective.kl_weight = 1e-2
  # the BFN term as the ELBO weighs it, not base.py's flat_both (chosen for images' codes): a
  # continuous column's weight spans six decades over t, and flat_both left penguins at -ELBO
  # 48.5 against 29.8 nats per record (experiments/README.md, "The BFN term's weighting")
  config.objective.latent_weighting = "elbo"
  config.training.batch_size = 64
  config.training.num_steps = 8000
  config.training.learning_rate = 1e-3
  config.training.checkpoint_every = 1000
  config.sampling.num_steps = 100
  config.sampling.num_samples = 256
  config.sampling.prior_examples = 256
  config.eval.num_examples = 1000
  if variant == "smoke":
    smoke.apply_smoke(config)
    config.model.size = "record"
    config.model.num_channels = 16
  return config
