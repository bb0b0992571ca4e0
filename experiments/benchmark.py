r"""Benchmark of one configuration: compile time, throughput, memory, FLOPs, MFU and sampling.

  python -m experiments.benchmark --config=configs/cifar10.py:smoke --out=/tmp/cifar10_smoke.json
  python -m experiments.benchmark --config=configs/celeba.py --config.model.dtype=bfloat16 \
      --out=celeba_bf16.json --repeats=3 --warmup=1
  python -m experiments.benchmark --config=configs/bmnist.py:smoke --devices=1,2,4,8 \
      --out=scaling.json

For the configured network, flow and global batch it measures, on synthetic batches of the right
shape and dtype (no dataset needed):
  * the time to lower and to compile the sharded train step of `paramrel_jax.training.train`;
  * steady-state train steps/s and images/s: after `--warmup` steps, `--repeats` timings of
    `--steps_per_repeat` steps each (ended by `block_until_ready`), median;
  * peak memory: the device's `memory_stats()['peak_bytes_in_use']`, or on CPU (which has none)
    the process's max RSS, plus XLA's static memory analysis of the compiled step;
  * FLOPs per step from XLA's cost analysis of the compiled step, and the MFU against the
    device's peak FLOP/s (a table of known accelerators; on CPU a measured large float32 matmul);
  * the wall time of n-step generation (`paramrel_jax.methods.paramrel.sampling.sample`, z from
    the prior) for `--sample_batch` images on one device, compile time reported apart (median of
    at most `--sample_repeats` calls, no further call once they took `--sample_budget_s`);
    `--sample_extrapolate` adds times for larger n, extrapolated in proportion to n from the
    largest measured n and labelled as such;
  * the losses of the first `--check_steps` steps from a fixed init and batch.
`--devices=1,2,4` re-runs the benchmark in one subprocess per count N with N simulated CPU devices
(XLA_FLAGS=--xla_force_host_platform_device_count=N, the global batch split over them) and checks
that the step is unchanged: the losses must equal the first count's to rtol LOSS_RTOL.
`--profile_dir` also traces `--steps_per_repeat` steps with `jax.profiler` and summarises where
the step's time went (by op kind and by model part). See experiments/BENCHMARKS.md for results.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import importlib.metadata
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from paramrel_jax import data
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.config import configuration
from paramrel_jax.data.generated import GENERATED
from paramrel_jax.methods import paramrel
from paramrel_jax.methods.paramrel import sampler_cost, sampling
from paramrel_jax.training import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config, e.g. configs/cifar10.py or configs/cifar10.py:smoke.",
  lock_config=True,
)
_OUT = flags.DEFINE_string("out", None, "JSON file the results are written to.")
_SAMPLE_STEPS = flags.DEFINE_list(
  "sample_steps", ["10", "100", "1000"], "Numbers of generation steps n to time ('': none)."
)
_SAMPLE_EXTRAPOLATE = flags.DEFINE_list(
  "sample_extrapolate", [], "n whose sampling time is extrapolated (labelled) from the largest n."
)
_SAMPLE_BATCH = flags.DEFINE_integer("sample_batch", 64, "Images generated per sampling call.")
_SAMPLE_REPEATS = flags.DEFINE_integer("sample_repeats", 3, "Most timed calls per n (median).")
_SAMPLE_BUDGET = flags.DEFINE_float(
  "sample_budget_s", 60.0, "No further timed sampling call for an n once its calls took this long."
)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats of the train step (median).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed train steps before the timed repeats.")
_STEPS_PER_REPEAT = flags.DEFINE_integer("steps_per_repeat", 5, "Train steps per timed repeat.")
_CHECK_STEPS = flags.DEFINE_integer(
  "check_steps", 3, "Steps from a fixed init and batch whose losses are recorded."
)
_CPU_PEAK_SIZE = flags.DEFINE_integer(
  "cpu_peak_size", 2048, "Size of the square float32 matmul that measures a CPU's peak FLOP/s."
)
_PROFILE_DIR = flags.DEFINE_string(
  "profile_dir", "", "If set, trace train steps with jax.profiler into this directory."
)
_SAMPLER_COST = flags.DEFINE_bool(
  "sampler_cost",
  False,
  "Also time one sampling step against the output network's forward and the flow math, and "
  "check the compiled sampler for host transfers and recompiles.",
)
_DEVICES = flags.DEFINE_list(
  "devices", [], "Simulated CPU device counts, each benchmarked in a subprocess (scaling check)."
)
flags.mark_flags_as_required(["config", "out"])

# The n-device losses must equal the reference's to this relative tolerance.
LOSS_RTOL = 1e-5

# Dense peak FLOP/s per chip from the vendors' data sheets: (device_kind substring, name,
# {precision: FLOP/s}); the first match wins. 'fp32' is NVIDIA's non-tensor-core rate.
PEAK_FLOPS: tuple[tuple[str, str, dict[str, float]], ...] = (
  ("H100 PCIe", "NVIDIA H100 PCIe", {"bf16": 756e12, "tf32": 378e12, "fp32": 51e12}),
  ("H100", "NVIDIA H100 SXM", {"bf16": 989e12, "tf32": 494e12, "fp32": 67e12}),
  ("H200", "NVIDIA H200", {"bf16": 989e12, "tf32": 494e12, "fp32": 67e12}),
  ("A100", "NVIDIA A100", {"bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12}),
  ("TPU v4", "TPU v4", {"bf16": 275e12}),
  ("TPU v5 lite", "TPU v5e", {"bf16": 197e12}),
  ("TPU v5e", "TPU v5e", {"bf16": 197e12}),
  ("TPU v5", "TPU v5p", {"bf16": 459e12}),
  ("TPU v6 lite", "TPU v6e", {"bf16": 918e12}),
)


@dataclasses.dataclass(frozen=True)
class Options:
  """What to measure and how often (the harness's flags; see the module docstring)."""

  sample_steps: tuple[int, ...] = (10, 100, 1000)
  sample_extrapolate: tuple[int, ...] = ()
  sample_batch: int = 64
  sample_repeats: int = 3
  sample_budget_s: float = 60.0
  repeats: int = 5
  warmup: int = 2
  steps_per_repeat: int = 5
  check_steps: int = 3
  cpu_peak_size: int = 2048
  profile_dir: str = ""
  sampler_cost: bool = False

  def __post_init__(self):
    for name in (
      "sample_batch",
      "sample_repeats",
      "repeats",
      "steps_per_repeat",
      "check_steps",
      "cpu_peak_size",
    ):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}.")
    if self.warmup < 0:
      raise ValueError(f"--warmup must be >= 0, got {self.warmup}.")
    if self.sample_budget_s <= 0:
      raise ValueError(f"--sample_budget_s must be > 0, got {self.sample_budget_s}.")
    if any(n < 1 for n in self.sample_steps + self.sample_extrapolate):
      raise ValueError("--sample_steps and --sample_extrapolate must hold integers >= 1.")
    if self.sample_extrapolate and not self.sample_steps:
      raise ValueError("--sample_extrapolate needs a measured n in --sample_steps.")


