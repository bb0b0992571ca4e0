r"""Command line of paramrel-jax.

  python -m paramrel_jax.main --config=configs/default.py --workdir=runs/default
  python -m paramrel_jax.main --config=configs/bmnist.py:smoke --workdir=/tmp/run \
      --config.training.batch_size=32 --mode=train

`--config.<section>.<key>=value` overrides any key of the config; an unknown key is an error.
Re-running the same command resumes from the latest checkpoint in `--workdir`.
"""

from __future__ import annotations

import copy
import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config file, e.g. configs/bmnist.py or configs/bmnist.py:smoke.",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and outputs.")
MODES = (
  "train",
  "eval",
  "export_latents",
  "plot_latents",
  "sample",
  "reconstruct",
  "conditional",
  "interpolate",
  "traverse",
  "impute",
)
_MODE = flags.DEFINE_enum(
  "mode",
  "train",
  MODES,
  "train: train or resume; eval: likelihood and the configured evaluators -> "
  "WORKDIR/eval/metrics.json; export_latents: encoder means of the train and eval splits -> "
  "WORKDIR/latents/<split>.npz; plot_latents: those codes' PCA and t-SNE pictures coloured by "
  "label or factor -> WORKDIR/plot_latents/<split>_{pca,tsne}.png; sample: Eq. 4 samples; "
  "reconstruct: reverse sampling (Eq. 5) and decoding of eval inputs; conditional: fixed z, "
  "fresh subcodes; interpolate: between eval inputs (App. E); traverse: one latent dimension "
  "at a time; impute (tables): the table at data.path with its missing cells filled -> "
  "WORKDIR/impute/imputed.csv. A table run's sample and reconstruct write CSV files. Outputs go "
  "to WORKDIR/<mode>/.",
)
_TRACEBACK = flags.DEFINE_bool("traceback", False, "Show the full traceback of an input error.")
flags.mark_flags_as_required(["config", "workdir"])


def _run(config, workdir: str, mode: str) -> None:
  # Imports here so that `--help` and flag errors answer without loading JAX.
  import jax

  from paramrel_jax.training import compile_cache, runs, workdir_utils

  to_fill = None
  if mode == "impute":  # data.path names the table to fill; the run keeps the one it learned
    config, to_fill = copy.deepcopy(config), config.data.path
    config.data.path = runs.saved_config(workdir).data.path
  config, resolved = runs.settle(config, workdir)
  compile_cache.configure(resolved.compile_cache, workdir)
  if resolved.distributed.initialize:
    jax.distributed.initialize(**resolved.distributed.initialize_kwargs())
  # Every process runs every mode (the collectives and Orbax's barriers need them all); process
  # 0 alone writes the run's files and prints.
  primary = jax.process_index() == 0
  # Only training saves its config: the other modes leave the config a run was trained with.
  workdir_utils.prepare_workdir(workdir, config, save_config=primary and mode == "train")
  schema = resolved.data.schema
  if mode == "train" and primary and schema is not None and runs.saved_schema(workdir) is None:
    path = schema.save(workdir)
    print(f"columns of {resolved.data.path} (saved in {path}):\n{schema.describe()}")
  if resolved.distributed.initialize and resolved.data.source == "tfds":
    _prepare_first(resolved.data, primary)
  if mode == "train":
    from paramrel_jax.methods import registry
    from paramrel_jax.training import train

    train.train_and_evaluate(resolved, workdir)
    if resolved.sampling.after_training and registry.has_prior(resolved.model_kind):
      from paramrel_jax.cli import generation_modes, table_modes

      table = resolved.data.schema is not None
      summary = (table_modes if table else generation_modes).run_sample(resolved, workdir)
      written = "samples.csv" if table else "samples.png"
      result = f"wrote {summary['num_samples']} samples to {workdir}/sample/{written}"
    else:
      result = None
  elif mode in ("eval", "export_latents", "plot_latents"):
    from paramrel_jax.cli import eval_modes

    run = {
      "eval": eval_modes.run_eval,
      "export_latents": eval_modes.run_export_latents,
      "plot_latents": eval_modes.run_plot_latents,
    }[mode]
    result = json.dumps(run(resolved, workdir), indent=2)
  elif resolved.data.schema is not None:
    from paramrel_jax.cli import table_modes

    if mode not in (*table_modes.MODES, "impute"):
      raise ValueError(
        f"--mode={mode} draws images; a table run offers train, eval, export_latents, "
        f"plot_latents, {', '.join(table_modes.MODES)} and impute."
      )
    if mode == "impute":
      result = json.dumps(table_modes.run_impute(resolved, workdir, to_fill), indent=2)
    else:
      result = json.dumps(table_modes.MODES[mode](resolved, workdir), indent=2)
  elif mode == "impute":
    raise ValueError("--mode=impute fills the missing cells of tables; this run models images.")
  else:
    from paramrel_jax.cli import generation_modes

    result = json.dumps(generation_modes.MODES[mode](resolved, workdir), indent=2)
  if resolved.distributed.initialize:
    _end_together()
  if primary and result is not None:
    print(result)


def _prepare_first(data_config, primary: bool) -> None:
  """Process 0 prepares missing TFDS data before the others look (paramrel_jax.data.prepare).

  On a data_dir that every host shares the others then find it prepared; on per-host disks each
  prepares its own copy when it opens the data.
  """
  from jax.experimental import multihost_utils

  from paramrel_jax.data import prepare

  if primary:
    prepare.ensure(data_config.name, data_config.data_dir, data_config.download)
  multihost_utils.sync_global_devices("paramrel_jax.main: data prepared")


def _end_together() -> None:
  """Waits for every process at the end of the mode, then leaves the distributed service.

  Without it, a process that finishes first reaches the service's shutdown barrier while others
  still compute, and the barrier's timeout aborts them all.
  """
  import jax
  from jax.experimental import multihost_utils

  multihost_utils.sync_global_devices("paramrel_jax.main: mode done")
  jax.distributed.shutdown()


def _fail(error: Exception) -> None:
  """Prints the error as one line (config_flags nests quoted, multi-line messages) and exits 2."""
  text = str(error).replace("\\n", " ").replace("\\'", "'")
  text = " ".join(text.split())
  if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
    text = text[1:-1]
  if isinstance(error, AttributeError):  # what config_flags raises for an unknown override key
    text = f"unknown config key {text}"
  print(f"error: {text}", file=sys.stderr)
  sys.exit(2)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one error line for bad flags, config files and override keys."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # config_flags raises AttributeError / KeyError / IOError, not flag errors
    _fail(e)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from paramrel_jax.training import checkpointing, train

  logging.set_verbosity(logging.WARNING)
  try:
    _run(_CONFIG.value, _WORKDIR.value, _MODE.value)
  except (ValueError, OSError, train.NonFiniteError, checkpointing.CheckpointError) as e:
    if _TRACEBACK.value:
      raise
    _fail(e)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main, flags_parser=_parse_flags)
