"""Training: smoke steps per data type, loss decrease, exact resume, multi-device equality."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, tiny_config, xla_flags

from paramrel_jax import data as pipeline
from paramrel_jax.config import configuration
from paramrel_jax.methods import paramrel
from paramrel_jax.methods.paramrel import objective
from paramrel_jax.training import checkpointing, train


def _leaves_close(a, b, **kw):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


@pytest.mark.parametrize("data_type", ["discrete", "continuous", "discretised"])
def test_smoke_training_writes_metrics_and_checkpoints(tmp_path, data_type):
  cfg = configuration.resolve(tiny_config(data_type))
  state = train.train_and_evaluate(cfg, str(tmp_path))
  assert int(state.step) == cfg.training.num_steps
  lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [x["step"] for x in lines] == [2, 4]
  for term in ("loss", "bfn", "rate", "mmd", "grad_norm", "z_shuffle_gap", "active_dims"):
    assert all(np.isfinite(x[term]) for x in lines), term
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
  assert os.listdir(tmp_path / "tensorboard")  # event files
  # The EMA moved away from the initial parameters but not as far as the parameters.
  assert not all(
    np.allclose(a, b)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(state.ema_params), strict=True)
  )


def test_loss_decreases_on_generated_data():
  cfg = configuration.resolve(
    tiny_config(
      "discrete",
      **{
        "training.learning_rate": 3e-3,
        "training.warmup_steps": 5,
        "training.num_steps": 60,
        "model.latent_dim": 4,
      },
    )
  )
  exp = train.build_experiment(cfg, 1)
  mesh = train.make_mesh()
  info = pipeline.dataset_info(cfg.data)
  shape = (16, *info.image_shape)
  steps = train.compile_steps(exp, mesh, shape)
  it = pipeline.create_train_iterator(cfg.data, batch_size=16, seed=0)
  eval_batch = jnp.asarray(
    next(pipeline.create_eval_iterator(cfg.data, split=cfg.data.eval_split, batch_size=16))["image"]
  )

  @jax.jit
  def eval_loss(params):  # the same 32 noise draws every time: a fair comparison
    encode, decode = paramrel.net_fns(exp.model.net, params)

    def one(key):
      terms, _ = objective.paramrel_loss(
        key,
        eval_batch,
        flow=exp.model.flow,
        encode=encode,
        decode=decode,
        cfg=exp.model.objective,
        encoder_input_mode=exp.model.net.encoder_input,
      )
      return terms.bfn.mean()

    return jax.vmap(one)(jax.random.split(jax.random.key(1), 32)).mean()

  state = steps.init(jax.random.key(0))
  before = float(eval_loss(state.params))
  for _ in range(60):
    batch = {"image": jnp.asarray(next(it)["image"])}
    state, _ = steps.train(state, batch)
  after = float(eval_loss(state.params))
  assert after < 0.8 * before, (before, after)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
  overrides = {"training.num_steps": 6, "training.checkpoint_every": 3, "training.log_every": 3}
  full = train.train_and_evaluate(
    configuration.resolve(tiny_config("discrete", **overrides)), str(tmp_path / "full")
  )
  part = tmp_path / "part"
  train.train_and_evaluate(
    configuration.resolve(tiny_config("discrete", **{**overrides, "training.num_steps": 3})),
    str(part),
  )
  resumed = train.train_and_evaluate(
    configuration.resolve(tiny_config("discrete", **overrides)), str(part)
  )
  assert int(resumed.step) == 6
  _leaves_close(full.params, resumed.params, rtol=1e-6, atol=1e-7)
  _leaves_close(full.ema_params, resumed.ema_params, rtol=1e-6, atol=1e-7)
  _leaves_close(full.opt_state, resumed.opt_state, rtol=1e-6, atol=1e-7)
  # A finished run does not train again.
  again = train.train_and_evaluate(
    configuration.resolve(tiny_config("discrete", **overrides)), str(part)
  )
  assert int(again.step) == 6
  steps = [json.loads(x)["step"] for x in (part / "metrics.jsonl").read_text().splitlines()]
  assert steps == [3, 6]


def test_non_finite_run_stops_and_keeps_good_checkpoint(tmp_path):
  cfg = configuration.resolve(
    tiny_config(
      "continuous",
      **{
        "training.learning_rate": 1e30,
        "training.grad_clip": 0.0,
        "training.warmup_steps": 0,
        "training.num_steps": 40,
        "training.checkpoint_every": 1,
        "training.log_every": 1,
        "training.weight_decay": 0.0,
      },
    )
  )
  with pytest.raises(train.NonFiniteError, match=r"non-finite at step \d+"):
    train.train_and_evaluate(cfg, str(tmp_path))
  saved = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints"))
  exp = train.build_experiment(cfg, 3)
  steps = train.compile_steps(exp, train.make_mesh(), (8, 16, 16, 3))
  restored = checkpointing.restore_params(str(tmp_path), steps.init(jax.random.key(0)))
  assert int(restored.step) == saved[-1]
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored.params))


_MULTI_DEVICE_SCRIPT = r"""
import sys, jax, jax.numpy as jnp, numpy as np
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from conftest import tiny_config
from paramrel_jax.config import configuration
from paramrel_jax.training import train
from paramrel_jax import data as pipeline
cfg = configuration.resolve(tiny_config("continuous"))
exp = train.build_experiment(cfg, 3)
mesh = train.make_mesh()
steps = train.compile_steps(exp, mesh, (8, 16, 16, 3))
state = steps.init(jax.random.key(0))
it = pipeline.create_train_iterator(cfg.data, batch_size=8, seed=0)
losses = []
for _ in range(3):
  batch = pipeline.make_global_batch(next(it), mesh, axis="data")
  state, metrics = steps.train(state, batch)
  losses.append(float(metrics["loss"]))
flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(state.params)])
np.savez({out!r}, losses=np.array(losses), params=flat, devices=jax.device_count())
"""


def _run_on_devices(tmp_path, n):
  out = str(tmp_path / f"devices{n}.npz")
  env = {
    **os.environ,
    "XLA_FLAGS": xla_flags(f"--xla_force_host_platform_device_count={n}"),
    "JAX_PLATFORMS": "cpu",
  }
  script = _MULTI_DEVICE_SCRIPT.format(root=ROOT, tests=os.path.join(ROOT, "tests"), out=out)
  subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=ROOT)
  return np.load(out)


def test_eight_devices_match_one_device(tmp_path):
  one, eight = _run_on_devices(tmp_path, 1), _run_on_devices(tmp_path, 8)
  assert int(one["devices"]) == 1 and int(eight["devices"]) == 8
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
  np.testing.assert_allclose(eight["params"], one["params"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
  "saved, now",
  [
    # a grain state (e.g. of a run older than the in-memory loader) under today's 'auto' with a
    # worker, and an in-memory state under a config that now asks for grain
    (
      {"data.loader": "grain", "data.num_workers": 0},
      {"data.loader": "auto", "data.num_workers": 1},
    ),
    ({"data.loader": "memory"}, {"data.loader": "grain"}),
  ],
)
def test_a_run_resumes_with_its_own_data_loader(tmp_path, saved, now):
  """A run resumes reading as it started, whatever the config now says about the loader."""
  overrides = {
    "training.num_steps": 4,
    "training.checkpoint_every": 2,
    "training.log_every": 2,
    **saved,
  }
  full = train.train_and_evaluate(
    configuration.resolve(tiny_config("discrete", **overrides)), str(tmp_path / "full")
  )
  part = str(tmp_path / "part")
  train.train_and_evaluate(
    configuration.resolve(tiny_config("discrete", **{**overrides, "training.num_steps": 2})), part
  )
  resumed = train.train_and_evaluate(
    configuration.resolve(tiny_config("discrete", **{**overrides, **now})), part
  )
  assert int(resumed.step) == 4
  _leaves_close(full.params, resumed.params, rtol=1e-6, atol=1e-7)


def test_config_for_state_reads_the_loader_and_rejects_other_bytes():
  cfg = pipeline.DataConfig(name="shapes2d", image_size=16, num_examples=128, num_workers=0)
  now = dataclasses.replace(cfg, loader="auto", num_workers=2)
  for loader, workers in [("grain", 0), ("memory", 2)]:
    state = pipeline.create_train_iterator(
      dataclasses.replace(cfg, loader=loader), batch_size=8, seed=0
    ).get_state()
    resumed = pipeline.config_for_state(now, state)
    assert (resumed.loader, resumed.num_workers) == (loader, workers)
  for bad in [b"not json", b"[1, 2]", b"{}"]:
    with pytest.raises(ValueError, match="not a data-loader state"):
      pipeline.config_for_state(cfg, bad)