def image_shape(cfg: configuration.ExperimentConfig) -> tuple[tuple[int, int, int], str]:
  """(H, W, C) of the configured images and where C came from, without reading any data.

  C is the dataset's channel count for known TFDS and generated datasets; otherwise it is
  assumed from the data type (1 for discrete, binarised data, else 3).
  """
  size = cfg.data.image_size
  if cfg.data.source == "tfds" and cfg.data.name in data.TFDS_DATASETS:
    return (size, size, data.TFDS_DATASETS[cfg.data.name].native_shape[-1]), "TFDS metadata"
  if cfg.data.source == "generated" and cfg.data.name in GENERATED:
    channels = GENERATED[cfg.data.name][0](1, size)["image"].shape[-1]
    return (size, size, channels), "generated dataset"
  channels = 1 if cfg.flow.data_type == "discrete" else 3
  return (size, size, channels), f"assumed from data type {cfg.flow.data_type!r}"


def synthetic_batch(flow: Flow, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
  """A random batch of images of `shape` (B, H, W, C) in the flow's data format.

  Discrete: int32 classes in [0, K); discretised: float32 bin centres; continuous: float32 in
  [-1, 1] (the conventions of the team brief). The batch passes `flow.validate_data`.
  """
  rng = np.random.default_rng(seed)
  if flow.data_type == "discrete":
    x = rng.integers(0, flow.num_classes, shape).astype(np.int32)
  elif flow.data_type == "discretised":
    k = rng.integers(0, flow.num_bins, shape)
    x = ((2 * k + 1) / flow.num_bins - 1).astype(np.float32)
  else:
    x = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
  flow.validate_data(x)
  return x


def peak_flops(device_kind: str) -> tuple[str, dict[str, float]] | None:
  """(name, {precision: peak FLOP/s}) of a known accelerator, else None."""
  for pattern, name, peaks in PEAK_FLOPS:
    if pattern.lower() in device_kind.lower():
      return name, peaks
  return None


def measure_matmul_flops(size: int, repeats: int = 5) -> float:
  """Best FLOP/s of a jitted float32 (size x size) @ (size x size) matmul on the default device.

  The best of `repeats` timed calls (after one warm-up call) approximates the attainable peak.
  """
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  matmul(a, a).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, a).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2.0 * size**3 / min(times)


