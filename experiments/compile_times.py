r"""Start-up time of the CLI with and without the persistent compilation cache.

  python -m experiments.compile_times --out=experiments/results/benchmarks/compile_times.json

For each config it runs `python -m paramrel_jax.main` in fresh processes and times them (wall
clock, process start to exit):
  fresh    a new workdir, one train step (imports, data, init, compile, the step, a checkpoint);
  resume   the same workdir, on to step 2 (restore, compile, one step, a checkpoint);
  sample   `--mode=sample` on that run (restore, compile the sampler, generate).
Each of the three in sequence under three cache states: 'off' (compile_cache=off); 'cold' (the
cache directory is emptied before the fresh run, so that run compiles and writes; the resume
then finds the train step the fresh run wrote, and the sample run compiles and writes the
sampler); 'warm' (the cache the cold sequence filled, with a new workdir). off - warm is the
compile time the cache saves; fresh cold - fresh off is what writing costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
  "default": ["--config=configs/default.py"],
  "bmnist_mnist10k": [
    "--config=configs/bmnist.py",
    "--config.data.source=npz",
    f"--config.data.path={os.path.join(os.path.dirname(ROOT), 'shared', 'data', 'mnist10k.npz')}",
  ],
  "default_smoke": ["--config=configs/default.py:smoke"],
}
CACHE_STATES = ("off", "cold", "warm")
# Few samples and steps: the sampler's compile does not depend on them, its run time does.
SAMPLE_ARGS = ["--config.sampling.num_samples=8", "--config.sampling.num_steps=10"]


def _run(args: list[str], cache: str) -> float:
  env = {**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "true"}
  start = time.perf_counter()
  done = subprocess.run(
    [sys.executable, "-m", "paramrel_jax.main", *args, f"--config.compile_cache={cache}"],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
  )
  seconds = time.perf_counter() - start
  if done.returncode:
    raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
  return seconds


def measure(
  config_args: list[str], tmp: str, states: tuple[str, ...] = CACHE_STATES
) -> dict[str, dict[str, float]]:
  """{scenario: {cache state: seconds}} for one config and the cache `states`, in the order of
  CACHE_STATES ('warm' reuses the cache of 'cold'; see the module docstring)."""
  common = [*config_args, "--config.sampling.after_training=False"]
  times: dict[str, dict[str, float]] = {"fresh": {}, "resume": {}, "sample": {}}
  cache = os.path.join(tmp, "cache")
  for state in states:
    setting = "off" if state == "off" else cache
    if state == "cold":
      shutil.rmtree(cache, ignore_errors=True)
    workdir = os.path.join(tmp, f"run_{state}")
    times["fresh"][state] = _run(
      [*common, f"--workdir={workdir}", "--config.training.num_steps=1"], setting
    )
    times["resume"][state] = _run(
      [*common, f"--workdir={workdir}", "--config.training.num_steps=2"], setting
    )
    times["sample"][state] = _run(
      [*common, *SAMPLE_ARGS, f"--workdir={workdir}", "--mode=sample"], setting
    )
  return times


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--configs",
    nargs="+",
    choices=list(CONFIGS),
    default=[name for name in CONFIGS if not name.endswith("_smoke")],
  )
  parser.add_argument("--states", nargs="+", choices=CACHE_STATES, default=list(CACHE_STATES))
  parser.add_argument("--out", required=True)
  args = parser.parse_args(argv)
  states = tuple(s for s in CACHE_STATES if s in args.states)
  result = {
    "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
    "loadavg_start": list(os.getloadavg()),
    "configs": {},
  }
  for name in args.configs:
    with tempfile.TemporaryDirectory() as tmp:
      result["configs"][name] = measure(CONFIGS[name], tmp, states)
    for scenario, row in result["configs"][name].items():
      print(f"{name:16s} {scenario:7s} " + "  ".join(f"{k} {v:6.1f} s" for k, v in row.items()))
  result["loadavg_end"] = list(os.getloadavg())
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
