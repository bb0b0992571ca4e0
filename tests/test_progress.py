"""What a run shows on stderr while it works: the training bar's ETA, bars over batches of images,
and the start and end lines around work that reports no progress (a compile, a jitted sampler)."""

import re

import pytest

from paramrel_jax.training import logging_utils


def test_stage_names_the_work_and_its_time(capsys):
  with logging_utils.stage("compiling the train step"):
    pass
  out, err = capsys.readouterr()
  assert out == ""
  lines = err.splitlines()
  assert lines[0] == "compiling the train step ..."
  assert re.fullmatch(r"compiling the train step: done in \d+\.\d s", lines[1]), lines
  assert len(lines) == 2


def test_stage_is_silent_off_process_0_and_has_no_end_line_on_error(capsys):
  with logging_utils.stage("sampling", enabled=False):
    pass
  assert capsys.readouterr() == ("", "")
  with pytest.raises(RuntimeError), logging_utils.stage("sampling"):
    raise RuntimeError("boom")
  assert capsys.readouterr().err.splitlines() == ["sampling ..."]


def test_training_bar_shows_the_remaining_time(capsys):
  bar = logging_utils.ProgressBar(10, 100)  # resumed at step 10
  for step in range(11, 21):
    bar.advance(step)
  bar.update(20, {"loss": 1.5, "steps_per_sec": 3.0})
  bar.close()
  last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
  # tqdm's default format: steps done, elapsed < remaining (the ETA), the rate, the postfix.
  assert re.search(r"20/100 \[\d\d:\d\d<\d\d:\d\d", last), last
  assert "loss=1.5" in last


def test_image_bar_counts_images(capsys):
  with logging_utils.image_bar(10, "reconstructing") as bar:
    bar.update(4)
    bar.update(6)
  last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
  assert last.startswith("reconstructing: 100%|") and "10/10" in last and "image/s" in last
  with logging_utils.image_bar(10, "reconstructing", enabled=False) as bar:
    bar.update(10)
  assert capsys.readouterr().err == ""