def first_cost(analysis: Any) -> dict[str, float]:
  """XLA's cost analysis as one dict (older JAX returns a list with one dict per program)."""
  if isinstance(analysis, list | tuple):
    analysis = analysis[0] if analysis else {}
  return dict(analysis or {})


def _mfu(
  flops_per_step: float,
  steps_per_s: float,
  device,
  dtype: str,
  cpu_peak: dict[str, float] | None,
  n_devices: int,
) -> dict[str, Any]:
  """Achieved FLOP/s over the device's peak FLOP/s (for every precision with a known peak)."""
  achieved = flops_per_step * steps_per_s  # FLOP/s of all devices together
  if device.platform == "cpu":
    # One measured number for the whole process: the simulated devices share the cores.
    peaks, name = cpu_peak, "CPU (attainable peak measured by a large jitted matmul)"
    primary = "fp32"
    scale = 1
  else:
    known = peak_flops(device.device_kind)
    if known is None:
      return {
        "achieved_flops_per_s": achieved,
        "peak_device": None,
        "note": f"no peak FLOP/s known for device kind {device.device_kind!r}",
      }
    name, peaks = known
    # bfloat16 runs on the bf16 units; float32 dots use JAX's default precision, which is TF32
    # on NVIDIA Ampere and later and bf16 passes on TPU.
    primary = "bf16" if dtype == "bfloat16" or "tf32" not in peaks else "tf32"
    scale = n_devices
  mfu = {precision: achieved / (peak * scale) for precision, peak in peaks.items()}
  return {
    "achieved_flops_per_s": achieved,
    "peak_device": name,
    "peak_flops_per_s": {k: v * scale for k, v in peaks.items()},
    "mfu": mfu,
    "primary": primary,
    "mfu_primary": mfu[primary],
  }


# ---------------------------------------------------------------------------------------------
# Profile summary: the trace's per-HLO-op events, attributed with the compiled HLO module.

