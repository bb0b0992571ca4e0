"""ParamReL: representation learning in the parameter space of Bayesian Flow Networks."""

__version__ = "0.1.0"
