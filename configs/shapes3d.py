"""The file that `--config=configs/shapes3d.py` names: `paramrel_jax.configs.shapes3d`."""

from paramrel_jax.configs.shapes3d import get_config

__all__ = ["get_config"]
