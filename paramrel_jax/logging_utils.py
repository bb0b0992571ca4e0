"""Scalar logging: JSON lines (`workdir/metrics.jsonl`), TensorBoard events, a progress bar."""

from __future__ import annotations

import json
import os

import tqdm
from tensorboardX import SummaryWriter


class MetricWriter:
  """Appends one JSON object per logged step and writes the same scalars as TensorBoard events.

  Only process 0 of a multi-host run writes (`enabled`).
  """

  def __init__(self, workdir: str, *, enabled: bool = True, prefix: str = ""):
    self._enabled = enabled
    self._prefix = prefix
    if enabled:
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
      self._tb = SummaryWriter(logdir=os.path.join(workdir, "tensorboard"))

  def write(self, step: int, scalars: dict[str, float]) -> None:
    if not self._enabled:
      return
    named = {f"{self._prefix}{k}": float(v) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({"step": int(step), **named}) + "\n")
    self._jsonl.flush()
    for name, value in named.items():
      self._tb.add_scalar(name, value, global_step=int(step))
    self._tb.flush()

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._tb.close()


class ProgressBar:
  """A tqdm bar over training steps showing steps/s and the loss."""

  def __init__(self, start: int, total: int, *, enabled: bool = True):
    self._bar = tqdm.tqdm(initial=start, total=total, disable=not enabled, unit="step",
                          dynamic_ncols=True, mininterval=1.0)
    self._last = start

  def update(self, step: int, scalars: dict[str, float]) -> None:
    self._bar.update(step - self._last)
    self._last = step
    self._bar.set_postfix(loss=f"{scalars['loss']:.4g}",
                          steps_per_sec=f"{scalars.get('steps_per_sec', 0.0):.2f}")

  def close(self) -> None:
    self._bar.close()