_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\S+)\s.*?\b([a-z][\w\-]*)\(")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\{\s*$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_RESULT_TYPE = re.compile(r"->\s*tensor<([^>]*)>\s*$")
_OPERAND = re.compile(r"%([\w.\-]+)")
# How many producer levels an op without metadata looks through for a scope to inherit.
_MAX_INHERIT_DEPTH = 8


@dataclasses.dataclass(frozen=True)
class HloOp:
  """One HLO instruction of a compiled module: result type, op kind and source scope."""

  dtype: str
  kind: str
  scope: str


def _op_kind(opcode: str, line: str, computations: dict[str, set[str]]) -> str:
  if opcode == "fusion":
    match = _CALLS.search(line)
    inner = computations.get(match.group(1), set()) if match else set()
    for kind in ("convolution", "dot"):
      if kind in inner:
        return kind
    return "reduction fusion" if "reduce" in inner else "elementwise fusion"
  if opcode == "custom-call":
    if "conv" in line.lower():
      return "convolution"
    return "dot" if ("gemm" in line.lower() or "matmul" in line.lower()) else "custom-call"
  if opcode in ("copy", "transpose", "bitcast", "copy-start", "copy-done"):
    return "copy / transpose"
  return opcode


def _op_scope(op_name: str) -> str:
  if not op_name:
    return "unattributed"
  if "ParamReLNet" in op_name:
    part = "encoder" if "ParamReLNet.encode" in op_name else "decoder"
    if "attn" in op_name or "attention" in op_name:
      part += " attention"
    return part + (" (backward)" if "transpose(" in op_name else " (forward)")
  if any(rng in op_name for rng in ("threefry", "_normal", "_uniform", "random_")):
    return "random numbers"
  if "jvp(" in op_name:
    return "flow math + objective"
  return "optimizer + EMA + metrics"


def parse_hlo(text: str) -> dict[str, HloOp]:
  """Instruction name -> HloOp of an optimised HLO module's text (`compiled.as_text()`).

  The scope comes from the instruction's `op_name` metadata (the JAX name stack), else from its
  fused computation's, else from the nearest operands that have one, preferring a backward scope
  (XLA-made ops such as weight-gradient convolutions carry no metadata).
  """
  opcodes: dict[str, set[str]] = collections.defaultdict(set)
  comp_op_name: dict[str, str] = {}
  insts: dict[str, tuple[str, str, str, str]] = {}  # name -> (dtype, opcode, line, computation)
  current = ""
  for line in text.splitlines():
    header = _COMPUTATION.match(line)
    if header and not line.startswith(" "):
      current = header.group(1)
      continue
    inst = _INSTRUCTION.match(line)
    if inst:
      name, dtype, opcode = inst.groups()
      opcodes[current].add(opcode)
      op_name = _OP_NAME.search(line)
      if op_name and (current not in comp_op_name or line.lstrip().startswith("ROOT")):
        comp_op_name[current] = op_name.group(1)
      insts[name] = (dtype, opcode, line, current)

  def own_scope(name: str) -> str:
    _, _, line, _ = insts[name]
    op_name = _OP_NAME.search(line)
    calls = _CALLS.search(line)
    if op_name:
      return _op_scope(op_name.group(1))
    return _op_scope(comp_op_name.get(calls.group(1), "") if calls else "")

  scopes = {name: own_scope(name) for name in insts}

  def inherited(name: str) -> str:
    frontier, seen = [name], {name}
    for _ in range(_MAX_INHERIT_DEPTH):
      operands = []
      for op in frontier:
        line = insts[op][2]
        args = line[line.index("(", line.index("=")) :]
        operands += [o for o in _OPERAND.findall(args.split("calls=")[0]) if o in insts]
      frontier = [o for o in dict.fromkeys(operands) if o not in seen]
      seen.update(frontier)
      found = [scopes[o] for o in frontier if scopes[o] != "unattributed"]
      if found:
        return next((f for f in found if "backward" in f), found[0])
      if not frontier:
        break
    return "unattributed"

  ops = {}
  for name, (dtype, opcode, line, _) in insts.items():
    scope = scopes[name] if scopes[name] != "unattributed" else inherited(name)
    ops[name] = HloOp(
      dtype=dtype.split("[")[0].lstrip("("), kind=_op_kind(opcode, line, opcodes), scope=scope
    )
  return ops


def lowered_dtypes(text: str) -> dict[str, dict[str, int]]:
  """Counts of convolutions and dots by result element type in a lowered (StableHLO) module.

  What the program asks for, before the backend rewrites it (XLA:CPU computes bfloat16
  convolutions and dots in float32; compare `hlo_dtypes`).
  """
  counts: dict[str, dict[str, int]] = {"convolution": {}, "dot": {}}
  for line in text.splitlines():
    for kind, op in (("convolution", "stablehlo.convolution"), ("dot", "stablehlo.dot_general")):
      result = _RESULT_TYPE.search(line) if op in line else None
      if result:
        dtype = result.group(1).split("x")[-1]
        counts[kind][dtype] = counts[kind].get(dtype, 0) + 1
  return counts


def hlo_dtypes(ops: dict[str, HloOp]) -> dict[str, dict[str, int]]:
  """Counts of convolution and dot instructions of a compiled module by result element type."""
  counts: dict[str, dict[str, int]] = {"convolution": {}, "dot": {}}
  for op in ops.values():
    if op.kind in counts:
      counts[op.kind][op.dtype] = counts[op.kind].get(op.dtype, 0) + 1
  return counts


def summarize_trace(trace_dir: str, ops: dict[str, HloOp], top: int = 12) -> dict[str, Any]:
  """Time of the traced HLO ops (summed over threads), by op kind, by model part and the top ops.

  Args:
    trace_dir: the directory given to `jax.profiler.trace` (`create_perfetto_trace=True`).
    ops: `parse_hlo` of the traced executable.
    top: how many of the most expensive ops to list.
  """
  files = sorted(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True))
  if not files:
    raise ValueError(f"no perfetto_trace.json.gz under profile_dir={trace_dir!r}.")
  with gzip.open(files[-1]) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  by_kind: dict[str, float] = collections.Counter()
  by_scope: dict[str, float] = collections.Counter()
  by_op: dict[str, float] = collections.Counter()
  for event in events:
    op = ops.get(event.get("name", "")) if event.get("ph") == "X" else None
    if op is not None:
      ms = event.get("dur", 0) / 1e3
      by_kind[op.kind] += ms
      by_scope[op.scope] += ms
      by_op[f"{event['name']} [{op.kind}; {op.scope}]"] += ms
  total = sum(by_kind.values())
  if total <= 0:
    raise ValueError(f"the trace in {files[-1]} has no events of the executable's HLO ops.")

  def shares(counter: dict[str, float]) -> dict[str, float]:
    return {k: round(v / total, 4) for k, v in sorted(counter.items(), key=lambda kv: -kv[1])}

  return {
    "trace": files[-1],
    "op_time_ms": total,
    "share_by_kind": shares(by_kind),
    "share_by_scope": shares(by_scope),
    "top_ops_ms": dict(sorted(by_op.items(), key=lambda kv: -kv[1])[:top]),
  }


