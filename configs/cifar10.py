"""The file that `--config=configs/cifar10.py` names: `paramrel_jax.configs.cifar10`."""

from paramrel_jax.configs.cifar10 import get_config

__all__ = ["get_config"]
