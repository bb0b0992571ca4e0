"""`model.encoder_input`: one choice of what the self-encoder reads, followed by every consumer."""

import functools
import json
import os
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from sampling_testlib import DATA_SHAPE, TinyNet, data_batch, flow_of, tiny_model

from paramrel_jax.config import configuration, network
from paramrel_jax.evaluation import latents
from paramrel_jax.methods import paramrel
from paramrel_jax.methods.paramrel import objective, sampling
from paramrel_jax.methods.paramrel import reverse_sampling as rs
from paramrel_jax.training import workdir_utils

MODES = network.ENCODER_INPUTS
SENTINEL = 0.375  # what the patched shared function hands to the encoder


class SpyNet(TinyNet):
  """TinyNet that records every array its encoder receives (a callback runs under jit and scan)."""

  received: ClassVar[list[np.ndarray]] = []

  def encode(self, net_in, t, *, train):
    jax.debug.callback(lambda a: SpyNet.received.append(np.asarray(a)), net_in)
    return super().encode(net_in, t, train=train)


@pytest.fixture
def fresh_jit_caches():
  """Compiled consumers must trace the (patched) encoder input anew, and not leak to other tests."""
  jax.clear_caches()
  yield
  jax.clear_caches()


def _consumers(flow, net, params, x):
  """Runs every use of the encoder once on x: name -> a thunk."""
  key = jax.random.key(3, impl="rbg")  # RngBitGenerator: much faster to compile than threefry
  model = paramrel.ParamReL(flow, net, objective.ObjectiveConfig())
  batch = {"image": x}
  return {
    "training": lambda: model.loss(params, key, batch, key),
    "diagnostics": lambda: model.diagnostics(params, key, batch),
    "likelihood": lambda: model.likelihood_terms(params, key, x, loss_steps=0),
    "latent_export": lambda: latents.encode(model, params, key, x, t=1.0),
    # Reverse-sampling codes (Eq. 5): also the z of interpolation and traversal.
    "reverse_sampling": lambda: rs.encode(key, flow, net, params, x, n_steps=3),
    "conditional": lambda: rs.conditional_sample(
      key, flow, net, params, x, num_variations=2, n_steps=3
    ),
    "time_varying": lambda: rs.time_varying_reconstruction(
      key, flow, net, params, x, jnp.array([0.2, 0.5]), n_steps=3
    ),
  }


def _spy_model(flow, mode):
  net, params = tiny_model(flow, net_cls=functools.partial(SpyNet, encoder_input=mode))
  SpyNet.received.clear()
  return net, params


@pytest.mark.parametrize("mode", MODES)
def test_every_consumer_feeds_the_encoder_through_the_shared_function(
  mode, monkeypatch, fresh_jit_caches
):
  """With the shared function patched to a sentinel, the encoder sees only the sentinel, and the
  function is asked for the configured mode: a consumer that builds its own input fails here."""
  flow = flow_of("binary")
  real = objective.encoder_input
  modes_asked = []

  def patched(flow, mode, key, x, t, theta_t=None):
    modes_asked.append(mode)
    return jnp.full_like(real(flow, mode, key, x, t, theta_t), SENTINEL)

  monkeypatch.setattr(objective, "encoder_input", patched)
  net, params = _spy_model(flow, mode)
  x = data_batch(flow)
  for name, run in _consumers(flow, net, params, x).items():
    SpyNet.received.clear()
    jax.block_until_ready(run())
    jax.effects_barrier()
    assert SpyNet.received, f"{name} never ran the encoder"
    for seen in SpyNet.received:
      np.testing.assert_array_equal(seen, SENTINEL, err_msg=f"{name} bypassed encoder_input")
  assert set(modes_asked) == {mode}
  SpyNet.received.clear()
  generate = functools.partial(
    sampling.sample,
    jax.random.key(0),
    flow,
    net,
    params,
    data_shape=DATA_SHAPE,
    n_steps=3,
    z_source="encoder",
  )
  if mode == "theta_t":  # generation from the prior: the encoder reads theta_{i-1}
    jax.block_until_ready(generate())
    jax.effects_barrier()
    assert SpyNet.received
    for seen in SpyNet.received:
      np.testing.assert_array_equal(seen, SENTINEL)
  else:  # there is no data to encode
    with pytest.raises(ValueError, match="theta_t"):
      generate()


def test_data_encoder_sees_the_same_array_in_training_and_every_use(fresh_jit_caches):
  flow = flow_of("categorical")  # K = 3: the classes folded into the channels
  net, params = _spy_model(flow, "data")
  x = data_batch(flow)
  expected = np.asarray(flow.data_input(x))
  for name, run in _consumers(flow, net, params, x).items():
    SpyNet.received.clear()
    jax.block_until_ready(run())
    jax.effects_barrier()
    assert SpyNet.received, name
    # Conditional generation encodes each input for each of its 2 samples, at every step.
    wanted = np.repeat(expected, 2, axis=0) if name == "conditional" else expected
    for seen in SpyNet.received:  # the others see x0 itself, in batch order
      np.testing.assert_array_equal(seen, wanted, err_msg=name)


