"""The file that `--config=configs/bmnist.py` names: `paramrel_jax.configs.bmnist`."""

from paramrel_jax.configs.bmnist import get_config

__all__ = ["get_config"]
