"""The file that `--config=configs/tabular.py` names: `paramrel_jax.configs.tabular`."""

from paramrel_jax.configs.tabular import get_config

__all__ = ["get_config"]
