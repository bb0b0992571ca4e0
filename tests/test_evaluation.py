"""Evaluation: likelihood on a smoke checkpoint, latent export files, the evaluator registry."""

import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from paramrel_jax.bfn.flows import make_flow
from paramrel_jax.cli import eval_modes
from paramrel_jax.config import configuration
from paramrel_jax.data import sources
from paramrel_jax.evaluation import evaluators, latents, likelihood
from paramrel_jax.methods.paramrel import likelihood as paramrel_likelihood
from paramrel_jax.networks import ParamReLNet, get_variant
from paramrel_jax.training import runs, train

pytestmark = pytest.mark.xdist_group("evaluation")  # one worker: the module fixture trains once

# The smoke run: 2 steps of the tiny discrete config on generated 16x16 shapes (115 train, 13 test).
_RUN = {"training.num_steps": 2, "training.log_every": 2, "training.checkpoint_every": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """(config overrides, workdir, TrainedModel) of a 2-step smoke checkpoint."""
  workdir = str(tmp_path_factory.mktemp("run"))
  evals = {"evals.likelihood": {"every": 2, "num_examples": 8}}  # run by the trainer at step 2
  cfg = configuration.resolve(tiny_config("discrete", **_RUN, **evals))
  train.train_and_evaluate(cfg, workdir)
  return workdir, runs.restore(cfg, workdir)


def _config(**overrides) -> configuration.ExperimentConfig:
  return configuration.resolve(tiny_config("discrete", **{**_RUN, **overrides}))


def _with_evals(cfg: configuration.ExperimentConfig, evals: dict) -> configuration.ExperimentConfig:
  return dataclasses.replace(cfg, evals=evals)


def _likelihood(model, cfg, **kw):
  settings = dict(split="test", batch_size=8, num_examples=100, loss_steps=0, n_repeats=1)
  settings.update(kw)
  return likelihood.evaluate_likelihood(model.model, model.params, cfg.data, **settings)


def test_trainer_logs_due_evaluators(run):
  workdir, _ = run
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    (logged,) = [json.loads(line) for line in f]
  assert logged["step"] == 2
  for term in likelihood.TERMS:
    assert math.isfinite(logged[f"eval/likelihood/{term}_bpd"]), term


def test_a_baseline_is_scored_by_the_same_evaluators(tmp_path):
  """AUROC, DCI and TAD of a beta-VAE through config.evals, logged by the trainer and written by
  --mode=eval like ParamReL's; the BFN likelihood is refused by name."""
  latent = {"every": 2, "num_examples": 500, "n_folds": 2}
  evals = {
    "evals.auroc": latent,
    "evals.dci": {**latent, "protocol": "quick", "n_estimators": 5},
    "evals.tad": latent,
  }
  cfg = configuration.resolve(
    tiny_config("discrete", **_RUN, **evals, **{"model.kind": "beta_vae", "data.num_examples": 600})
  )
  workdir = str(tmp_path)
  train.train_and_evaluate(cfg, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    (logged,) = [json.loads(line) for line in f]
  for key in ("auroc/auroc", "dci/disentanglement", "tad/tad", "tad/attrs"):
    assert math.isfinite(logged[f"eval/{key}"]), key
  written = eval_modes.run_eval(cfg, workdir)
  assert "likelihood" not in written and written["dci"]["factor_names"]
  # The importance matrix as a heat map beside metrics.json (units x factors).
  assert os.path.getsize(os.path.join(workdir, "eval", "dci_importance.png")) > 0
  assert written["auroc"]["auroc_mean"] == pytest.approx(logged["eval/auroc/auroc"])
  model = runs.restore(cfg, workdir).model
  with pytest.raises(ValueError, match="evals.likelihood .*needs a ParamReL run.*'beta_vae'"):
    evaluators.build_evaluators(_with_evals(cfg, {"likelihood": {"every": 2}}), model)
  with pytest.raises(ValueError, match="evals.auroc.latent_time=0.5: a 'beta_vae' model"):
    evaluators.build_evaluators(
      _with_evals(cfg, {"auroc": {"every": 2, "latent_time": 0.5}}), model
    )


def test_likelihood_on_smoke_checkpoint(run):
  _, model = run
  cfg = _config()
  result = _likelihood(model, cfg, n_repeats=2)
  assert result["num_examples"] == 13  # the whole test split: 100 asked, 13 there
  dims = result["dims_per_example"]
  assert dims == 16 * 16
  nats, per_dim, bits = (result[k] for k in ("nats_per_image", "nats_per_dim", "bits_per_dim"))
  for term in likelihood.TERMS:
    assert math.isfinite(nats[term]) and nats[term] >= 0, term
    np.testing.assert_allclose(per_dim[term], nats[term] / dims, rtol=1e-12)
    np.testing.assert_allclose(bits[term], per_dim[term] / math.log(2), rtol=1e-12)
  np.testing.assert_allclose(nats["test_loss"], nats["bfn"] + nats["reconstruction"], rtol=1e-6)
  np.testing.assert_allclose(nats["neg_elbo"], nats["test_loss"] + nats["rate"], rtol=1e-6)
  assert result["stderr_nats_per_image"]["bfn"] > 0  # two passes with different noise
  # An untrained Bernoulli output is near p = 1/2 at t = 1: about ln 2 nats per pixel.
  assert 0.5 < per_dim["reconstruction"] < 1.0


def test_eval_bounds_the_likelihood_against_the_fitted_prior_too(run):
  workdir, _ = run
  cfg = _config(**{"eval.num_examples": 8})
  assert cfg.sampling.z_prior == "fitted"
  nats = eval_modes.run_eval(cfg, workdir)["likelihood"]["nats_per_image"]
  assert set(likelihood.FITTED_TERMS) <= set(nats) and nats["rate_fitted"] >= 0
  np.testing.assert_allclose(
    nats["neg_elbo_fitted"], nats["test_loss"] + nats["rate_fitted"], rtol=1e-6
  )
  assert nats["rate_fitted"] != nats["rate"]
  standard = eval_modes.run_eval(
    _config(**{"eval.num_examples": 8, "sampling.z_prior": "standard"}), workdir
  )
  assert sorted(standard["likelihood"]["nats_per_image"]) == sorted(likelihood.TERMS)
  assert standard["likelihood"]["nats_per_image"]["neg_elbo"] == nats["neg_elbo"]  # same draws


def test_n_repeats_average_the_passes(run):
  _, model = run
  cfg = _config()
  one = _likelihood(model, cfg, n_repeats=1)
  two = _likelihood(model, cfg, n_repeats=2)
  # Pass 0 is the same in both; with two passes mean - pass0 = (pass1 - pass0) / 2 and
  # stderr = |pass1 - pass0| / (2 sqrt(2)).
  for term in likelihood.TERMS:
    gap = abs(two["nats_per_image"][term] - one["nats_per_image"][term])
    np.testing.assert_allclose(gap, two["stderr_nats_per_image"][term] * math.sqrt(2), rtol=1e-6)
  assert one["stderr_nats_per_image"]["bfn"] == 0.0


def _constant_net(latent_dim: int):
  """Stub encode / decode: q(z | theta, t) = N(1, e^-1) per dim, zero logits (p_O = 1/2)."""

  def encode(net_in, t):
    shape = (net_in.shape[0], latent_dim)
    return jnp.ones(shape), -jnp.ones(shape)

  def decode(net_in, z, t):
    return jnp.zeros(net_in.shape)

  return encode, decode


def test_likelihood_terms_against_closed_forms():
  """A constant output p = 1/2 on 4 binary pixels: every term has a closed form."""
  flow = make_flow("discrete", sigma1=0.1, beta1=3.0, num_bins=2, num_classes=2)
  x = jax.random.bernoulli(jax.random.key(0), 0.5, (20_000, 2, 2, 1)).astype(jnp.int32)
  encode, decode = _constant_net(3)

  def mean_terms(loss_steps, loss_samples=1):
    terms = paramrel_likelihood.likelihood_terms(
      jax.random.key(loss_steps),
      x,
      flow=flow,
      encode=encode,
      decode=decode,
      loss_steps=loss_steps,
      encoder_input_mode="theta_t",
      loss_samples=loss_samples,
    )
    return {
      k: (float(v.mean()), float(v.std()) / math.sqrt(v.size)) for k, v in terms.as_dict().items()
    }

  ctime = mean_terms(0)
  # L^inf = K beta1 t sum_k (e_x - p)_k^2 = 3 t per pixel, so E_t = 1.5 per pixel, 6 per image.
  assert abs(ctime["bfn"][0] - 6.0) < 4 * ctime["bfn"][1]
  np.testing.assert_allclose(ctime["reconstruction"][0], 4 * math.log(2), rtol=1e-5)
  # KL[N(1, e^-1) || N(0, 1)] = (1 + e^-1 - 1 + 1) / 2 per latent dim.
  np.testing.assert_allclose(ctime["rate"][0], 3 * (1 + math.exp(-1)) / 2, rtol=1e-5)
  # Against a fitted prior: one N(0, I) code held over a path of 3 knots (every block of the
  # path's covariance I) gives the rate again; N(1, I), the posterior's mean, leaves the variance
  # terms only.
  for shift, expected in ((0.0, 3 * (1 + math.exp(-1)) / 2), (1.0, 3 * math.exp(-1) / 2)):
    prior = (jnp.full((3, 3), shift), jnp.kron(jnp.ones((3, 3)), jnp.eye(3)))
    terms = paramrel_likelihood.likelihood_terms(
      jax.random.key(0),
      x[:100],
      flow=flow,
      encode=encode,
      decode=decode,
      loss_steps=0,
      encoder_input_mode="theta_t",
      prior=prior,
    ).as_dict()
    np.testing.assert_allclose(terms["rate_fitted"], expected, rtol=1e-4)
    np.testing.assert_allclose(terms["neg_elbo_fitted"], terms["test_loss"] + expected, rtol=1e-5)
  many, few = mean_terms(1000, loss_samples=20), mean_terms(2)
  assert abs(many["bfn"][0] - ctime["bfn"][0]) < 4 * math.hypot(many["bfn"][1], ctime["bfn"][1])
  assert abs(few["bfn"][0] - ctime["bfn"][0]) > 4 * math.hypot(few["bfn"][1], ctime["bfn"][1])


def test_export_latents_files(run):
  workdir, model = run
  cfg = _config(**{"eval.num_examples": 40, "eval.latent_times": (0.5, 0.0)})
  paths = eval_modes.run_export_latents(cfg, workdir)
  assert sorted(paths) == ["test", "train"]
  latent_dim = cfg.network.latent_dim
  for split, expected_n in (("train", 40), ("test", 13)):  # limited by num_examples / split size
    arrays = latents.load_latents(paths[split])
    assert sorted(arrays) == ["factors", "z", "z_t0", "z_t0.5"]
    for key in ("z", "z_t0.5", "z_t0"):
      assert arrays[key].shape == (expected_n, latent_dim) and arrays[key].dtype == np.float32
      assert np.all(np.isfinite(arrays[key]))
    source = sources.open_split(cfg.data, split)
    np.testing.assert_array_equal(
      arrays["factors"], np.stack([source[i]["factors"] for i in range(expected_n)])
    )
    # The time reaches the progressive encoder (with encoder_input 'data' its only input change).
    assert not np.array_equal(arrays["z"], arrays["z_t0"])
  again = latents.export_latents(
    model.model, model.params, cfg.data, split="test", batch_size=8, num_examples=13
  )
  np.testing.assert_array_equal(again["z"], latents.load_latents(paths["test"])["z"])  # seeded


def test_export_latents_rejects_plain_bfn_and_bad_times(run):
  _, model = run
  cfg = _config()
  plain = ParamReLNet(get_variant("tiny", latent_dim=0), out_channels=1)
  with pytest.raises(ValueError, match="latent_dim = 0"):
    latents.export_latents(
      dataclasses.replace(model.model, net=plain),
      {},
      cfg.data,
      split="test",
      batch_size=8,
      num_examples=8,
    )
  with pytest.raises(ValueError, match="latent_time"):
    latents.export_latents(
      model.model,
      model.params,
      cfg.data,
      split="test",
      batch_size=8,
      num_examples=8,
      latent_time=1.5,
    )


def test_run_eval_writes_metrics(run):
  workdir, _ = run
  cfg = _with_evals(_config(), {"tad": {"every": 2, "n_folds": 2}})
  result = eval_modes.run_eval(cfg, workdir)
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(result))
  assert saved["step"] == 2
  assert saved["versions"]["sklearn"] and saved["versions"]["jax"] == jax.__version__
  assert saved["config"]["dataset"] == "shapes2d"
  assert saved["likelihood"]["split"] == "test" and saved["likelihood"]["num_examples"] == 13
  assert saved["tad"]["sklearn_version"] == saved["versions"]["sklearn"]
  assert saved["tad"]["n_folds"] == 2


def _labelled_npz(path, n=60):
  """A tiny npz dataset with digit-like labels only (no factors or attributes)."""
  rng = np.random.default_rng(0)
  image = (rng.random((n, 16, 16, 1)) < 0.3).astype(np.uint8) * 255
  np.savez(path, image=image, label=np.arange(n) % 2)
  return str(path)


def test_registry_rejects_unknown_and_inapplicable(tmp_path):
  cfg = _config()
  with pytest.raises(ValueError, match="evals.fid: unknown evaluator 'fid'"):
    evaluators.build_evaluators(_with_evals(cfg, {"fid": {"every": 2}}))
  with pytest.raises(ValueError, match="unknown setting.*'num_exmples'"):
    evaluators.build_evaluators(_with_evals(cfg, {"auroc": {"every": 2, "num_exmples": 3}}))
  with pytest.raises(ValueError, match="evals.likelihood.every"):
    evaluators.build_evaluators(_with_evals(cfg, {"likelihood": {"split": "test"}}))
  with pytest.raises(ValueError, match="multiple of training.log_every"):
    evaluators.build_evaluators(_with_evals(cfg, {"likelihood": {"every": 3}}))
  digits = _config(**{"data.source": "npz", "data.path": _labelled_npz(tmp_path / "d.npz")})
  for name in ("dci", "tad"):
    with pytest.raises(ValueError, match=f"evals.{name}: a '{name}' evaluator needs"):
      evaluators.build_evaluators(_with_evals(digits, {name: {"every": 2}}))
  plain = _config(**{"model.latent_dim": 0})
  with pytest.raises(ValueError, match="evals.auroc: .*latent_dim >= 1, got 0"):
    evaluators.build_evaluators(_with_evals(plain, {"auroc": {"every": 2}}))
  built = evaluators.build_evaluators(
    _with_evals(
      digits, {"auroc": {"every": 2}, "auroc_t0": {"type": "auroc", "every": 4, "latent_time": 0.0}}
    )
  )
  assert [(e.name, e.kind, e.every) for e in built] == [
    ("auroc", "auroc", 2),
    ("auroc_t0", "auroc", 4),
  ]
  assert built[0].settings["target"] == "label" and built[0].settings["split"] == "train"
  assert built[1].settings["latent_time"] == 0.0


def test_run_due_respects_every(run, tmp_path):
  _, model = run
  digits = _config(
    **{
      "data.source": "npz",
      "data.path": _labelled_npz(tmp_path / "d.npz"),
      "eval.num_examples": 60,
    }
  )
  built = evaluators.build_evaluators(
    _with_evals(
      digits,
      {
        "likelihood": {"every": 2, "num_examples": 8},
        "auroc": {"every": 4},
      },
    )
  )
  params = jax.device_get(model.params)
  assert evaluators.run_due(built, 3, model.model, params) == {}
  at2 = evaluators.run_due(built, 2, model.model, params)
  expected = [f"eval/likelihood/{t}_bpd" for t in likelihood.TERMS]
  expected += ["eval/likelihood/test_loss_nats", "eval/likelihood/neg_elbo_nats"]
  assert sorted(at2) == sorted(expected)
  at4 = evaluators.run_due(built, 4, model.model, params)
  assert set(at4) == set(at2) | {"eval/auroc/auroc", "eval/auroc/auroc_std"}
  assert 0.0 <= at4["eval/auroc/auroc"] <= 1.0
  assert all(math.isfinite(v) for v in at4.values())


def test_binarize_factors_splits_each_range_in_half():
  factors = np.array([[0, 0], [1, 2], [2, 3], [2, 5]])
  np.testing.assert_array_equal(
    evaluators.binarize_factors(factors, (3, 6)), [[0, 0], [0, 0], [1, 1], [1, 1]]
  )
  with pytest.raises(ValueError, match="factors must have shape"):
    evaluators.binarize_factors(factors, (3,))


def test_fit_prior_recovers_a_gaussian_and_draws_from_it():
  rng = np.random.default_rng(0)
  mean, mix = np.array([1.0, -2.0, 0.5]), rng.normal(size=(3, 3))
  codes = rng.normal(size=(20_000, 3)) @ mix.T + mean
  prior = latents.fit_prior(codes)
  np.testing.assert_allclose(prior.mean, mean, atol=0.05)
  np.testing.assert_allclose(prior.scale @ prior.scale.T, mix @ mix.T, atol=0.1)
  draws = np.asarray(latents.draw_prior(prior, jax.random.key(0), 20_000))
  assert draws.shape == (20_000, 3) and draws.dtype == np.float32
  np.testing.assert_allclose(np.cov(draws, rowvar=False), mix @ mix.T, atol=0.15)
  # The standard normal as a fit: the draws are the plain N(0, I) draws of the key.
  unit = latents.FittedPrior(np.zeros(3, np.float32), np.eye(3, dtype=np.float32))
  np.testing.assert_allclose(
    latents.draw_prior(unit, jax.random.key(1), 4),
    jax.random.normal(jax.random.key(1), (4, 3)),
    atol=1e-6,
  )
  # Code paths (N, K, L): one Gaussian over the K L numbers, draws of the same shape.
  paths = np.stack([codes[:500], 2.0 * codes[:500]], axis=1)
  path_prior = latents.fit_prior(paths)
  assert path_prior.mean.shape == (2, 3) and path_prior.scale.shape == (6, 6)
  path_draws = np.asarray(latents.draw_prior(path_prior, jax.random.key(0), 5))
  assert path_draws.shape == (5, 2, 3)
  np.testing.assert_allclose(
    path_draws[:, 1] - path_prior.mean[1], 2.0 * (path_draws[:, 0] - path_prior.mean[0]), atol=1e-3
  )
  # Fewer codes than dimensions: a valid, rank-deficient fit.
  low = latents.fit_prior(rng.normal(size=(2, 5)))
  assert np.all(np.isfinite(low.scale)) and np.linalg.matrix_rank(low.scale) == 1
  with pytest.raises(ValueError, match=r"shape \(N >= 2, L\) or .* got shape \(1, 5\)"):
    latents.fit_prior(np.zeros((1, 5)))


def test_dci_standard_protocol_fits_on_the_first_codes_and_scores_the_next():
  """disentanglement_lib's protocol: one split, num_train codes to fit, the next num_test to
  score; the quick estimator stays available by name. Codes are constructed with known answers."""
  cfg = _config(**{"data.num_examples": 600})  # shapes2d: 5 factors, 540 training examples
  settings = {
    "every": 2,
    "protocol": "standard",
    "num_train": 300,
    "num_test": 200,
    "n_estimators": 20,
  }
  (evaluator,) = evaluators.build_evaluators(_with_evals(cfg, {"dci": settings}))
  assert evaluator.settings["num_examples"] == 500  # the codes it exports
  rng = np.random.default_rng(0)
  factors = rng.integers(0, 4, size=(520, 5))
  permuted_identity = factors[:, [3, 0, 4, 1, 2]] + 0.05 * rng.normal(size=factors.shape)
  result = evaluator.score({"z": permuted_identity, "factors": factors})
  headline = evaluators.DciEvaluator.headline(result)
  assert result["protocol"] == "standard" and result["num_examples"] == 520
  assert headline["disentanglement"] > 0.9 and headline["informativeness"] > 0.9
  # The codes after the first 500 are not used: scrambling them changes nothing.
  scrambled = permuted_identity.copy()
  scrambled[500:] = rng.normal(size=(20, 5))
  again = evaluator.score({"z": scrambled, "factors": factors})
  assert again["disentanglement"] == result["disentanglement"]
  # A random rotation of the same codes mixes every factor into every unit.
  rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
  rotated = evaluator.score({"z": (factors - 1.5) @ rotation, "factors": factors})
  assert rotated["disentanglement"] < headline["disentanglement"] - 0.3
  # A code without factor 2 shows it in that factor's informativeness alone.
  missing = evaluator.score({"z": np.delete(permuted_identity, 4, axis=1), "factors": factors})
  per_factor = evaluators.DciEvaluator.headline(missing)["informativeness_per_factor"]
  assert per_factor[2] < 0.4 and np.all(np.delete(per_factor, 2) > 0.9)
  # Too few codes in the split for the protocol: refused at construction, with the way out.
  with pytest.raises(ValueError, match="needs num_train \\+ num_test = 15000.*protocol='quick'"):
    evaluators.build_evaluators(_with_evals(cfg, {"dci": {"every": 2}}))
  with pytest.raises(ValueError, match="evals.dci.protocol must be one of"):
    evaluators.build_evaluators(_with_evals(cfg, {"dci": {"every": 2, "protocol": "fast"}}))