# ---------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
  return {pkg: importlib.metadata.version(pkg) for pkg in ("jax", "jaxlib", "flax", "optax")}


def _memory(device) -> dict[str, Any]:
  stats = device.memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return {
      "peak_bytes": int(stats["peak_bytes_in_use"]),
      "source": "device memory_stats()['peak_bytes_in_use']",
    }
  # Linux reports ru_maxrss in KiB.
  return {
    "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "source": "process max RSS (getrusage; the device has no memory_stats): includes the "
    "compiler, Python and the sampling runs",
  }


def _network_output_dtypes(model, params, data_shape: tuple[int, ...]) -> dict[str, str]:
  """dtypes of what the networks hand to the flow math and the objective (shapes only)."""
  encode, decode = paramrel.net_fns(model.net, params)
  net_in = model.flow.net_input(model.flow.prior(data_shape, jnp.float32))
  t = jnp.zeros(data_shape[:1], jnp.float32)
  mean, _ = jax.eval_shape(encode, net_in, t)
  net_out = jax.eval_shape(decode, net_in, jnp.zeros(mean.shape, jnp.float32), t)
  return {"encoder_out_dtype": str(mean.dtype), "net_out_dtype": str(net_out.dtype)}


def _time_sampling(model, params, shape: tuple[int, ...], opts: Options) -> list[dict]:
  """Lowering, compile and run times of `sampling.sample` for each n of opts.sample_steps."""
  runs = []
  key = jax.random.key(1)
  for n in opts.sample_steps:
    start = time.perf_counter()
    lowered = sampling.sample.lower(
      key, model.flow, model.net, params, data_shape=shape, n_steps=n, z_source="prior"
    )
    lower_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    times: list[float] = []
    while len(times) < opts.sample_repeats and sum(times) < opts.sample_budget_s:
      start = time.perf_counter()
      jax.block_until_ready(compiled(key, params).x)
      times.append(time.perf_counter() - start)
    median = statistics.median(times)
    runs.append(
      {
        "n_steps": n,
        "extrapolated": False,
        "lower_s": lower_s,
        "compile_s": compile_s,
        "times_s": times,
        "median_s": median,
        "ms_per_step": 1e3 * median / n,
      }
    )
  if opts.sample_extrapolate:
    # Proportional to n from the largest measured n: the per-step cost dominates there, and the
    # fixed cost (prior draw, final output) makes this a slight overestimate.
    base = max(runs, key=lambda r: r["n_steps"])
    for n in opts.sample_extrapolate:
      median = base["median_s"] * n / base["n_steps"]
      runs.append(
        {
          "n_steps": n,
          "extrapolated": True,
          "median_s": median,
          "ms_per_step": 1e3 * median / n,
          "note": f"extrapolated: t(n) = t({base['n_steps']}) * n / {base['n_steps']}",
        }
      )
  return runs


def _sampler_step(model, params, shape: tuple[int, ...], profile_dir: str) -> dict[str, Any]:
  """One sampling step against its parts, plus the host-transfer and recompile checks.

  With a `profile_dir`, one 10-step call is also traced there ('sampler/') and its op time split
  into the network, random numbers and the rest: the flow math (no gradient in the sampler).
  """
  key = jax.random.key(1)

  def run(seed: int = 1):
    return sampling.sample(
      jax.random.key(seed), model.flow, model.net, params, data_shape=shape, n_steps=10,
      z_source="prior",
    ).x

  compiled = sampling.sample.lower(
    key, model.flow, model.net, params, data_shape=shape, n_steps=10, z_source="prior"
  ).compile()
  run()
  result = {
    **sampler_cost.step_costs(model.flow, model.net, params, shape),
    "host_transfers_in_sampler": sampler_cost.host_transfers(compiled.as_text()),
    "compiles_on_a_second_call": sampler_cost.compiles_while(lambda: run(2)),
  }
  if profile_dir:
    trace_dir = os.path.join(profile_dir, "sampler")
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      jax.block_until_ready(run(3))
    profile = summarize_trace(trace_dir, parse_hlo(compiled.as_text()))
    shares: dict[str, float] = collections.Counter()
    for scope, share in profile["share_by_scope"].items():
      network = scope.startswith(("decoder", "encoder"))
      shares[scope if network or scope == "random numbers" else "flow math"] += share
    result["profile_share_by_scope"] = dict(shares)
  return result


