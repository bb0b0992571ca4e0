r"""Input-pipeline benchmark: can the input pipeline of each dataset config feed the train step?

  python -m experiments.pipeline_benchmark --out=experiments/results/benchmarks/pipeline.json

For every dataset config it times the real training input path
(`paramrel_jax.data.throughput.measure`: reading, preprocessing, batching and the copy to the
device) at the config's batch size: with grain for every worker count of --workers, and with the
in-memory loader (`paramrel_jax.data.memory`; its first batch includes reading the whole split).
`loader_auto` says which of the two the config's `data.loader = 'auto'` picks. TFDS datasets run
under `tfds.testing.mock_data`, which serves random examples with the real features and native
image sizes (CelebA 218x178x3, Shapes3D 64x64x3) to the same code, workers included; array_record
reading and JPEG/PNG decoding are not part of it. npz and generated data are real.

Beside each rate it puts what the step consumes:
  * `cpu_train_images_per_s`: the train step on this CPU, from experiments/benchmark.py's results
    in experiments/results/benchmarks (the best float32 run of the same config; None where none);
  * `gpu_images_per_s_at_35_mfu`: the paper network's images/s on one H100/H200 at 35 % MFU, from
    the FLOPs of the lowered train step (XLA's cost analysis) and the dense bf16 and tf32 peaks.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import importlib
import json
import os
import platform

import jax
import jax.numpy as jnp
import tensorflow_datasets as tfds

from paramrel_jax import data
from paramrel_jax.config import configuration
from paramrel_jax.data import memory, sources, throughput
from paramrel_jax.data.config import auto_workers
from paramrel_jax.perf.flops import first_cost
from paramrel_jax.training import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST10K = os.path.join(os.path.dirname(ROOT), "shared", "data", "mnist10k.npz")
# name -> (config file in configs/, data overrides)
CASES = {
  "default (generated shapes2d)": ("default", {}),
  "bmnist (npz mnist10k)": ("bmnist", {"source": "npz", "path": MNIST10K}),
  "bmnist (TFDS mock)": ("bmnist", {}),
  "bfashionmnist (TFDS mock)": ("bfashionmnist", {}),
  "cifar10 (TFDS mock)": ("cifar10", {}),
  "celeba (TFDS mock)": ("celeba", {}),
  "shapes3d (TFDS mock)": ("shapes3d", {}),
}
MOCK_EXAMPLES = 10_000
# Dense peak FLOP/s of one H100 SXM / H200 (the same tensor cores).
GPU_PEAK = {"bf16": 989e12, "tf32": 494e12}
GPU_MFU = 0.35


def _config(name: str, overrides: dict) -> configuration.ExperimentConfig:
  config = importlib.import_module(f"paramrel_jax.configs.{name}").get_config()
  for key, value in overrides.items():
    config.data[key] = value
  return configuration.resolve(config)


def flops_per_image(cfg: configuration.ExperimentConfig, image_shape: tuple[int, ...]) -> float:
  """FLOPs of one train step per image, from XLA's cost analysis of the lowered step."""
  batch = cfg.training.batch_size
  exp = train.build_experiment(cfg, image_shape[-1])
  steps = train.compile_steps(exp, train.make_mesh(), (batch, *image_shape))
  state = jax.eval_shape(lambda: steps.init(jax.random.key(0)))
  dtype = jnp.float32 if cfg.data.binarize == "none" else jnp.int32
  images = jax.ShapeDtypeStruct((batch, *image_shape), dtype)
  return first_cost(steps.train.lower(state, {"image": images}).cost_analysis())["flops"] / batch


def cpu_train_rate(config_name: str) -> float | None:
  """The best float32 images/s of experiments/benchmark.py's results for configs/<name>.py."""
  rates = []
  for path in glob.glob(os.path.join(ROOT, "experiments", "results", "benchmarks", "*.json")):
    with open(path) as f:
      result = json.load(f)
    run = result.get("config", {})
    if run.get("name") == f"configs/{config_name}.py" and run.get("dtype") == "float32":
      rates.append(result["train"]["images_per_s"])
  return max(rates) if rates else None


def run_case(config_name: str, overrides: dict, workers: list[int], num_batches: int) -> dict:
  cfg = _config(config_name, overrides)
  mesh = train.make_mesh()
  rows = []
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE):
    image_shape = data.dataset_info(cfg.data).image_shape
    loader_auto = (
      "memory"
      if memory.fits(cfg.data, sources.open_split(cfg.data, cfg.data.train_split))
      else "grain"
    )
    settings = [dict(loader="grain", num_workers=count) for count in workers]
    for setting in [*settings, dict(loader="memory")]:
      rows.append(
        throughput.measure(
          dataclasses.replace(cfg.data, **setting),
          batch_size=cfg.training.batch_size,
          num_batches=num_batches,
          mesh=mesh,
        )
      )
  per_image = flops_per_image(cfg, image_shape)
  return {
    "config": f"configs/{config_name}.py",
    "source": cfg.data.source,
    "image_shape": list(image_shape),
    "batch_size": cfg.training.batch_size,
    "prefetch": cfg.data.prefetch,
    "loader_auto": loader_auto,
    "pipeline": rows,
    "cpu_train_images_per_s": cpu_train_rate(config_name),
    "train_gflop_per_image": per_image / 1e9,
    "gpu_images_per_s_at_35_mfu": {
      precision: GPU_MFU * peak / per_image for precision, peak in GPU_PEAK.items()
    },
  }


def table(result: dict) -> str:
  """The results as a Markdown table."""
  columns = [
    f"grain, {row['num_workers']} workers" if row["loader"] == "grain" else "in memory"
    for row in next(iter(result["cases"].values()))["pipeline"]
  ]
  head = [
    "data",
    "batch",
    *columns,
    "'auto'",
    "CPU train step",
    "H200 @35% bf16 / tf32",
  ]
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for name, case in result["cases"].items():
    cpu = case["cpu_train_images_per_s"]
    gpu = case["gpu_images_per_s_at_35_mfu"]
    cells = [
      name,
      str(case["batch_size"]),
      *[f"{row['images_per_s']:,.0f} ({row['first_batch_s']:.0f} s)" for row in case["pipeline"]],
      case["loader_auto"],
      "—" if cpu is None else f"{cpu:,.1f}",
      f"{gpu['bf16']:,.0f} / {gpu['tf32']:,.0f}",
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
  parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 4])
  parser.add_argument("--num_batches", type=int, default=20)
  parser.add_argument("--out", required=True)
  args = parser.parse_args(argv)
  result = {
    "machine": {
      "cpu_count": os.cpu_count(),
      "auto_workers": auto_workers(),
      "device": str(jax.devices()[0].device_kind),
      "python": platform.python_version(),
    },
    "loadavg_start": list(os.getloadavg()),
    "cases": {},
  }
  for name in args.cases:
    result["cases"][name] = run_case(*CASES[name], args.workers, args.num_batches)
    print(name, [round(row["images_per_s"]) for row in result["cases"][name]["pipeline"]])
  result["loadavg_end"] = list(os.getloadavg())
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  print(table(result))


if __name__ == "__main__":
  main()
