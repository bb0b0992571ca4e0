"""The measurements of one configuration: compile time, throughput, memory, FLOPs, MFU, sampling.

`benchmark(config, Options(...))` returns them as a dict and `format_table` as text; the driver
is `python -m experiments.benchmark` (flags, device-count scaling; see its docstring).
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.metadata
import os
import platform
import resource
import statistics
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from paramrel_jax import data
from paramrel_jax.bfn.flows import Flow
from paramrel_jax.config import configuration
from paramrel_jax.data.generated import GENERATED
from paramrel_jax.methods.paramrel import sampler_cost
from paramrel_jax.perf import hlo
from paramrel_jax.perf.flops import first_cost, measure_matmul_flops, mfu
from paramrel_jax.training import train

LOSS_RTOL = 1e-5


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
  channels = 1 if cfg.flow.integer_data else 3
  return (size, size, channels), f"assumed from data type {cfg.flow.data_type!r}"


def synthetic_batch(flow: Flow, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
  """A random batch of images of `shape` (B, H, W, C) in the flow's data format.

  Discrete: int32 classes in [0, K); discretised: float32 bin centres; continuous: float32 in
  [-1, 1] (the conventions of the team brief). The batch passes `flow.validate_data`.
  """
  rng = np.random.default_rng(seed)
  if flow.integer_data:
    x = rng.integers(0, flow.num_classes, shape).astype(np.int32)
  elif flow.finite_values:
    k = rng.integers(0, flow.num_bins, shape)
    x = ((2 * k + 1) / flow.num_bins - 1).astype(np.float32)
  else:
    x = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
  flow.validate_data(x)
  return x


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


def _time_sampling(model, params, shape: tuple[int, ...], opts: Options) -> list[dict]:
  """Lowering, compile and run times of `sampling.sample` for each n of opts.sample_steps."""
  runs = []
  key = jax.random.key(1)
  for n in opts.sample_steps:
    start = time.perf_counter()
    lowered = sampler_cost.lower(model, params, shape, n, key)
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
    return sampler_cost.sample(model, params, shape, 10, seed)

  compiled = sampler_cost.lower(model, params, shape, 10, key).compile()
  run()
  result = {
    **sampler_cost.step_costs(model, params, shape),
    "host_transfers_in_sampler": sampler_cost.host_transfers(compiled.as_text()),
    "compiles_on_a_second_call": sampler_cost.compiles_while(lambda: run(2)),
  }
  if profile_dir:
    trace_dir = os.path.join(profile_dir, "sampler")
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      jax.block_until_ready(run(3))
    profile = hlo.summarize_trace(trace_dir, hlo.parse_hlo(compiled.as_text()))
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
  hlo_ops = hlo.parse_hlo(compiled.as_text())

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
    profile = hlo.summarize_trace(opts.profile_dir, hlo_ops)
    profile["step_wall_ms"] = 1e3 * timing["median_step_s"]

  # XLA's cost analysis describes the SPMD-partitioned program of one device.
  flops_device = float(cost.get("flops", 0.0))
  cpu_peak = None
  if device.platform == "cpu":
    cpu_peak = {"fp32": measure_matmul_flops(opts.cpu_peak_size)}
  dtypes = sampler_cost.network_dtypes(exp.model, state.params, data_shape)

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
      "requested_dtypes": hlo.lowered_dtypes(lowered.as_text()),
      "compiled_dtypes": hlo.hlo_dtypes(hlo_ops),
    },
    "flops": {
      "per_step_per_device": flops_device,
      "per_step": flops_device * n_devices,
      "bytes_accessed_per_step_per_device": float(cost.get("bytes accessed", 0.0)),
      "source": "XLA cost_analysis() of the compiled train step (counts remat recomputation)",
    },
    "mfu": mfu(
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