def _time_train(compiled, state, batch: dict, opts: Options) -> tuple[Any, dict[str, Any]]:
  """Runs the compiled train step: the check steps, the warm-up, then the timed repeats.

  Returns:
    The final state and {'check_losses', 'loss_dtype', 'repeat_times_s', 'median_step_s',
    'steps_per_s'}.
  """
  losses = []
  for _ in range(opts.check_steps):
    state, metrics = compiled(state, batch)
    losses.append(float(metrics["loss"]))
  loss_dtype = str(metrics["loss"].dtype)
  for _ in range(opts.warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(state)
  times = []
  for _ in range(opts.repeats):
    start = time.perf_counter()
    for _ in range(opts.steps_per_repeat):
      state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times) / opts.steps_per_repeat
  return state, {
    "check_losses": losses,
    "loss_dtype": loss_dtype,
    "repeat_times_s": times,
    "median_step_s": step_s,
    "steps_per_s": 1.0 / step_s,
  }


def benchmark(
  config: ml_collections.ConfigDict, opts: Options, config_name: str = ""
) -> dict[str, Any]:
  """Runs the benchmark of a config (ml_collections ConfigDict) and returns the results as a dict.

  Raises:
    ValueError: an invalid config, or a global batch the device count does not divide.
  """
  load_start = os.getloadavg()
  cfg = configuration.resolve(config)
  if cfg.distributed.initialize:  # one process per host, as paramrel_jax.main
    jax.distributed.initialize(**cfg.distributed.initialize_kwargs())
  shape, channels_from = image_shape(cfg)
  batch_size, n_devices = cfg.training.batch_size, jax.device_count()
  if batch_size % n_devices:
    raise ValueError(
      f"training.batch_size={batch_size} is not divisible by the {n_devices} devices."
    )
  data_shape = (batch_size, *shape)
  exp = train.build_experiment(cfg, shape[-1])
  mesh = train.make_mesh()
  steps = train.compile_steps(exp, mesh, data_shape)
  device = jax.local_devices()[0]
  local = synthetic_batch(cfg.flow, (batch_size // jax.process_count(), *shape), cfg.seed)
  batch = data.make_global_batch({"image": local}, mesh, axis=train.DATA_AXIS)
  state = steps.init(jax.random.key(cfg.seed))
  num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))

  start = time.perf_counter()
  lowered = steps.train.lower(state, batch)
  lower_s = time.perf_counter() - start
  start = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  cost = first_cost(compiled.cost_analysis())
  mem = compiled.memory_analysis()
  hlo_ops = parse_hlo(compiled.as_text())

  state, timing = _time_train(compiled, state, batch, opts)
  memory = _memory(device)
  if mem is not None:
    memory["compiled_step_bytes"] = {
      "arguments": mem.argument_size_in_bytes,
      "outputs": mem.output_size_in_bytes,
      "aliased (donated)": mem.alias_size_in_bytes,
      "temporaries": mem.temp_size_in_bytes,
    }

  profile = None
  if opts.profile_dir:
    with jax.profiler.trace(opts.profile_dir, create_perfetto_trace=True):
      for _ in range(opts.steps_per_repeat):
        state, metrics = compiled(state, batch)
      jax.block_until_ready((state, metrics))
    profile = summarize_trace(opts.profile_dir, hlo_ops)
    profile["step_wall_ms"] = 1e3 * timing["median_step_s"]

  # XLA's cost analysis describes the SPMD-partitioned program of one device.
  flops_device = float(cost.get("flops", 0.0))
  cpu_peak = None
  if device.platform == "cpu":
    cpu_peak = {"fp32": measure_matmul_flops(opts.cpu_peak_size)}
  dtypes = _network_output_dtypes(exp.model, state.params, data_shape)

  sampling_runs, step_cost = [], None
  if opts.sample_steps or opts.sampler_cost:
    params = jax.device_put(state.ema_params, device)
  if opts.sample_steps:
    sampling_runs = _time_sampling(exp.model, params, (opts.sample_batch, *shape), opts)
  if opts.sampler_cost:
    step_cost = _sampler_step(exp.model, params, (opts.sample_batch, *shape), opts.profile_dir)

  return {
    "config": {
      "name": config_name,
      "dataset": cfg.data.name,
      "data_type": cfg.flow.data_type,
      "image_shape": list(shape),
      "channels_from": channels_from,
      "model_size": config.model.size,
      "latent_dim": cfg.network.latent_dim,
      "dtype": cfg.network.dtype,
      "remat": cfg.network.remat,
      "global_batch": batch_size,
      "per_device_batch": batch_size // n_devices,
      "num_params": num_params,
    },
    "environment": {
      **_versions(),
      "python": platform.python_version(),
      "platform": device.platform,
      "device_kind": device.device_kind,
      "device_count": n_devices,
      "process_count": jax.process_count(),
      "cpu_count": os.cpu_count(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "loadavg_start": list(load_start),
      "loadavg_end": list(os.getloadavg()),
    },
    "options": dataclasses.asdict(opts),
    "compile": {"lower_s": lower_s, "compile_s": compile_s},
    "train": {
      **timing,
      "images_per_s": timing["steps_per_s"] * batch_size,
      **dtypes,
      "requested_dtypes": lowered_dtypes(lowered.as_text()),
      "compiled_dtypes": hlo_dtypes(hlo_ops),
    },
    "flops": {
      "per_step_per_device": flops_device,
      "per_step": flops_device * n_devices,
      "bytes_accessed_per_step_per_device": float(cost.get("bytes accessed", 0.0)),
      "source": "XLA cost_analysis() of the compiled train step (counts remat recomputation)",
    },
    "mfu": _mfu(
      flops_device * n_devices,
      timing["steps_per_s"],
      device,
      cfg.network.dtype,
      cpu_peak,
      n_devices,
    ),
    "memory": memory,
    "sampling": {
      "batch": opts.sample_batch,
      "z_source": "prior",
      "device": str(device),
      "runs": sampling_runs,
      "step_cost": step_cost,
    },
    "profile": profile,
  }


def format_table(result: dict[str, Any]) -> str:
  """A short human-readable table of a benchmark result."""
  c, t, m = result["config"], result["train"], result["mfu"]
  rows = [
    ("config", f"{c['name']} ({c['model_size']}, {c['dtype']}, remat={c['remat']})"),
    (
      "device",
      f"{result['environment']['device_kind']} x{result['environment']['device_count']}"
      f" (load {result['environment']['loadavg_start'][0]:.1f})",
    ),
    ("batch (global / per device)", f"{c['global_batch']} / {c['per_device_batch']}"),
    (
      "lower / compile",
      f"{result['compile']['lower_s']:.2f} s / {result['compile']['compile_s']:.2f} s",
    ),
    (
      "train step",
      f"{1e3 * t['median_step_s']:.1f} ms ({t['steps_per_s']:.2f} steps/s, "
      f"{t['images_per_s']:.1f} images/s)",
    ),
    ("GFLOP / step", f"{result['flops']['per_step'] / 1e9:.2f}"),
    (
      "MFU",
      f"{100 * m['mfu_primary']:.2f} % vs {m['primary']} peak of {m['peak_device']}"
      if "mfu_primary" in m
      else m["note"],
    ),
    (
      "peak memory",
      f"{result['memory']['peak_bytes'] / 2**20:.0f} MiB "
      f"({result['memory']['source'].split(' (')[0]})",
    ),
  ]
  for run in result["sampling"]["runs"]:
    label = "extrapolated" if run["extrapolated"] else f"compile {run['compile_s']:.1f} s"
    rows.append(
      (
        f"sample n={run['n_steps']} (B={result['sampling']['batch']})",
        f"{run['median_s']:.2f} s ({label})",
      )
    )
  cost = result["sampling"].get("step_cost")
  if cost:
    rows.append(
      (
        f"sample step (B={result['sampling']['batch']})",
        f"{cost['step_ms']:.1f} ms = forward {cost['forward_ms']:.1f} + flow math "
        f"{cost['flow_ms']:.1f} ({100 * cost['flow_share']:.1f} %) + {cost['overhead_ms']:.1f}; "
        f"host transfers {len(cost['host_transfers_in_sampler'])}, "
        f"recompiles {cost['compiles_on_a_second_call']}",
      )
    )
    if "profile_share_by_scope" in cost:
      shares = cost["profile_share_by_scope"].items()
      rows.append(("sample step profile", ", ".join(f"{k} {100 * v:.1f} %" for k, v in shares)))
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _child_args(out: str) -> list[str]:
  """The command line of this benchmark for one device count, without scaling and sampling."""
  flag = flags.FLAGS["config"]
  args = [f"--config={config_flags.get_config_filename(flag)}"]
  args += [f"--config.{k}={v}" for k, v in config_flags.get_override_values(flag).items()]
  for name in ("repeats", "warmup", "steps_per_repeat", "check_steps", "cpu_peak_size"):
    args.append(f"--{name}={flags.FLAGS[name].value}")
  return [*args, "--sample_steps=", f"--out={out}"]


def scaling(counts: list[int]) -> dict[str, Any]:
  """Benchmarks with N simulated CPU devices for each N in `counts` (one subprocess each).

  The global batch stays the configured one; the losses of the first --check_steps steps from the
  same init and batch must equal those of counts[0] to rtol LOSS_RTOL ('consistent'). Uses the
  command-line flags of this process (config, overrides, repeats) for every subprocess.

  Raises:
    ValueError: a subprocess failed.
  """
  runs = {}
  with tempfile.TemporaryDirectory() as tmp:
    for n in counts:
      out = os.path.join(tmp, f"devices{n}.json")
      env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} "
        f"--xla_force_host_platform_device_count={n}".strip(),
      }
      child = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", *_child_args(out)], env=env, cwd=ROOT
      )
      if child.returncode:
        raise ValueError(f"the benchmark on {n} devices failed (exit status {child.returncode}).")
      with open(out) as f:
        runs[n] = json.load(f)
  reference = np.asarray(runs[counts[0]]["train"]["check_losses"])
  rows = []
  for n, run in runs.items():
    losses = np.asarray(run["train"]["check_losses"])
    rows.append(
      {
        "devices": n,
        "per_device_batch": run["config"]["per_device_batch"],
        "steps_per_s": run["train"]["steps_per_s"],
        "images_per_s": run["train"]["images_per_s"],
        "compile_s": run["compile"]["compile_s"],
        "check_losses": losses.tolist(),
        "max_rel_loss_diff": float(np.max(np.abs(losses - reference) / np.abs(reference))),
      }
    )
  consistent = all(r["max_rel_loss_diff"] <= LOSS_RTOL for r in rows)
  return {
    "scaling": rows,
    "consistent": consistent,
    "loss_rtol": LOSS_RTOL,
    "reference_devices": counts[0],
    "runs": {str(n): r for n, r in runs.items()},
  }


