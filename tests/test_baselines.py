"""Baselines (AE, VAE, beta-VAE, InfoVAE, DiffAE, InfoDiffusion): training through the trainer's
steps, output formats per data type, DDIM inversion, schedules and validation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from paramrel_jax.bfn import discretised, flows
from paramrel_jax.config import configuration
from paramrel_jax.data import generated
from paramrel_jax.evaluation import latents
from paramrel_jax.methods import baselines, interface, registry
from paramrel_jax.methods.baselines import diffusion
from paramrel_jax.training import train

SIZE = 16
BATCH = 8
LATENT = 4  # the tiny variant's latent_dim


def _config(data_type: str = "discrete", **overrides):
  return configuration.resolve(
    tiny_config(
      data_type,
      **{"training.learning_rate": 3e-3, "training.warmup_steps": 5, **overrides},
    )
  )


def _model(kind: str, cfg, channels: int, sample_steps: int = 4, **settings):
  return registry.make_model(
    kind,
    flow=cfg.flow,
    network=dataclasses.replace(cfg.network, channel_mult=(1,)),  # one level: fast compiles
    objective=cfg.objective,
    image_shape=(SIZE, SIZE, channels),
    settings=baselines.BaselineConfig(**settings),
    sample_steps=sample_steps,
  )


def _binary_images(num: int) -> jax.Array:
  images = generated.make_shapes2d(num, SIZE, seed=0)["image"]
  return jnp.asarray((images > 127).astype(np.int32))


def _rgb_images(num: int, num_bins: int) -> jax.Array:
  images = generated.make_scenes3d(num, SIZE, seed=0)["image"].astype(np.float32) / 127.5 - 1.0
  return discretised.quantize(jnp.asarray(images), num_bins) if num_bins else jnp.asarray(images)


def _random_params(model, data_shape, seed: int = 1):
  """Parameters with every leaf random and non-zero (the zero-initialised heads made live)."""
  shapes = jax.eval_shape(lambda key: model.init(key, data_shape), jax.random.key(0))
  rng = np.random.default_rng(seed)

  def draw(path, shape):
    noise = rng.normal(size=shape.shape)
    if len(shape.shape) > 1:  # kernels: 1 / sqrt(fan-in)
      return jnp.asarray(noise / np.sqrt(np.prod(shape.shape[:-1])), jnp.float32)
    offset = 1.0 if str(path[-1].key) == "scale" else 0.0
    return jnp.asarray(offset + 0.1 * noise, jnp.float32)

  return jax.tree.map_with_path(draw, shapes)


# ---------------------------------------------------------------------------------------------
# Training through train.compile_steps


@pytest.mark.parametrize("kind", baselines.BASELINE_KINDS)
def test_trains_through_compiled_steps_and_loss_decreases(kind):
  cfg = _config()
  model = _model(kind, cfg, 1)
  exp = train.Experiment(model=model, optimizer=train.make_optimizer(cfg.training), ema_decay=0.9)
  steps = train.compile_steps(exp, train.make_mesh(), (BATCH, SIZE, SIZE, 1))
  images = _binary_images(4 * BATCH)
  fixed = {"image": images[:BATCH]}
  keys = jax.random.split(jax.random.key(1), 4)

  @jax.jit
  def fixed_loss(params):  # the same keys every time: a fair before / after comparison
    return jax.vmap(lambda k: model.loss(params, k, fixed, k)[0])(keys).mean()

  state = steps.init(jax.random.key(0))
  before = float(fixed_loss(state.params))
  for i in range(30):
    state, metrics = steps.train(state, {"image": images[(i % 4) * BATCH : (i % 4 + 1) * BATCH]})
  after = float(fixed_loss(state.params))
  assert int(state.step) == 30
  assert {"loss", "recon", "rate", "mmd", "grad_norm", "param_norm"} <= set(metrics)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  diagnostics = steps.diagnostics(state, fixed)
  assert set(diagnostics) == {"z_shuffle_gap", "active_dims"}
  assert all(np.isfinite(float(v)) for v in diagnostics.values())
  assert after < 0.8 * before, (kind, before, after)


def test_kinds_set_the_loss_weights_and_the_loss_adds_the_terms():
  cfg = _config(**{"objective.kl_weight": 0.5, "objective.mmd_weight": 2.0})
  expected = {
    "ae": (False, 0.0, 0.0),
    "vae": (True, 1.0, 0.0),
    "beta_vae": (True, 3.0, 0.0),
    "beta_tcvae": (True, 1.0, 0.0),
    "infovae": (True, 0.5, 2.0),
    "diffae": (False, 0.0, 0.0),
    "infodiffusion": (True, 0.5, 2.0),
  }
  for kind, weights in expected.items():
    model = _model(kind, cfg, 1, beta=3.0)
    assert (model.variational, model.kl_weight, model.mmd_weight) == weights, kind
    assert registry.has_prior(kind) == model.variational, kind  # only a VAE's z has a prior
  assert registry.has_prior("paramrel") and not registry.has_prior("pca")
  model = _model("infovae", cfg, 1)
  x = {"image": _binary_images(BATCH)}
  key = jax.random.key(3)
  params = _random_params(model, (BATCH, SIZE, SIZE, 1))
  loss, terms = jax.jit(model.loss)(params, key, x, key)
  terms = {k: float(v) for k, v in terms.items()}
  assert terms["rate"] > 0 and terms["recon"] > 0 and np.isfinite(terms["mmd"])
  np.testing.assert_allclose(float(loss), terms["loss"], rtol=1e-6)
  np.testing.assert_allclose(
    terms["loss"], terms["recon"] + 0.5 * terms["rate"] + 2.0 * terms["mmd"], rtol=1e-5
  )
  # beta-TCVAE: the VAE's loss plus (beta - 1) times the batch's total correlation.
  tcvae = _model("beta_tcvae", cfg, 1, beta=3.0)
  assert tcvae.tc_weight == 2.0 and _model("beta_vae", cfg, 1, beta=3.0).tc_weight == 0.0
  loss, terms = jax.jit(tcvae.loss)(params, key, x, key)
  terms = {k: float(v) for k, v in terms.items()}
  np.testing.assert_allclose(
    terms["loss"], terms["recon"] + terms["rate"] + 2.0 * terms["tc"], rtol=1e-5
  )
  with pytest.raises(ValueError, match="model.beta must be >= 1 for a beta-TCVAE"):
    _model("beta_tcvae", cfg, 1, beta=0.5)


# ---------------------------------------------------------------------------------------------
# Output formats


@pytest.mark.parametrize("kind", baselines.MODEL_KINDS)
def test_every_kind_has_the_model_interface(kind):
  """One interface (`interface.Model`) for ParamReL and every baseline: shapes and dtypes from
  tracing alone (`jax.eval_shape`: nothing is compiled)."""
  cfg = _config()
  model = _model(kind, cfg, 1)
  assert (model.kind, model.latent_dim) == (kind, LATENT)
  assert interface.has(model, interface.FLOW) == (kind == "paramrel")
  x = jax.ShapeDtypeStruct((3, SIZE, SIZE, 1), jnp.int32)
  key = jax.random.key(0)
  params = jax.eval_shape(lambda k: model.init(k, x.shape), key)
  z = jax.eval_shape(model.encode, params, key, x)
  assert (z.shape, z.dtype) == ((3, LATENT), jnp.float32)
  x_hat = jax.eval_shape(model.reconstruct, params, key, x)
  assert (x_hat.shape, x_hat.dtype) == (x.shape, jnp.int32)
  if kind in ("ae", "diffae"):
    with pytest.raises(ValueError, match="no prior"):
      model.sample(params, key, 2)
  else:
    samples, z = jax.eval_shape(lambda p, k: model.sample(p, k, 2), params, key)
    assert (samples.shape, samples.dtype) == ((2, SIZE, SIZE, 1), jnp.int32)
    assert (z.shape, z.dtype) == ((2, LATENT), jnp.float32)
  if kind == "paramrel":
    z_half = jax.eval_shape(lambda p, k, x: model.encode(p, k, x, 0.5), params, key, x)
    assert z_half.shape == (3, LATENT)
  else:
    with pytest.raises(ValueError, match="no flow time"):
      model.encode(params, key, x, 0.5)
    with pytest.raises(ValueError, match=f"needs a ParamReL run.*'{kind}'"):
      interface.require(model, interface.FLOW, "--mode=traverse")


def test_latents_have_the_format_of_the_paramrel_export():
  cfg = _config()
  x = jax.ShapeDtypeStruct((3, SIZE, SIZE, 1), jnp.int32)
  key = jax.random.key(0)
  paramrel = _model("paramrel", cfg, 1)
  params = jax.eval_shape(lambda k: paramrel.init(k, x.shape), key)
  exported = jax.eval_shape(lambda p, k, x: latents.encode(paramrel, p, k, x), params, key, x)
  for kind in ("vae", "diffae"):
    model = _model(kind, cfg, 1)
    params = jax.eval_shape(lambda k, m=model: m.init(k, x.shape), key)
    z = jax.eval_shape(lambda p, k, x, m=model: latents.encode(m, p, k, x), params, key, x)
    assert (z.shape, z.dtype) == (exported.shape, exported.dtype)


def test_diffae_with_a_zero_noise_predictor_reconstructs_exactly():
  """With eps = 0 (as at initialisation: the predictor's head is zero) DDIM maps x0 to
  sqrt(abar_T) x0 and back without error, so reconstruction returns the data."""
  cfg = _config()
  model = _model("diffae", cfg, 1, sample_steps=5)
  x = _binary_images(3)
  params = _random_params(model, x.shape)
  params["denoiser"]["conv_out"] = jax.tree.map(jnp.zeros_like, params["denoiser"]["conv_out"])
  key = jax.random.key(0)

  @jax.jit
  def invert_and_reconstruct(params, x):
    z = model.encode(params, key, x)
    return model.ddim_invert(params, model.space.to_model(x), z), model.reconstruct(params, key, x)

  x_t, x_hat = invert_and_reconstruct(params, x)
  abar_t = diffusion.alphas_cumprod("linear", model.diffusion_steps)[-1]
  np.testing.assert_allclose(x_t, np.sqrt(abar_t) * (2.0 * np.asarray(x) - 1.0), rtol=1e-5)
  assert x_hat.dtype == jnp.int32
  np.testing.assert_array_equal(x_hat, x)


@pytest.mark.parametrize("data_type, num_bins", [("discretised", 16), ("continuous", 0)])
def test_image_likelihoods_and_reconstructions(data_type, num_bins):
  cfg = _config(data_type)
  x = _rgb_images(BATCH, num_bins)
  key = jax.random.key(0)
  model = _model("vae", cfg, 3)
  params = _random_params(model, x.shape)
  loss, terms = jax.jit(model.loss)(params, key, {"image": x}, key)
  assert np.isfinite(float(loss)) and float(terms["recon"]) > 0.0
  x_hat = np.asarray(jax.jit(model.reconstruct)(params, key, x))
  assert x_hat.shape == x.shape and x_hat.dtype == np.float32
  assert np.abs(x_hat).max() <= 1.0 and np.unique(x_hat).size > 1
  if num_bins:
    np.testing.assert_allclose(x_hat, np.asarray(discretised.quantize(x_hat, num_bins)))
  out = jnp.zeros_like(x)
  log_p = model.log_likelihood(params, x, out)
  if num_bins:
    std = jnp.exp(params["log_std"])
    expected = discretised.log_prob(x, out, std, num_bins).sum(axis=(1, 2, 3))
  else:
    std = baselines.autoencoders.CONTINUOUS_STD
    expected = (-0.5 * (x / std) ** 2 - np.log(std * np.sqrt(2 * np.pi))).sum(axis=(1, 2, 3))
  np.testing.assert_allclose(log_p, expected, rtol=1e-5)


def test_data_space_maps():
  binary = baselines.BinarySpace()
  x = jnp.asarray([[0, 1]], jnp.int32).reshape(1, 1, 2, 1)
  np.testing.assert_array_equal(binary.to_model(x), [[[[-1.0], [1.0]]]])
  np.testing.assert_array_equal(binary.from_model(binary.to_model(x)), x)
  y = jnp.asarray([-1.7, -0.2, 0.33, 2.0]).reshape(1, 1, 4, 1)
  np.testing.assert_allclose(
    baselines.DiscretisedSpace(4).from_model(y).ravel(), [-0.75, -0.25, 0.25, 0.75]
  )
  np.testing.assert_allclose(
    baselines.ContinuousSpace().from_model(y).ravel(), [-1.0, -0.2, 0.33, 1.0], rtol=1e-6
  )
  with pytest.raises(ValueError, match="num_bins"):
    baselines.DiscretisedSpace(1)


@pytest.mark.parametrize(
  "flow, space",
  [
    (flows.DiscreteFlow(3.0, 2), baselines.BinarySpace()),
    (flows.DiscretisedFlow(0.02, 16), baselines.DiscretisedSpace(16)),
    (flows.ContinuousFlow(0.02), baselines.ContinuousSpace()),
  ],
)
def test_data_space_of_each_flow(flow, space):
  assert baselines.data_space(flow) == space


def test_baselines_refuse_more_than_two_classes():
  with pytest.raises(ValueError, match="binary discrete data only"):
    baselines.data_space(flows.DiscreteFlow(3.0, 5))


# ---------------------------------------------------------------------------------------------
# DDIM


def test_ddim_step_pair_is_exactly_invertible():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
  eps = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
  forward = diffusion.ddim_step(x, eps, 0.9, 0.3)
  np.testing.assert_allclose(diffusion.ddim_step(forward, eps, 0.3, 0.9), x, atol=1e-5)
  # To abar = 1 the step returns the predicted x0.
  x0_hat = (x - np.sqrt(0.1) * eps) / np.sqrt(0.9)
  np.testing.assert_allclose(diffusion.ddim_step(x, eps, 0.9, 1.0), x0_hat, rtol=1e-5)


@pytest.mark.parametrize("schedule", diffusion.SCHEDULES)
def test_ddim_inversion_then_decoding_reproduces_x0(schedule):
  """With the exact noise predictor of Gaussian data N(m, s^2), DDIM inversion follows the
  probability-flow map x0 -> x_T and decoding brings x0 back, up to a discretisation error that
  shrinks like 1 / n."""
  m, sd = 0.3, 0.5
  abar = diffusion.alphas_cumprod(schedule, 1000)
  abar_j = jnp.asarray(abar, jnp.float32)

  def eps_fn(x, step):  # E[eps | x_s] for x0 ~ N(m, sd^2)
    a = abar_j[step]
    return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * m) / (a * sd**2 + 1 - a)

  x0 = m + sd * jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  a_t = abar[-1]
  exact_t = np.sqrt(a_t) * m + np.sqrt(a_t * sd**2 + 1 - a_t) * (x0 - m) / sd
  errors = []
  for n in (25, 200):
    timesteps = diffusion.ddim_timesteps(1000, n)
    x_t = jax.jit(
      lambda x, ts=timesteps: diffusion.ddim_invert(eps_fn, x, abar=abar, timesteps=ts)
    )(x0)
    back = jax.jit(
      lambda x, ts=timesteps: diffusion.ddim_decode(eps_fn, x, abar=abar, timesteps=ts)
    )(x_t)
    errors.append((float(jnp.abs(x_t - exact_t).max()), float(jnp.abs(back - x0).max())))
  (invert_25, roundtrip_25), (invert_200, roundtrip_200) = errors
  assert invert_200 < 0.05 and roundtrip_200 < 0.05, errors
  assert invert_200 < invert_25 / 4 and roundtrip_200 < roundtrip_25 / 4, errors


def test_noise_schedules():
  linear = diffusion.alphas_cumprod("linear", 1000)
  np.testing.assert_allclose(linear[0], 1 - 1e-4)
  np.testing.assert_allclose(linear[-1], 4.04e-5, rtol=0.01)  # DDPM's abar_T
  cosine = diffusion.alphas_cumprod("cosine", 1000)
  for abar in (linear, cosine, diffusion.alphas_cumprod("linear", 50)):
    assert np.all(np.diff(abar) < 0) and 0 < abar[-1] < abar[0] < 1
  np.testing.assert_array_equal(diffusion.ddim_timesteps(1000, 4), [249, 499, 749, 999])
  np.testing.assert_array_equal(diffusion.ddim_timesteps(5, 5), np.arange(5))
  with pytest.raises(ValueError, match="sample_steps"):
    diffusion.ddim_timesteps(10, 11)
  with pytest.raises(ValueError, match="schedule"):
    diffusion.alphas_cumprod("quadratic", 10)


# ---------------------------------------------------------------------------------------------
# Construction and validation


def test_build_model_reads_the_experiment_config():
  cfg = _config(**{"model.beta": 2.5, "model.diffusion_steps": 50, "sampling.num_steps": 7})
  assert cfg.baseline == baselines.BaselineConfig(beta=2.5, diffusion_steps=50)
  beta_vae = registry.build_model(dataclasses.replace(cfg, model_kind="beta_vae"), 1)
  assert isinstance(beta_vae, baselines.Autoencoder) and beta_vae.kl_weight == 2.5
  assert beta_vae.net.image_shape == (SIZE, SIZE, 1)
  info = registry.build_model(dataclasses.replace(cfg, model_kind="infodiffusion"), 1)
  assert (info.diffusion_steps, info.sample_steps, info.variational) == (50, 7, True)
  assert (info.kl_weight, info.mmd_weight) == (cfg.objective.kl_weight, cfg.objective.mmd_weight)
  assert info.net.config.encoder == "vanilla"
  flow_model = registry.build_model(cfg, 1)
  assert type(flow_model).__name__ == "ParamReL" and flow_model.sample_steps == 7
  assert flow_model.image_shape == (SIZE, SIZE, 1)


def test_bad_settings_raise_value_errors():
  cfg = _config()
  with pytest.raises(ValueError, match="'vqvae'"):
    _model("vqvae", cfg, 1)
  no_latents = _config(**{"model.latent_dim": 0})
  with pytest.raises(ValueError, match="latent_dim"):
    _model("vae", no_latents, 1)
  with pytest.raises(ValueError, match="beta"):
    baselines.BaselineConfig(beta=0.0)
  with pytest.raises(ValueError, match="diffusion_steps"):
    baselines.BaselineConfig(diffusion_steps=0)
  with pytest.raises(ValueError, match="sample_steps"):
    _model("diffae", cfg, 1, sample_steps=20, diffusion_steps=10)
  model = _model("ae", cfg, 1)
  with pytest.raises(ValueError, match="data_shape"):
    model.init(jax.random.key(0), (2, SIZE, SIZE, 3))
