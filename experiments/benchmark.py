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

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from paramrel_jax.perf.benchmark import LOSS_RTOL, Options, benchmark, format_table

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