def _ints(name: str, values: list[str]) -> tuple[int, ...]:
  try:
    return tuple(int(v) for v in values if v.strip())
  except ValueError as e:
    raise ValueError(f"--{name} must be a comma-separated list of integers, got {values}.") from e


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    counts = _ints("devices", _DEVICES.value)
    if any(n < 1 for n in counts):
      raise ValueError(f"--devices must hold integers >= 1, got {counts}.")
    opts = Options(
      sample_steps=_ints("sample_steps", _SAMPLE_STEPS.value),
      sample_extrapolate=_ints("sample_extrapolate", _SAMPLE_EXTRAPOLATE.value),
      sample_batch=_SAMPLE_BATCH.value,
      sample_repeats=_SAMPLE_REPEATS.value,
      sample_budget_s=_SAMPLE_BUDGET.value,
      repeats=_REPEATS.value,
      warmup=_WARMUP.value,
      steps_per_repeat=_STEPS_PER_REPEAT.value,
      check_steps=_CHECK_STEPS.value,
      cpu_peak_size=_CPU_PEAK_SIZE.value,
      profile_dir=_PROFILE_DIR.value,
      sampler_cost=_SAMPLER_COST.value,
    )
    if counts:
      result = scaling(list(counts))
    else:
      name = config_flags.get_config_filename(flags.FLAGS["config"])
      result = benchmark(_CONFIG.value, opts, config_name=name)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  if not counts and jax.process_index() != 0:
    return  # in a multi-host run, process 0 writes the results
  os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(result, f, indent=1)
  if counts:
    for row in result["scaling"]:
      print(
        f"devices={row['devices']}  per-device batch={row['per_device_batch']}  "
        f"{row['steps_per_s']:.2f} steps/s  max rel loss diff={row['max_rel_loss_diff']:.1e}"
      )
    if not result["consistent"]:
      print(
        f"error: losses differ from {counts[0]} device(s) by more than rtol={LOSS_RTOL}",
        file=sys.stderr,
      )
      sys.exit(1)
  else:
    print(format_table(result))


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
