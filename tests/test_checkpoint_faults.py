"""Faults in checkpoint writes (tests/checkpoint_faults.py): a kill in the middle of a write and a
full disk. Either way the last complete checkpoint stays readable, and rerunning the same command
resumes from it with the losses of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import child_patches
import pytest
from conftest import ROOT

pytestmark = pytest.mark.xdist_group("checkpoint_faults")  # one worker: the reference trains once

ARGS = [
  "--config=configs/default.py:smoke",
  "--config.training.num_steps=6",
  "--config.training.checkpoint_every=2",
  "--config.training.log_every=1",
  "--config.sampling.after_training=False",  # checkpoints are what these runs are about
]


def _command(workdir: str) -> list[str]:
  return [sys.executable, "-m", "paramrel_jax.main", *ARGS, f"--workdir={workdir}"]


def _env(fault: dict | None = None) -> dict:
  return {**os.environ, "JAX_PLATFORMS": "cpu", **(fault or {})}


def _run(workdir: str, fault: dict | None = None) -> subprocess.CompletedProcess:
  return subprocess.run(
    _command(workdir), cwd=ROOT, env=_env(fault), capture_output=True, text=True, timeout=600
  )


def _fault(tmp_path, mode: str, marker: str) -> dict:
  """The environment of a child whose writes fail (`mode`) from checkpoint 4 on."""
  return child_patches.sitecustomize_env(
    tmp_path / "site", "checkpoint_faults", f"install({mode!r}, 4, {marker!r})"
  )


def _losses(workdir: str) -> dict[int, float]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return {row["step"]: row["loss"] for row in map(json.loads, f)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, float]:
  workdir = str(tmp_path_factory.mktemp("reference") / "run")
  assert _run(workdir).returncode == 0
  return _losses(workdir)


def _assert_resumes_exactly(workdir: str, reference: dict[int, float]) -> None:
  result = _run(workdir)
  assert result.returncode == 0, result.stderr
  losses = _losses(workdir)
  assert sorted(losses) == list(range(1, 7))
  for step in range(3, 7):  # every step after checkpoint 2, the last complete one
    assert losses[step] == reference[step], (step, losses[step], reference[step])
  assert "4" in os.listdir(os.path.join(workdir, "checkpoints"))


def test_a_full_disk_stops_with_one_line_and_the_rerun_resumes(tmp_path, reference):
  workdir, marker = str(tmp_path / "run"), str(tmp_path / "marker")
  fault = _fault(tmp_path, "enospc", marker)
  result = _run(workdir, fault)
  assert result.returncode != 0 and os.path.exists(marker)
  assert "Traceback" not in result.stderr, result.stderr
  errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
  assert len(errors) == 1, result.stderr
  assert "could not write a checkpoint" in errors[0] and "No space left on device" in errors[0]
  assert "the last complete checkpoint, step 2, is kept" in errors[0]
  _assert_resumes_exactly(workdir, reference)


def test_a_kill_in_the_middle_of_a_write_resumes_from_the_last_complete_one(tmp_path, reference):
  workdir, marker = str(tmp_path / "run"), str(tmp_path / "marker")
  fault = _fault(tmp_path, "hang", marker)
  proc = subprocess.Popen(
    _command(workdir),
    cwd=ROOT,
    env=_env(fault),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  deadline = time.monotonic() + 600
  while not os.path.exists(marker) and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
  in_write = proc.poll() is None and os.path.exists(marker)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert in_write, "the run ended before its checkpoint write could be interrupted"
  # Checkpoint 4's write was cut: only its temporary directory is there, never a step 4.
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  assert "2" in names and "4" not in names and any(n.startswith("4.") for n in names), names
  _assert_resumes_exactly(workdir, reference)
