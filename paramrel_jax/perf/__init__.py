"""Performance measurement: the benchmark of a configuration and what it is built from.

  benchmark      compile time, steps/s, images/s, memory, FLOPs, MFU and sampling of a config
  flops          peak FLOP/s of known accelerators, XLA's cost analysis, MFU
  hlo            the compiled HLO parsed, a profiler trace summarised by op kind and model part
  sampler_cost   one sampling step against its parts; host transfers and recompiles in the HLO

The driver is `python -m experiments.benchmark`; results are in experiments/BENCHMARKS.md.
"""
