"""Peak FLOP/s of known accelerators, a measured CPU peak, XLA's cost analysis and the MFU."""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp

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


def mfu(
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
