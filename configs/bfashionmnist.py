"""The file that `--config=configs/bfashionmnist.py` names: `paramrel_jax.configs.bfashionmnist`."""

from paramrel_jax.configs.bfashionmnist import get_config

__all__ = ["get_config"]
