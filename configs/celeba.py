"""The file that `--config=configs/celeba.py` names: `paramrel_jax.configs.celeba`."""

from paramrel_jax.configs.celeba import get_config

__all__ = ["get_config"]
