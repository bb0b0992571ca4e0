"""The Python API `paramrel_jax.load`: uint8 images in and out, the CLI's numbers, clear errors."""

import dataclasses
import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

import paramrel_jax
from paramrel_jax import api, data
from paramrel_jax.config import configuration
from paramrel_jax.training import runs, train, workdir_utils
from paramrel_jax.viz import images

pytestmark = pytest.mark.xdist_group("api")  # one worker: the module fixture trains once


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> str:
  """A run of the default config's smoke variant (4 steps), trained once as --mode=train does."""
  from paramrel_jax.configs import default

  workdir = str(tmp_path_factory.mktemp("api") / "run")
  config = default.get_config("smoke")
  workdir_utils.prepare_workdir(workdir, config)
  train.train_and_evaluate(configuration.resolve(config), workdir)
  return workdir


@pytest.fixture(scope="module")
def model(workdir) -> api.LoadedModel:
  return paramrel_jax.load(workdir)


def test_load_reads_the_run(model):
  assert model.kind == "paramrel" and model.step == 4
  assert model.image_shape == (28, 28, 1) and model.latent_dim == 4


def test_eval_data_is_the_runs_evaluation_split(model):
  from paramrel_jax.data import sources

  split = sources.open_split(model.config.data, model.config.data.eval_split)
  every = model.eval_data()
  assert every.shape == (len(split), 28, 28, 1) and every.dtype == np.uint8
  np.testing.assert_array_equal(every[:3], model.eval_data(3))
  np.testing.assert_array_equal(every[7], split[7]["image"])
  assert len(model.eval_data(len(split) + 5)) == len(split)  # at most the whole split
  with pytest.raises(ValueError, match="num must be >= 1, got 0"):
    model.eval_data(0)


def test_encode_gives_the_exported_codes(model, workdir, tmp_path):
  from paramrel_jax.cli import eval_modes
  from paramrel_jax.evaluation import latents

  x = model.eval_data(16)  # two batches of eval.batch_size = 8
  z = model.encode(x)
  assert z.shape == (16, 4) and z.dtype == np.float32
  copy = shutil.copytree(workdir, str(tmp_path / "copy"))
  path = eval_modes.run_export_latents(model.config, copy)[model.config.data.eval_split]
  np.testing.assert_array_equal(z, latents.load_latents(path)["z"])
  assert not np.array_equal(model.encode(x, t=0.5), z)  # the progressive encoder's time


def test_reconstruct_is_the_cli_reconstruction(model, workdir, tmp_path):
  from paramrel_jax.cli import generation_modes

  x = model.eval_data(16)
  rec = model.reconstruct(x)
  assert rec.shape == x.shape and rec.dtype == np.uint8
  np.testing.assert_array_equal(rec, model.reconstruct(x))  # deterministic by seed
  copy = shutil.copytree(workdir, str(tmp_path / "copy"))
  generation_modes.run_reconstruct(model.config, copy)
  with np.load(os.path.join(copy, "reconstruct", "reconstruct.npz")) as cli:
    np.testing.assert_array_equal(images.to_uint8(cli["input"], model.config.flow), x)
    np.testing.assert_array_equal(images.to_uint8(cli["reconstruction"], model.config.flow), rec)
  # After 4 training steps the estimate is not yet the input everywhere, but it is the input on
  # most ink (8 % of the pixels) and most background: an all-black or all-white output fails.
  assert set(np.unique(x)) == {0, 255}
  assert (rec[x == 255] == 255).mean() > 0.7 and (rec[x == 0] == 0).mean() > 0.95


def test_batch_loops_show_a_bar_over_images(model, capsys):
  config = model.config
  small = api.LoadedModel(
    dataclasses.replace(config, eval=dataclasses.replace(config.eval, batch_size=2)), model.trained
  )
  x = small.to_model(small.eval_data(5))  # three batches
  capsys.readouterr()
  small.reconstruct_arrays(x)
  small.codes(x)
  err = capsys.readouterr().err.replace("\r", "\n")
  for name in ("reconstructing", "reverse sampling"):
    assert re.search(rf"{name}: 100%\|.*\| 5/5 \[.*(image/s|s/image)\]", err), err
  small.reconstruct_arrays(x[:2])  # a single batch: no bar
  assert capsys.readouterr().err == ""


