"""Performance measurement: the benchmark of a configuration and what it is built from.

  benchmark      compile time, steps/s, images/s, memory, FLOPs, MFU and sampling of a config
  flops          peak FLOP/s of known accelerators, XLA's cost analysis, MFU
  hlo            the compiled HLO parsed, a profiler trace summarised by op kind and model part

The sampler's own checks (a step against its parts, host transfers, recompiles) are
`methods.paramrel.sampler_cost`: they need the model's flow and networks, which only the method
reads.

The driver is `python -m experiments.benchmark`; results are in experiments/BENCHMARKS.md.
"""
