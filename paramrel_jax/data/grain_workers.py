"""The grain worker count of a DataConfig, ready for grain to start that many processes."""

from absl import flags

from paramrel_jax.data.config import DataConfig


def worker_count(cfg: DataConfig) -> int:
  """cfg's grain worker count; grain's workers read its absl flags, so they must be parsed.

  Under a command line (`absl.app`) they are; a library caller gets their defaults.
  """
  count = cfg.worker_count()
  if count and not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  return count
