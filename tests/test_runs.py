"""Opening a run directory (training/runs.py): the config it was trained with, and its model with
the EMA parameters of a checkpoint, read without building an optimiser."""

import json
import os

import jax
import numpy as np
import pytest
from conftest import tiny_config

from paramrel_jax.config import configuration
from paramrel_jax.training import checkpointing, runs, train, workdir_utils

pytestmark = pytest.mark.xdist_group("runs")  # one worker: the module fixture trains once

_RUN = {"training.num_steps": 2, "training.log_every": 2, "training.checkpoint_every": 1}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(config, resolved, workdir) of a 2-step run with checkpoints at steps 1 and 2."""
  workdir = str(tmp_path_factory.mktemp("run"))
  config = tiny_config("discrete", **_RUN)
  workdir_utils.prepare_workdir(workdir, config)
  resolved = configuration.resolve(config)
  train.train_and_evaluate(resolved, workdir)
  return config, resolved, workdir


def _full_state(resolved, workdir, step=None):
  """The whole TrainState of a checkpoint, as training restores it (optimiser state included)."""
  exp = train.build_experiment(resolved, 1)
  init = lambda key: train.init_state(key, exp, (1, 16, 16, 1))
  abstract = jax.eval_shape(init, jax.random.key(0))
  return checkpointing.restore_params(workdir, abstract, step=step)


@pytest.mark.parametrize("step", [None, 1])
def test_restore_reads_the_step_and_ema_params_of_the_checkpoint(run, step):
  _, resolved, workdir = run
  trained = runs.restore(resolved, workdir, step=step)
  full = _full_state(resolved, workdir, step)
  assert trained.step == int(full.step) == (step or 2)
  assert jax.tree.structure(trained.params) == jax.tree.structure(full.ema_params)
  for got, want in zip(
    jax.tree.leaves(trained.params), jax.tree.leaves(full.ema_params), strict=True
  ):
    np.testing.assert_array_equal(got, want)
  assert trained.workdir == workdir and trained.info.image_shape == (16, 16, 1)


def test_restore_builds_no_optimiser(run, monkeypatch):
  _, resolved, workdir = run

  def no_optimiser(*args, **kwargs):
    raise AssertionError("loading built an optimiser")

  monkeypatch.setattr(train, "make_optimizer", no_optimiser)
  monkeypatch.setattr(train, "init_state", no_optimiser)
  assert runs.restore(resolved, workdir).step == 2


def test_restore_refuses_the_checkpoint_of_another_model(run):
  config, _, workdir = run
  other = configuration.resolve(tiny_config("discrete", **_RUN, **{"model.latent_dim": 5}))
  assert other.network.latent_dim != configuration.resolve(config).network.latent_dim
  with pytest.raises(checkpointing.CheckpointError, match=r"does not match this experiment at"):
    runs.restore(other, workdir)


def test_open_run_resolves_the_saved_config(run):
  config, resolved, workdir = run
  opened, trained = runs.open_run(workdir)
  assert opened == resolved and trained.step == 2
  with open(os.path.join(workdir, workdir_utils.CONFIG_FILE)) as f:
    assert runs.saved_config(workdir).to_dict() == {**json.load(f)}


def test_saved_config_completes_a_run_older_than_a_setting(run, tmp_path):
  _, _, workdir = run
  with open(os.path.join(workdir, workdir_utils.CONFIG_FILE)) as f:
    saved = json.load(f)
  del saved["model"]["encoder_input"]  # as written before the key existed
  legacy = str(tmp_path / "legacy")
  os.makedirs(legacy)
  with open(os.path.join(legacy, workdir_utils.CONFIG_FILE), "w") as f:
    json.dump(saved, f)
  assert runs.saved_config(legacy).model.encoder_input == "theta_t"


def test_saved_config_names_a_directory_without_a_run(tmp_path):
  with pytest.raises(ValueError, match=r"holds no run: there is no config.json"):
    runs.saved_config(str(tmp_path))


def test_settle_keeps_the_settings_of_the_run_in_the_workdir(run):
  _, _, workdir = run
  asked = tiny_config("discrete", **_RUN, **{"model.encoder_input": "final_params"})
  config, resolved = runs.settle(asked, workdir)
  saved = runs.saved_config(workdir).model.encoder_input
  assert saved != "final_params"
  assert config.model.encoder_input == resolved.network.encoder_input == saved
