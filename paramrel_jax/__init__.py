"""ParamReL: representation learning in the parameter space of Bayesian Flow Networks."""

__version__ = "0.1.0"


def load(workdir: str, *, step: int | None = None):
  """The trained run in `workdir` as a `paramrel_jax.api.LoadedModel` (uint8 images in and out).

  Imports JAX on first use only, so that `import paramrel_jax` (and the command line's --help)
  stays light.
  """
  from paramrel_jax import api

  return api.load(workdir, step=step)
