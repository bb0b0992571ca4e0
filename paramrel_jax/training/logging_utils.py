"""Scalar logging: JSON lines (`workdir/metrics.jsonl`), TensorBoard events, the logged curves as
a PNG (`workdir/curves.png`), and what the user sees on stderr while it runs: the training bar,
bars over batches of images, and a start and an end line around work without progress."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator

import numpy as np
import tqdm
from tensorboardX import SummaryWriter

from paramrel_jax.viz import plots

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


class MetricWriter:
  """Appends one JSON object per logged step and writes the same scalars as TensorBoard events.

  Only process 0 of a multi-host run writes (`enabled`).
  """

  def __init__(self, workdir: str, *, enabled: bool = True, prefix: str = ""):
    self._enabled = enabled
    self._prefix = prefix
    if enabled:
      self._jsonl = open(os.path.join(workdir, METRICS_FILE), "a")
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
  """A tqdm bar over training steps: advanced every step (its rate and ETA are live), with the
  loss and the logged steps/s of the last logging window."""

  def __init__(self, start: int, total: int, *, enabled: bool = True):
    self._bar = tqdm.tqdm(
      initial=start,
      total=total,
      disable=not enabled,
      unit="step",
      dynamic_ncols=True,
      mininterval=1.0,
    )
    self._last = start

  def advance(self, step: int) -> None:
    """Marks the steps up to `step` done."""
    self._bar.update(step - self._last)
    self._last = step

  def update(self, step: int, scalars: dict[str, float]) -> None:
    self.advance(step)
    self._bar.set_postfix(
      loss=f"{scalars['loss']:.4g}", steps_per_sec=f"{scalars.get('steps_per_sec', 0.0):.2f}"
    )

  def close(self) -> None:
    self._bar.close()


@contextlib.contextmanager
def stage(description: str, *, enabled: bool = True) -> Iterator[None]:
  """Names work that reports no progress of its own (an XLA compile, one jitted sampling call):
  a line `description ...` on stderr before it and `description: done in S s` after (above any
  progress bar); no second line if it raises."""
  if not enabled:
    yield
    return
  tqdm.tqdm.write(f"{description} ...", file=sys.stderr)
  start = time.perf_counter()
  yield
  tqdm.tqdm.write(f"{description}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)


def image_bar(total: int, description: str, *, enabled: bool = True) -> tqdm.tqdm:
  """A tqdm bar over `total` images processed batch by batch, with its rate and ETA."""
  return tqdm.tqdm(
    total=total, desc=description, disable=not enabled, unit="image", dynamic_ncols=True
  )


def read_curves(workdir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Every scalar of workdir/metrics.jsonl against the step, name -> (steps, values).

  The file holds every run of the workdir (a resume appends), so the curves cover the whole
  training; a step logged again after a resume keeps its last value. Non-finite values are
  left out.

  Raises:
    ValueError: the file does not exist.
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.isfile(path):
    raise ValueError(f"no {METRICS_FILE} in {workdir}: train first (--mode=train).")
  rows = {}
  with open(path) as f:
    for line in f:
      if line.strip():
        row = json.loads(line)
        rows[row.pop("step")] = row
  curves: dict[str, tuple[list, list]] = {}
  for step in sorted(rows):
    for name, value in rows[step].items():
      if math.isfinite(value):
        steps, values = curves.setdefault(name, ([], []))
        steps.append(step)
        values.append(value)
  return {name: (np.asarray(s), np.asarray(v)) for name, (s, v) in curves.items()}


def save_curves(workdir: str) -> str:
  """Writes the curves of `read_curves` to workdir/curves.png, one panel per scalar, the loss
  first; returns its path."""
  path = os.path.join(workdir, CURVES_FILE)
  curves = read_curves(workdir)
  plots.save_curves(path, {"loss": curves.pop("loss"), **curves} if "loss" in curves else curves)
  return path
