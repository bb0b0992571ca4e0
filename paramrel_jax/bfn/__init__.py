"""Bayesian-flow math (BFN, arXiv:2308.07037) for continuous, discretised and discrete data.

`continuous`, `discretised`, `discrete`: pure jnp functions (the fixed API of shared/API.md plus
samplers, schedules, losses and output distributions); `flows`: the Flow objects built on them;
`generate.generate`: the n-step generative loop.
"""

from paramrel_jax.bfn import continuous, discrete, discretised, flows, generate
from paramrel_jax.bfn.flows import (
  CategoricalOutput,
  CategoricalTheta,
  ContinuousFlow,
  DeltaOutput,
  DiscreteFlow,
  DiscretisedFlow,
  DiscretisedNormalOutput,
  Flow,
  GaussianTheta,
  OutputDist,
  bits_per_dim,
  make_flow,
  nats_per_dim,
)

__all__ = [
  "CategoricalOutput",
  "CategoricalTheta",
  "ContinuousFlow",
  "DeltaOutput",
  "DiscreteFlow",
  "DiscretisedFlow",
  "DiscretisedNormalOutput",
  "Flow",
  "GaussianTheta",
  "OutputDist",
  "bits_per_dim",
  "continuous",
  "discrete",
  "discretised",
  "flows",
  "generate",
  "make_flow",
  "nats_per_dim",
]