def test_sample_is_seeded(model):
  x = model.sample(3, seed=1)
  assert x.shape == (3, 28, 28, 1) and x.dtype == np.uint8
  assert set(np.unique(x)) <= {0, 255}
  np.testing.assert_array_equal(x, model.sample(3, seed=1))
  assert not np.array_equal(x, model.sample(3, seed=2))
  assert model.sample(2, steps=2).shape == (2, 28, 28, 1)


def test_generate_draws_z_from_the_prior_fitted_to_training_codes(model):
  from paramrel_jax.evaluation import latents

  assert model.config.sampling.z_prior == "fitted"
  prior = model.latent_prior()
  # The progressive encoder's prior is over code paths: its codes at K times in [0, 1].
  times = np.linspace(0.0, 1.0, model.config.sampling.prior_times)
  codes = latents.export_latents(
    model.trained.model,
    model.trained.params,
    model.config.data,
    split=model.config.data.train_split,
    batch_size=8,
    num_examples=model.config.sampling.prior_examples,
    latent_times=list(times),
  )
  assert prior.mean.shape == (len(times), model.latent_dim)
  np.testing.assert_allclose(prior.mean[0], codes["z_t0"].mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(prior.mean[-1], codes["z"].mean(0), rtol=1e-5, atol=1e-6)
  _, z = model.generate(3, seed=1)
  path = latents.draw_prior(prior, jax.random.fold_in(jax.random.key(1), 0), 3)
  np.testing.assert_allclose(z, path[:, -1], atol=1e-6)  # the code at t = 1
  # sampling.z_prior='standard': ParamReL's own z ~ N(0, I), as before the fitted prior.
  standard = model.with_sampling(z_prior="standard")
  assert standard.latent_prior() is None
  x, z = standard.generate(3, seed=1)
  direct = model.trained.model.sample(model.trained.params, jax.random.key(1), 3)
  np.testing.assert_array_equal(z, direct[1])
  np.testing.assert_array_equal(x, direct[0])
  assert not np.allclose(z, model.generate(3, seed=1)[1])
  with pytest.raises(ValueError, match=r"sampling\.z_prior must be one of \('fitted', "):
    configuration.resolve(tiny_config(**{"sampling.z_prior": "vamp"}))


def test_the_fitted_prior_is_kept_per_checkpoint_in_the_run(workdir, model, monkeypatch):
  from paramrel_jax.evaluation import latents

  prior = model.latent_prior()
  path = latents.prior_path(workdir, model.step, model.config)
  assert os.path.basename(path) == (
    f"prior_{model.step}_n{model.config.sampling.prior_examples}"
    f"_k{model.config.sampling.prior_times}.npz"
  )
  kept = np.load(path)
  np.testing.assert_array_equal(kept["mean"], prior.mean)
  np.testing.assert_array_equal(kept["scale"], prior.scale)

  def no_encoding(*args, **kwargs):
    raise AssertionError("the kept fit was not read")

  monkeypatch.setattr(latents, "export_latents", no_encoding)
  again = paramrel_jax.load(workdir).latent_prior()  # a fresh load reads the file
  np.testing.assert_array_equal(again.mean, prior.mean)
  np.testing.assert_array_equal(again.scale, prior.scale)
  with pytest.raises(AssertionError, match="not read"):  # other settings, another file
    paramrel_jax.load(workdir).with_sampling(prior_examples=8).latent_prior()
  monkeypatch.undo()
  whole = open(path, "rb").read()
  for damaged in (b"damaged", whole[: len(whole) // 2]):  # fitted again and replaced
    with open(path, "wb") as f:
      f.write(damaged)
    refit = paramrel_jax.load(workdir).latent_prior()
    np.testing.assert_allclose(refit.mean, prior.mean, rtol=1e-6)
    np.testing.assert_array_equal(np.load(path)["mean"], refit.mean)


def test_likelihood_gives_the_bound_per_image(model):
  from paramrel_jax.evaluation import likelihood
  from paramrel_jax.methods.paramrel import likelihood as paramrel_likelihood

  images = model.eval_data(3)
  terms = model.likelihood(images, seed=0)
  assert sorted(terms) == sorted(likelihood.TERMS + likelihood.FITTED_TERMS)
  for name, value in terms.items():
    assert value.shape == (3,) and np.all(np.isfinite(value)), name
  np.testing.assert_allclose(terms["test_loss"], terms["bfn"] + terms["reconstruction"], rtol=1e-5)
  np.testing.assert_allclose(terms["neg_elbo"], terms["test_loss"] + terms["rate"], rtol=1e-5)
  np.testing.assert_allclose(
    terms["neg_elbo_fitted"], terms["test_loss"] + terms["rate_fitted"], rtol=1e-5
  )
  assert np.all(terms["rate"] >= 0) and np.all(terms["rate_fitted"] >= 0)
  # One draw of the jitted batch function, with the first batch's key and the fitted prior.
  prior = model.latent_prior()
  direct = paramrel_likelihood.likelihood_batch(
    model.trained.params,
    jax.random.fold_in(jax.random.key(0), 0),
    jnp.asarray(model.to_model(images, seed=0)),
    flow=model.trained.model.flow,
    net=model.trained.model.net,
    loss_steps=model.config.eval.loss_steps,
    prior=paramrel_likelihood.prior_arrays(prior.mean, prior.covariance(), model.latent_dim),
  )
  for name, value in terms.items():
    np.testing.assert_allclose(value, direct[name], rtol=1e-5, err_msg=name)
  np.testing.assert_array_equal(model.likelihood(images, seed=0)["neg_elbo"], terms["neg_elbo"])
  assert not np.allclose(model.likelihood(images, seed=1)["neg_elbo"], terms["neg_elbo"])
  assert model.config.eval.loss_steps == 0  # continuous time; the n-step loss on request
  n_step = model.likelihood(images, seed=0, loss_steps=5)
  assert not np.allclose(n_step["bfn"], terms["bfn"])
  standard = model.with_sampling(z_prior="standard").likelihood(images, seed=0)
  assert sorted(standard) == sorted(likelihood.TERMS)
  with pytest.raises(ValueError, match="loss_steps must be an integer >= 0, got -1"):
    model.likelihood(images, loss_steps=-1)


def test_with_sampling_rebuilds_the_model_and_keeps_the_prior_it_can(model):
  prior = model.latent_prior()  # computed before: the rebuilt model keeps it (not another test)
  fewer = model.with_sampling(num_steps=2)
  assert fewer.trained.model.sample_steps == 2 and fewer.trained.params is model.trained.params
  assert model.config.sampling.num_steps != 2  # the original is unchanged
  np.testing.assert_array_equal(fewer.sample(2, seed=3), model.sample(2, seed=3, steps=2))
  assert fewer.latent_prior() is prior  # computed once for both
  coarse = model.with_sampling(prior_times=3).latent_prior()
  assert coarse.mean.shape == (3, model.latent_dim)
  np.testing.assert_allclose(coarse.mean[[0, -1]], prior.mean[[0, -1]], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match=r"unknown sampling setting\(s\) \['steps'\]"):
    model.with_sampling(steps=2)
  with pytest.raises(ValueError, match=r"sampling\.z_prior must be one of"):
    model.with_sampling(z_prior="vamp")


def test_interpolate_ends_at_the_reconstructions(model):
  a, b = model.eval_data(2)
  path = model.interpolate(a, b, num=5)
  assert path.shape == (5, 28, 28, 1) and path.dtype == np.uint8
  np.testing.assert_array_equal(path[0], model.reconstruct(a[None])[0])
  np.testing.assert_array_equal(path[-1], model.reconstruct(b[None])[0])


def test_traverse_gives_one_image_per_value(model):
  image = model.eval_data(1)[0]
  x = model.traverse(image, 2)
  assert x.shape == (model.config.sampling.traverse_steps, 28, 28, 1) and x.dtype == np.uint8
  # Each traversed unit takes the evenly spaced values; every other unit keeps the image's code.
  cfg = model.config.sampling
  zs, _ = model.traverse_arrays(model.to_model(image[None]), dims=[1, 3])
  code = model.codes(model.to_model(image[None])).z[0]
  values = np.linspace(-cfg.traverse_range, cfg.traverse_range, cfg.traverse_steps)
  for row, dim in enumerate([1, 3]):
    np.testing.assert_allclose(zs[row, :, dim], values, rtol=1e-6)
    others = np.delete(zs[row], dim, axis=1)
    np.testing.assert_array_equal(others, np.broadcast_to(np.delete(code, dim), others.shape))
  with pytest.raises(ValueError, match=r"dims must be .* in \[0, 4\)"):
    model.traverse(image, 4)


def test_conditional_keeps_each_inputs_row(model):
  x = model.eval_data(2)
  variations = model.conditional(x, 3, seed=1)
  assert variations.shape == (2, 3, 28, 28, 1) and variations.dtype == np.uint8
  np.testing.assert_array_equal(variations, model.conditional(x, 3, seed=1))
  assert not np.array_equal(variations, model.conditional(x, 3, seed=2))
  with pytest.raises(ValueError, match="images must be uint8"):
    model.conditional(x[0], 3)


def test_cli_modes_write_the_apis_model_space_arrays(model, workdir, tmp_path):
  """sample, conditional, interpolate and traverse are the API's methods with the config's seed."""
  from paramrel_jax.cli import generation_modes

  copy = shutil.copytree(workdir, str(tmp_path / "copy"))
  config, seed = model.config, model.config.seed
  for mode in ("sample", "conditional", "interpolate", "traverse"):
    generation_modes.MODES[mode](config, copy)

  def arrays(mode, name):
    with np.load(os.path.join(copy, mode, name)) as f:
      return dict(f)

  sample = arrays("sample", "samples.npz")
  x, z = model.generate(config.sampling.num_samples, seed=seed)
  np.testing.assert_array_equal(sample["samples"], x)
  np.testing.assert_array_equal(sample["z"], z)
  conditional = arrays("conditional", "conditional.npz")
  np.testing.assert_array_equal(conditional["input"], model.to_model(model.eval_data(8)))
  np.testing.assert_array_equal(
    conditional["samples"],
    model.conditional_arrays(conditional["input"], config.sampling.num_variations, seed=seed),
  )
  pairs = arrays("interpolate", "interpolate.npz")
  for end, inputs in ((0, pairs["input_a"]), (-1, pairs["input_b"])):
    rec = model.reconstruct_arrays(inputs, seed=seed)["reconstruction"]
    np.testing.assert_array_equal(pairs["interpolation"][:, end], rec)
  traversal = arrays("traverse", "traverse.npz")
  zs, x = model.traverse_arrays(traversal["input"], seed=seed)
  np.testing.assert_array_equal(traversal["z"], zs)
  np.testing.assert_array_equal(traversal["traversal"], x)
  assert x.shape[:2] == (model.latent_dim, config.sampling.traverse_steps)


def test_plot_latents_writes_pngs(model, tmp_path):
  from PIL import Image

  from paramrel_jax.viz import plots

  x = model.eval_data(8)
  paths = model.plot_latents(x, str(tmp_path), labels=np.arange(8) % 2)
  for path in paths.values():
    with Image.open(path) as png:
      assert png.size == plots.figure_size(1)


@pytest.mark.parametrize(
  "bad, received",
  [
    (np.zeros((2, 28, 28, 1), np.float32), r"got float32 of shape \(2, 28, 28, 1\)"),
    (np.zeros((2, 28, 28), np.uint8), r"got uint8 of shape \(2, 28, 28\)"),
    (np.zeros((2, 28, 28, 3), np.uint8), r"got uint8 of shape \(2, 28, 28, 3\)"),
    (np.zeros((2, 32, 32, 1), np.uint8), r"got uint8 of shape \(2, 32, 32, 1\)"),
    (np.zeros((0, 28, 28, 1), np.uint8), r"got uint8 of shape \(0, 28, 28, 1\)"),
  ],
)
def test_bad_images_name_expected_and_received_shapes(model, bad, received):
  expected = r"images must be uint8 of shape \(N >= 1, 28, 28, 1\), "
  for method in (model.encode, model.reconstruct):
    with pytest.raises(ValueError, match=expected + received):
      method(bad)
  with pytest.raises(
    ValueError,
    match=r"image must be uint8 of shape \(28, 28, 1\), got uint8 "
    r"of shape \(1, 28, 28, 1\)",
  ):
    model.traverse(np.zeros((1, 28, 28, 1), np.uint8), 0)


def test_bad_arguments(model):
  x = np.zeros((1, 28, 28, 1), np.uint8)
  with pytest.raises(ValueError, match="^n must be >= 1, got 0"):
    model.sample(0)
  with pytest.raises(ValueError, match="steps must be >= 1"):
    model.sample(1, steps=0)
  with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
    model.encode(x, t=1.5)


def test_workdir_without_a_run(tmp_path):
  with pytest.raises(ValueError, match="holds no run: there is no config.json"):
    paramrel_jax.load(str(tmp_path))
  workdir_utils.prepare_workdir(str(tmp_path), tiny_config())
  with pytest.raises(ValueError, match="no checkpoints .* train first"):
    paramrel_jax.load(str(tmp_path))


def test_an_old_run_loads_with_its_legacy_settings(workdir, tmp_path):
  copy = shutil.copytree(workdir, str(tmp_path / "copy"))
  path = os.path.join(copy, workdir_utils.CONFIG_FILE)
  saved = json.load(open(path))
  assert saved["objective"].pop("latent_weighting") == "flat_both"  # written before the key
  json.dump(saved, open(path, "w"))
  assert paramrel_jax.load(copy).config.objective.latent_weighting == "elbo"


def _fresh(**overrides) -> api.LoadedModel:
  """A freshly initialised model of the tiny config (16x16 shapes), no checkpoint needed."""
  config = configuration.resolve(tiny_config(**{"model.latent_dim": 3, **overrides}))
  info = data.dataset_info(config.data)
  model = train.build_experiment(config, info.image_shape[-1]).model
  params = model.init(jax.random.key(0), (1, *info.image_shape))
  return api.LoadedModel(config, runs.TrainedModel(model=model, params=params, step=0, info=info))


def _baseline(kind: str) -> api.LoadedModel:
  return _fresh(**{"model.kind": kind})


def test_content_masks_say_where_each_token_draws_and_other_forms_are_named():
  mask_form = {"model.conditioning": "content_mask", "model.latent_dim": 4}
  loaded = _fresh(**mask_form)
  images = loaded.eval_data(3)
  masks = loaded.content_masks(images)
  assert masks.shape == (3, 4, 16, 16) and masks.dtype == np.float32
  np.testing.assert_allclose(masks.sum(axis=1), 1.0, atol=1e-5)
  assert np.ptp(masks, axis=(2, 3)).min() > 1e-4  # each token's mask varies over the image
  assert np.abs(masks[0] - masks[1]).max() > 1e-4  # and follows the image's code
  np.testing.assert_array_equal(masks, loaded.content_masks(images))
  model, params = loaded.trained.model, loaded.trained.params  # the masks of `encode`'s codes
  by_codes = model.content_masks(params, jnp.asarray(loaded.encode(images)))
  np.testing.assert_allclose(masks, by_codes, atol=1e-6)
  batched = _fresh(**mask_form, **{"eval.batch_size": 2})  # batches of 2 + 1: the same masks
  np.testing.assert_allclose(batched.content_masks(images), masks, atol=1e-6)
  pairs = _fresh(**mask_form, **{"model.latent_group_size": 2})
  assert pairs.content_masks(images).shape == (3, 2, 16, 16)  # L = 4: one token per pair of units
  with pytest.raises(ValueError, match="content masks need model.conditioning='content_mask'"):
    _fresh().content_masks(images)
  with pytest.raises(ValueError, match="content_masks needs a ParamReL run; .* kind 'ae'"):
    _baseline("ae").content_masks(images)


def test_the_content_mask_script_measures_and_draws_the_masks(workdir, tmp_path):
  from experiments import content_masks

  # Two images, two tokens that swap the halves of a 2 x 4 image: each owns half and moves by
  # one pixel from its mean centre; uniform masks own nothing in particular and stay put.
  halves = np.zeros((2, 2, 2, 4), np.float32)
  halves[0, 0, :, :2] = halves[0, 1, :, 2:] = halves[1, 0, :, 2:] = halves[1, 1, :, :2] = 1.0
  stats = content_masks.token_stats(halves)
  assert stats["share"] == [0.5, 0.5] and stats["owns"] == [0.5, 0.5]
  np.testing.assert_allclose(stats["moves"], [1.0, 1.0])
  assert stats["sharpness"] == 1.0
  uniform = content_masks.token_stats(np.full((2, 4, 2, 4), 0.25, np.float32))
  assert uniform["sharpness"] == 0.25 and uniform["moves"] == [0.0] * 4
  loaded = _fresh(**{"model.conditioning": "content_mask", "model.latent_dim": 4})
  shown, masks = content_masks.run_masks(loaded, 2, seed=0)
  grid = content_masks.save_mask_rows(str(tmp_path / "rows.png"), shown, masks)
  assert (np.asarray(Image.open(tmp_path / "rows.png")).reshape(grid.shape) == grid).all()
  assert grid.dtype == np.uint8 and grid.shape[1] > 5 * 64 and grid.shape[0] > 2 * 64  # 5 cells
  rows = content_masks.table({"run": content_masks.token_stats(masks)})
  assert len(rows) == 2 + 4 + 1  # header, a row per token, the sharpness
  with pytest.raises(ValueError, match="content masks need model.conditioning='content_mask'"):
    content_masks.main([workdir, "--num", "2", "--out", str(tmp_path / "masks")])


def test_a_baseline_does_what_it_can_and_names_its_kind_otherwise():
  ae = _baseline("ae")
  x = np.zeros((2, 16, 16, 1), np.uint8)
  z = ae.encode(x)
  assert z.shape == (2, 3) and z.dtype == np.float32
  rec = ae.reconstruct(x)
  assert rec.shape == x.shape and rec.dtype == np.uint8
  with pytest.raises(ValueError, match="model kind 'ae' cannot sample"):
    ae.sample(2)
  with pytest.raises(ValueError, match="interpolate needs a ParamReL run; .* kind 'ae'"):
    ae.interpolate(x[0], x[1])
  with pytest.raises(ValueError, match="traverse needs a ParamReL run; .* kind 'ae'"):
    ae.traverse(x[0], 0)
  with pytest.raises(ValueError, match="'ae' model has no flow time"):
    ae.encode(x, t=0.5)
  with pytest.raises(ValueError, match=r"steps \(the n of an n-step flow\) needs a ParamReL run"):
    ae.reconstruct(x, steps=3)
  with pytest.raises(ValueError, match="likelihood needs a ParamReL run; .* kind 'ae'"):
    ae.likelihood(x)
  vae = _baseline("vae")
  sample = vae.sample(2, seed=0)
  assert sample.shape == (2, 16, 16, 1) and sample.dtype == np.uint8
  np.testing.assert_array_equal(sample, vae.sample(2, seed=0))


def test_latent_gap_arrays_compare_own_shuffled_and_zero_codes(model, workdir, tmp_path):
  """Own, shuffled and zero codes meet the same theta_t: identical images have identical codes,
  so their shuffled loss is their own; z = 0 is another input. The script tabulates the run."""
  from experiments import z_gap_by_time

  x = model.to_model(model.eval_data(8))  # one batch of eval.batch_size = 8
  times = [0.0, 0.5, 1.0]
  gaps = model.latent_gap_arrays(x, times)
  assert set(gaps) == {"own", "shuffled", "zero"}
  assert all(v.shape == (3, 8) and np.isfinite(v).all() for v in gaps.values())
  np.testing.assert_array_equal(gaps["own"], model.latent_gap_arrays(x, times)["own"])  # seeded
  same = model.latent_gap_arrays(np.repeat(x[:1], 8, axis=0), times)
  np.testing.assert_array_equal(same["shuffled"], same["own"])
  assert not np.array_equal(same["zero"], same["own"])  # a 4-step model: z moves it by 1e-5
  for bad, match in (
    (dict(x=np.concatenate([x, x[:1]]), times=times), "every batch needs 2 or more examples"),
    (dict(x=x, times=[0.5, 1.5]), "times must be a non-empty 1-D array in"),
  ):
    with pytest.raises(ValueError, match=match):
      model.latent_gap_arrays(**bad)

  out = str(tmp_path / "gaps")
  rows = z_gap_by_time.main([workdir, "--num", "8", "--times", "0", "0.5", "1", "--out", out])
  assert len(rows) == 2 + 4  # header, three times and the mean
  saved = json.load(open(os.path.join(out, "z_gap_by_time.json")))["runs"][workdir]
  np.testing.assert_allclose(saved["own"], gaps["own"].mean(axis=1), rtol=1e-6)  # the same images
  np.testing.assert_allclose(
    saved["shuffled"][1] - saved["own"][1], float(rows[3].split("|")[4]), atol=0.051
  )
  assert os.path.getsize(os.path.join(out, "z_gap_by_time.png")) > 0
