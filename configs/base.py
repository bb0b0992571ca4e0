"""The file that `--config=configs/base.py` names: `paramrel_jax.configs.base`."""

from paramrel_jax.configs.base import get_config

__all__ = ["get_config"]
