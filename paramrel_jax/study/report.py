"""What a study's results are reported with: the spread over seeds and the machine."""

from __future__ import annotations

import os
import platform

import jax
import numpy as np


def spread(values: list[float]) -> dict[str, float]:
  """{'mean', 'std' (population, over the seeds), 'n'} of one column's values."""
  return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def hardware() -> str:
  """The machine results are measured on: CPU model, cores, JAX version and backend."""
  cpu = platform.processor() or platform.machine()
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = names[0] if names else cpu
  device = jax.devices()[0]
  return (
    f"{cpu}, {os.cpu_count()} CPU cores visible, JAX {jax.__version__} on "
    f"{jax.default_backend()} ({device.device_kind}, {jax.device_count()} device(s))"
  )
