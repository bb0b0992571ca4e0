"""Tests of the benchmark (paramrel_jax.perf, driven by experiments/benchmark.py): what it writes,
not how fast it is."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, tiny_config

from paramrel_jax.config import configuration
from paramrel_jax.perf import benchmark


@pytest.fixture(scope="module")
def bench():
  """The benchmark's library module."""
  return benchmark


def _positive_finite(value) -> bool:
  return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.parametrize(
  "data_type, shape", [("discrete", (4, 16, 16, 1)), ("discretised", (4, 8, 8, 3))]
)
def test_synthetic_batch_fits_the_flow(bench, data_type, shape):
  flow = configuration.resolve(tiny_config(data_type)).flow
  x = bench.synthetic_batch(flow, shape, seed=1)
  assert x.shape == shape
  assert x.dtype == (np.int32 if data_type == "discrete" else np.float32)
  assert len(np.unique(x)) > 1  # not a constant batch


def test_options_reject_bad_values(bench):
  with pytest.raises(ValueError, match="--repeats"):
    bench.Options(repeats=0)
  with pytest.raises(ValueError, match="--sample_extrapolate"):
    bench.Options(sample_steps=(), sample_extrapolate=(1000,))


# The smoke config at 16 x 16 in bfloat16 with remat: the options of the speed issue, end to end.
SMOKE_ARGS = (
  "--config=configs/default.py:smoke",
  "--config.data.image_size=16",
  "--config.model.dtype=bfloat16",
  "--config.model.remat=True",
  "--repeats=2",
  "--warmup=1",
  "--steps_per_repeat=1",
  "--check_steps=2",
  "--cpu_peak_size=128",
)


def _run_cli(tmp_path, name: str, *args: str) -> dict:
  """Runs the harness's command line (at the session's XLA optimisation level, conftest)."""
  out = tmp_path / f"{name}.json"
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  subprocess.run(
    [sys.executable, "-m", "experiments.benchmark", *SMOKE_ARGS, *args, f"--out={out}"],
    cwd=ROOT,
    env=env,
    check=True,
    capture_output=True,
  )
  return json.loads(out.read_text())


def _check_single_device(result: dict) -> None:
  config, env, train = result["config"], result["environment"], result["train"]
  assert config["image_shape"] == [16, 16, 1] and config["channels_from"] == "generated dataset"
  assert config["global_batch"] == config["per_device_batch"] == 8 and env["device_count"] == 1
  assert config["dtype"] == "bfloat16" and config["remat"] is True
  assert config["num_params"] > 1000
  for key in ("jax", "jaxlib", "flax", "device_kind", "loadavg_start", "loadavg_end"):
    assert env[key]
  measured = [
    result["compile"]["lower_s"],
    result["compile"]["compile_s"],
    train["median_step_s"],
    train["steps_per_s"],
    train["images_per_s"],
    result["flops"]["per_step"],
    result["mfu"]["achieved_flops_per_s"],
    result["mfu"]["mfu_primary"],
    result["memory"]["peak_bytes"],
    result["memory"]["compiled_step_bytes"]["temporaries"],
  ]
  assert all(_positive_finite(v) for v in measured), measured
  assert len(train["repeat_times_s"]) == 2 and len(train["check_losses"]) == 2
  assert all(math.isfinite(v) for v in train["check_losses"])
  # bfloat16 convolutions in the network, float32 at the flow math and the loss.
  assert train["requested_dtypes"]["convolution"]["bf16"] > 0
  assert train["loss_dtype"] == train["net_out_dtype"] == train["encoder_out_dtype"] == "float32"

  measured_run, extrapolated = result["sampling"]["runs"]
  assert (measured_run["n_steps"], measured_run["extrapolated"]) == (2, False)
  assert (extrapolated["n_steps"], extrapolated["extrapolated"]) == (10, True)
  assert _positive_finite(measured_run["compile_s"]) and _positive_finite(measured_run["median_s"])
  assert extrapolated["median_s"] == pytest.approx(5 * measured_run["median_s"])

  cost = result["sampling"]["step_cost"]
  assert _positive_finite(cost["forward_ms"]) and _positive_finite(cost["flow_ms"])
  assert cost["host_transfers_in_sampler"] == [] and cost["compiles_on_a_second_call"] == 0
  assert sum(cost["profile_share_by_scope"].values()) == pytest.approx(1.0, abs=1e-3)
  assert any(scope.startswith("decoder") for scope in cost["profile_share_by_scope"])

  profile = result["profile"]
  assert _positive_finite(profile["op_time_ms"])
  assert sum(profile["share_by_kind"].values()) == pytest.approx(1.0, abs=1e-3)
  assert "convolution" in profile["share_by_kind"]
  assert any(scope.startswith("decoder") for scope in profile["share_by_scope"])


def test_cli_measures_everything_and_two_devices_match_one(bench, tmp_path):
  single = _run_cli(
    tmp_path,
    "single",
    "--sample_steps=2",
    "--sample_extrapolate=10",
    "--sample_batch=2",
    f"--profile_dir={tmp_path / 'profile'}",
    "--sampler_cost",
  )
  _check_single_device(single)

  scaling = _run_cli(tmp_path, "scaling", "--devices=2")
  (row,) = scaling["scaling"]
  two = scaling["runs"]["2"]
  assert scaling["consistent"] is True
  assert (row["devices"], row["per_device_batch"]) == (2, 4)
  assert two["environment"]["device_count"] == 2 and _positive_finite(row["steps_per_s"])
  assert two["train"]["loss_dtype"] == "float32"
  np.testing.assert_allclose(
    row["check_losses"], single["train"]["check_losses"], rtol=bench.LOSS_RTOL
  )
