"""Bayesian-flow math (BFN, arXiv:2308.07037) for continuous, discretised and discrete data.

`continuous`, `discretised`, `discrete`: pure jnp functions (samplers, schedules, losses and output
distributions); `flows`: the Flow objects built on them; `mixed.MixedFlow`: a product of Flow
objects over the named columns of a record (mixed-type tables, missing cells); `generate.generate`:
the n-step generative loop.

A fixed public API, whose names, argument orders and meanings stay (outside conformance suites
call them; tests/test_bfn_reference.py checks them against the official BFN code):
  continuous   gamma, flow_mean, accuracy, bayesian_update, inverse_bayesian_update, predict_x,
               ctime_loss, dtime_loss
  discretised  bin_centres, quantize, bin_probs, log_prob, receiver_log_prob
  discrete     beta, flow_probs, accuracy, sender_log_prob, receiver_log_prob, bayesian_update,
               inverse_bayesian_update, ctime_loss
"""

from paramrel_jax.bfn import continuous, discrete, discretised, flows, generate, mixed
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
from paramrel_jax.bfn.mixed import MixedFlow

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
  "MixedFlow",
  "OutputDist",
  "bits_per_dim",
  "continuous",
  "discrete",
  "discretised",
  "flows",
  "generate",
  "make_flow",
  "mixed",
  "nats_per_dim",
]