@pytest.mark.parametrize("case", ["binary", "categorical", "continuous"])
def test_encoder_input_values(case):
  flow = flow_of(case)
  x = data_batch(flow)
  key = jax.random.key(5)
  t = jnp.array([0.2, 0.7])
  theta_t = flow.sample_flow(jax.random.key(6), x, t)

  def run(mode, **kwargs):
    return objective.encoder_input(flow, mode, key, x, t, **kwargs)

  np.testing.assert_array_equal(run("data"), flow.data_input(x))
  np.testing.assert_array_equal(run("data", theta_t=theta_t), flow.data_input(x))
  theta_1 = flow.sample_flow(key, x, jnp.ones_like(t))
  np.testing.assert_array_equal(run("final_params"), flow.net_input(theta_1))
  np.testing.assert_array_equal(run("final_params", theta_t=theta_t), flow.net_input(theta_1))
  np.testing.assert_array_equal(run("theta_t", theta_t=theta_t), flow.net_input(theta_t))
  np.testing.assert_array_equal(run("theta_t"), flow.net_input(flow.sample_flow(key, x, t)))
  with pytest.raises(ValueError, match=r"model\.encoder_input.*'data', 'final_params', 'theta_t'"):
    run("pixels")
  for mode in ("data", "final_params"):
    with pytest.raises(
      ValueError,
      match=rf"^model\.encoder_input='{mode}' encodes the data, but there is none here \(e\.g\. "
      r"sampling\.z_source='encoder' while generating\); use 'theta_t'\.$",
    ):
      objective.encoder_input(flow, mode, key, None, t, theta_t)


def test_config_default_validation_and_generation_check():
  assert configuration.resolve(tiny_config()).network.encoder_input == "data"
  for mode in MODES:
    resolved = configuration.resolve(tiny_config(**{"model.encoder_input": mode}))
    assert resolved.network.encoder_input == mode
  with pytest.raises(ValueError, match=r"model\.encoder_input must be one of \('data', "):
    configuration.resolve(tiny_config(**{"model.encoder_input": "theta"}))
  with pytest.raises(ValueError, match="z_source='encoder' needs model.encoder_input='theta_t'"):
    configuration.resolve(tiny_config(**{"sampling.z_source": "encoder"}))
  configuration.resolve(
    tiny_config(**{"sampling.z_source": "encoder", "model.encoder_input": "theta_t"})
  )


@pytest.mark.parametrize(
  "name", ["default", "bmnist", "bfashionmnist", "cifar10", "celeba", "shapes3d"]
)
def test_every_dataset_config_defaults_to_the_data(name):
  import importlib

  config = importlib.import_module(f"paramrel_jax.configs.{name}").get_config()
  assert config.model.encoder_input == "data"


LEGACY = {k: v for k, v in workdir_utils.RUN_SETTINGS.items() if v is not None}


def _save_config(workdir, config, as_legacy=False):
  """Saves config.json; as_legacy: as a run written before any key of RUN_SETTINGS existed."""
  os.makedirs(workdir, exist_ok=True)
  saved = json.loads(config.to_json_best_effort())
  if as_legacy:
    for dotted in LEGACY:
      section, key = dotted.split(".")
      del saved[section][key]
  with open(os.path.join(workdir, workdir_utils.CONFIG_FILE), "w") as f:
    json.dump(saved, f)


def test_runs_saved_before_the_key_load_with_theta_t(tmp_path):
  legacy = str(tmp_path / "legacy")
  _save_config(legacy, tiny_config(**{"flow.beta1": 3.0}), as_legacy=True)
  assert workdir_utils.saved_run_settings(legacy) == {**LEGACY, "flow.beta1": 3.0}
  assert LEGACY["model.encoder_input"] == "theta_t" and LEGACY["model.latent_map"] is False
  config = tiny_config()
  loaded = workdir_utils.with_run_settings(config, legacy)
  resolved = configuration.resolve(loaded)
  assert resolved.network.encoder_input == "theta_t"
  assert resolved.flow.beta1 == 3.0
  assert config.model.encoder_input == "data" and config.flow.beta1 == 9.0  # left alone
  # Once the run's config is saved again, the choice is explicit and is kept.
  workdir_utils.prepare_workdir(legacy, loaded)
  assert workdir_utils.with_run_settings(config, legacy).model.encoder_input == "theta_t"


def test_saved_run_settings_of_new_runs_baselines_and_empty_dirs(tmp_path):
  config = tiny_config(**{"model.encoder_input": "final_params"})
  run = str(tmp_path / "run")
  workdir_utils.prepare_workdir(run, config)
  assert workdir_utils.saved_run_settings(run)["model.encoder_input"] == "final_params"
  assert workdir_utils.with_run_settings(config, run) is config
  assert workdir_utils.with_run_settings(tiny_config(), run).model.encoder_input == ("final_params")
  continuous = str(tmp_path / "continuous")
  _save_config(continuous, tiny_config("discretised", **{"flow.beta1": 3.0}))
  saved = workdir_utils.saved_run_settings(continuous)
  assert "flow.beta1" not in saved and saved["model.encoder_input"] == "data"
  baseline = str(tmp_path / "ae")
  _save_config(baseline, tiny_config(**{"model.kind": "ae"}), as_legacy=True)
  assert workdir_utils.saved_run_settings(baseline) == {}
  empty = str(tmp_path / "empty")
  assert workdir_utils.with_run_settings(config, empty) is config
