"""The file that `--config=configs/default.py` names: `paramrel_jax.configs.default`."""

from paramrel_jax.configs.default import get_config

__all__ = ["get_config"]
