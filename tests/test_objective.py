"""The ParamReL objective's options: latent weighting, posterior form, MMD scale (Eq. 6)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramrel_jax.bfn import flows
from paramrel_jax.bfn.flows import make_flow
from paramrel_jax.bfn.mixed import MixedFlow
from paramrel_jax.methods.paramrel import objective

SHAPE = (1, 4, 4, 1)  # one example: the MMD (a batch statistic) is left out


def _flow(data_type):
  return make_flow(data_type, sigma1=0.02, beta1=3.0, num_bins=16, num_classes=2)


def _data(flow):
  rng = np.random.default_rng(0)
  if flow.data_type == "discrete":
    return jnp.asarray(rng.integers(0, 2, SHAPE), jnp.int32)
  x = rng.uniform(-1.0, 1.0, SHAPE)
  if flow.data_type == "discretised":
    x = np.round((x + 1) / 2 * 15) / 15 * 2 - 1
  return jnp.asarray(x, jnp.float32)


def _linear_nets(flow):
  """encode: mean = mean(e) * w, logvar = -2; decode: net_in + (z @ v) per pixel, C * P outputs."""
  out = SHAPE[-1] * flow.params_per_dim

  def encode(params, e, t):
    mean = jnp.mean(e, axis=(1, 2, 3))[:, None] * params["w"][None, :]
    return mean, jnp.full_like(mean, -2.0)

  def decode(params, net_in, z, t):
    shift = (z @ params["v"])[:, None, None, :]
    return jnp.tile(net_in[..., :1], (1, 1, 1, out)) + shift

  params = {"w": jnp.array([0.7, -0.4]), "v": jnp.array([[0.3] * out, [-0.5] * out])}
  return encode, decode, params


def _linear_loss(key, x, flow, cfg, params):
  """paramrel_loss of x with the networks of `_linear_nets` at params, the encoder on the data."""
  encode, decode, _ = _linear_nets(flow)
  return objective.paramrel_loss(
    key,
    x,
    flow=flow,
    encode=lambda e, t: encode(params, e, t),
    decode=lambda n, z, t: decode(params, n, z, t),
    cfg=cfg,
    encoder_input_mode="data",
  )


def _grads(flow, cfg, key, x):
  encode, decode, params = _linear_nets(flow)

  def loss(p):
    terms, _ = _linear_loss(key, x, flow, cfg, p)
    return terms.loss.sum(), terms

  return jax.grad(loss, has_aux=True)(params)


@pytest.mark.parametrize("data_type", ["discrete", "continuous", "discretised"])
def test_flat_weighting_rescales_only_the_encoder_gradient(data_type):
  flow, key = _flow(data_type), jax.random.key(3)
  x = _data(flow)
  elbo = objective.ObjectiveConfig(kl_weight=0.0, mmd_weight=0.0)
  flat = objective.ObjectiveConfig(kl_weight=0.0, mmd_weight=0.0, latent_weighting="flat")
  g_elbo, terms = _grads(flow, elbo, key, x)
  g_flat, terms_flat = _grads(flow, flat, key, x)
  np.testing.assert_array_equal(terms.loss, terms_flat.loss)  # the forward pass is unchanged
  np.testing.assert_allclose(g_flat["v"], g_elbo["v"], rtol=1e-6)  # the output network's
  scale = objective.latent_gradient_scale(flow, terms.t)[0]
  assert not np.isclose(float(scale), 1.0)
  np.testing.assert_allclose(g_flat["w"], scale * g_elbo["w"], rtol=1e-5)


@pytest.mark.parametrize("data_type", ["discrete", "continuous"])
def test_latent_gradient_scale_gives_every_time_the_mean_weight(data_type):
  flow = _flow(data_type)
  t = jnp.array([0.1, 0.5, 0.9])
  scale = objective.latent_gradient_scale(flow, t)
  # scale * weight(t) is the same for every t: the mean of the weight over U[0, 1]
  np.testing.assert_allclose(scale * flow.ctime_weight(t), flow.mean_ctime_weight(), rtol=1e-5)
  grid = jnp.linspace(0.0, 1.0, 200_001)
  np.testing.assert_allclose(jnp.mean(flow.ctime_weight(grid)), flow.mean_ctime_weight(), rtol=1e-4)
  if data_type == "discrete":
    np.testing.assert_allclose(scale, 0.5 / t, rtol=1e-6)  # K beta1 t against K beta1 / 2


@pytest.mark.parametrize("data_type", ["discrete", "continuous"])
def test_latent_gradient_scale_is_float32_under_x64(data_type):
  """The factor multiplies float32 gradients: float64 times (x64) must not promote them."""
  with jax.enable_x64(True):
    scale = objective.latent_gradient_scale(_flow(data_type), jnp.array([0.1, 0.5], jnp.float64))
  assert scale.dtype == jnp.float32 and scale.shape == (2,)


def test_ctime_weight_is_the_weight_of_the_ctime_loss():
  flow = _flow("discrete")
  x = jnp.zeros((1, 2, 2, 1), jnp.int32)
  logits = jnp.full((1, 2, 2, 1), 0.3)
  out = flow.output_dist(logits, flow.prior(x.shape), jnp.array([0.4]))
  sq_error = jnp.sum(jnp.square(jnp.array([1.0, 0.0]) - out.probs), axis=-1).sum()
  np.testing.assert_allclose(
    flow.ctime_loss(x, out, jnp.array([0.4]))[0], flow.ctime_weight(0.4) * sq_error, rtol=1e-6
  )


def test_deterministic_posterior_uses_the_mean_and_has_no_rate():
  flow = _flow("discrete")
  x = _data(flow)
  encode, decode, params = _linear_nets(flow)
  cfg = objective.ObjectiveConfig(kl_weight=1.0, mmd_weight=0.0, posterior="deterministic")
  terms, aux = _linear_loss(jax.random.key(0), x, flow, cfg, params)
  np.testing.assert_array_equal(aux["z"], aux["mean"])
  np.testing.assert_array_equal(terms.rate, 0.0)
  np.testing.assert_allclose(terms.loss, terms.bfn)


def test_mmd_weight_scales_with_the_data_dimensions():
  cfg = objective.ObjectiveConfig(mmd_weight=0.5, mmd_scale="data_dims")
  assert objective.mmd_weight(cfg, (8, 28, 28, 1)) == 0.5 * 784
  assert objective.mmd_weight(cfg, (8, 64, 64, 3)) == 0.5 * 64 * 64 * 3
  legacy = objective.ObjectiveConfig(mmd_weight=0.5, mmd_scale="none")
  assert objective.mmd_weight(legacy, (8, 64, 64, 3)) == 0.5
  assert math.isclose(objective.mmd_weight(cfg, (2, 3, 5, 7)), 0.5 * 105)


def test_gaussian_kl_full_is_the_closed_form():
  rng = np.random.default_rng(1)
  batch, latent = 4, 3
  mean, logvar, prior_mean = (rng.normal(size=(batch, latent)).astype(np.float32) for _ in range(3))
  root = rng.normal(size=(batch, latent, latent))
  cov = (root @ np.swapaxes(root, 1, 2) + np.eye(latent)).astype(np.float32)
  got = objective.gaussian_kl_full(mean, logvar, prior_mean, cov)
  for b in range(batch):
    inverse, diff = np.linalg.inv(cov[b].astype(np.float64)), prior_mean[b] - mean[b]
    expected = 0.5 * (
      np.trace(inverse @ np.diag(np.exp(logvar[b])))
      + diff @ inverse @ diff
      - latent
      + np.linalg.slogdet(cov[b])[1]
      - logvar[b].sum()
    )
    np.testing.assert_allclose(got[b], expected, rtol=1e-4)
  standard = np.broadcast_to(np.eye(latent, dtype=np.float32), cov.shape)
  np.testing.assert_allclose(
    objective.gaussian_kl_full(mean, logvar, 0 * mean, standard),
    objective.gaussian_kl(mean, logvar),
    rtol=1e-5,
  )


def test_time_power_draws_early_times_more_often():
  key = jax.random.key(5)
  u, _ = objective.sample_time(key, 20_000, 0)
  t, i = objective.sample_time(key, 20_000, 0, power=2.0)
  np.testing.assert_allclose(t, u**2, rtol=1e-6)  # the same u, squared
  np.testing.assert_array_equal(i, 0)
  assert abs(float(t.mean()) - 1 / 3) < 0.01 and abs(float((t < 0.25).mean()) - 0.5) < 0.01
  # The loss draws its times so: the same key and x, the time of power 2 is the square.
  flow = _flow("discrete")
  encode, decode, params = _linear_nets(flow)
  times = {}
  for power in (1.0, 2.0):
    cfg = objective.ObjectiveConfig(mmd_weight=0.0, time_power=power)
    terms, _ = _linear_loss(jax.random.key(0), _data(flow), flow, cfg, params)
    times[power] = terms.t
  np.testing.assert_allclose(times[2.0], times[1.0] ** 2, rtol=1e-6)
  # The n-step loss: step i = floor(n u^2) + 1, each of 1..n possible, the early ones more often.
  t, i = objective.sample_time(key, 20_000, 10, power=2.0)
  np.testing.assert_array_equal(i, np.floor(10 * np.asarray(u) ** 2).astype(np.int32) + 1)
  np.testing.assert_allclose(t, (np.asarray(i) - 1) / 10)
  counts = np.bincount(np.asarray(i), minlength=11)[1:]
  assert counts.min() > 0 and counts[0] > 5 * counts[-1]  # P(1) = 0.32, P(10) = 0.05


def test_stratified_times_cover_the_batch_evenly_and_stay_uniform():
  batch = 16
  keys = jax.random.split(jax.random.key(3), 2_000)
  draw = lambda stratified: jax.vmap(  # noqa: E731  (B,) times per key
    lambda k: objective.sample_time(k, batch, 0, stratified=stratified)[0]
  )
  draws = np.asarray(draw(True)(keys))
  u = draws[:200]
  # One u per stratum [b / B, (b + 1) / B), in batch order, with one shared offset.
  np.testing.assert_array_equal(np.floor(u * batch), np.broadcast_to(np.arange(batch), u.shape))
  np.testing.assert_allclose(
    u - np.arange(batch) / batch, np.broadcast_to(u[:, :1], u.shape), atol=1e-6
  )
  # Over keys each u is U[0, 1) (mean 1/2, variance 1/12), and t = u ** p as for iid times.
  assert abs(draws.mean() - 0.5) < 0.01 and abs(draws.var() - 1 / 12) < 0.005
  t, _ = objective.sample_time(keys[0], batch, 0, power=2.0, stratified=True)
  np.testing.assert_allclose(t, u[0] ** 2, rtol=1e-6)
  # The batch mean of t varies far less than with iid times: the point of the sampler.
  iid = np.asarray(draw(False)(keys[:200]))
  assert u.mean(1).std() < 0.5 * iid.mean(1).std()  # 1 / sqrt(B) of it in expectation
  # The n-step loss: steps floor(n u) + 1, every step of 1..n once when B = n.
  _, i = objective.sample_time(keys[1], 10, 10, stratified=True)
  np.testing.assert_array_equal(i, np.arange(1, 11))
  # The loss draws its times so.
  flow = _flow("discrete")
  encode, decode, params = _linear_nets(flow)
  cfg = objective.ObjectiveConfig(mmd_weight=0.0, time_sampling="stratified")
  x = _batch(flow)  # a batch of 6: one time in each sixth of [0, 1)
  terms, _ = _linear_loss(jax.random.key(0), x, flow, cfg, params)
  np.testing.assert_array_equal(np.floor(np.asarray(terms.t) * len(x)), np.arange(len(x)))
  # and the time power applies to them
  cfg = objective.ObjectiveConfig(mmd_weight=0.0, time_sampling="stratified", time_power=2.0)
  squared, _ = _linear_loss(jax.random.key(0), x, flow, cfg, params)
  np.testing.assert_allclose(squared.t, np.asarray(terms.t) ** 2, rtol=1e-6)


@pytest.mark.parametrize(
  "field, value",
  [
    ("latent_weighting", "late"),
    ("posterior", "delta"),
    ("mmd_scale", "pixels"),
    ("time_power", 0.0),
    ("time_power", "2"),
    ("time_sampling", "sobol"),
    ("tc_weight", -1.0),
    ("prior_recon_weight", -0.5),
    ("prior_recon_time", 0.0),
  ],
)
def test_bad_options_name_the_key(field, value):
  with pytest.raises(ValueError, match=f"objective.{field}"):
    objective.ObjectiveConfig(**{field: value})


def _batch(flow, batch=6):
  rng = np.random.default_rng(2)
  shape = (batch,) + SHAPE[1:]
  if flow.data_type == "discrete":
    return jnp.asarray(rng.integers(0, 2, shape), jnp.int32)
  return jnp.asarray(rng.uniform(-1.0, 1.0, shape), jnp.float32)


@pytest.mark.parametrize("loss_steps", [0, 10])
def test_paramrel_loss_is_the_bfn_term_plus_the_weighted_rate_and_mmd(loss_steps):
  """Eq. 6: loss = L_bfn(x | z) + kl_weight KL[q || N(0, I)] + mmd_weight MMD, term by term."""
  flow = _flow("continuous")
  x = _batch(flow)
  encode, decode, params = _linear_nets(flow)
  cfg = objective.ObjectiveConfig(
    kl_weight=0.3, mmd_weight=0.2, mmd_scale="none", loss_steps=loss_steps, loss_samples=2
  )
  terms, aux = _linear_loss(jax.random.key(3), x, flow, cfg, params)
  mean = np.asarray(aux["mean"], np.float64)  # logvar is -2 everywhere
  np.testing.assert_allclose(
    terms.rate, 0.5 * np.sum(mean**2 + np.exp(-2.0) - 1 + 2, -1), rtol=1e-5
  )
  out = flow.output_dist(decode(params, aux["net_in"], aux["z"], aux["t"]), aux["theta"], aux["t"])
  if loss_steps:
    np.testing.assert_allclose(aux["t"], (aux["i"] - 1) / loss_steps)
    bfn = flow.dtime_loss(aux["key"], x, out, aux["i"], loss_steps, 2)
  else:
    np.testing.assert_array_equal(aux["i"], 0)
    bfn = flow.ctime_loss(x, out, aux["t"])
  np.testing.assert_allclose(terms.bfn, bfn, rtol=1e-5)
  assert np.all(terms.mmd == terms.mmd[0]) and terms.mmd[0] != 0
  np.testing.assert_allclose(terms.loss, terms.bfn + 0.3 * terms.rate + 0.2 * terms.mmd, rtol=1e-6)
  np.testing.assert_allclose(terms.t, aux["t"])
  means = terms.means()
  for name in ("loss", "bfn", "rate", "mmd"):
    np.testing.assert_allclose(means[name], np.mean(getattr(terms, name)), rtol=1e-6)
  assert not np.allclose(aux["z"], aux["mean"])  # z is drawn, not the mean


def _total_correlation_brute_force(z, mean, logvar):
  """The same estimate with explicit loops over examples and dimensions (numpy, float64)."""
  z, mean, var = (np.asarray(a, np.float64) for a in (z, mean, np.exp(logvar)))
  m, dims = z.shape

  def log_normal(value, mu, v):
    return -0.5 * (np.log(2 * np.pi * v) + (value - mu) ** 2 / v)

  total = 0.0
  for i in range(m):
    joint = [sum(log_normal(z[i, d], mean[j, d], var[j, d]) for d in range(dims)) for j in range(m)]
    marginal = sum(
      np.logaddexp.reduce([log_normal(z[i, d], mean[j, d], var[j, d]) for j in range(m)])
      for d in range(dims)
    )
    total += np.logaddexp.reduce(joint) - marginal
  return total / m


def test_total_correlation_matches_a_brute_force_sum_and_vanishes_for_independent_codes():
  rng = np.random.default_rng(0)
  mean, logvar = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) - 1.0
  z = mean + np.exp(0.5 * logvar) * rng.normal(size=(6, 3))
  got = float(
    objective.total_correlation(*(jnp.asarray(a, jnp.float32) for a in (z, mean, logvar)))
  )
  np.testing.assert_allclose(got, _total_correlation_brute_force(z, mean, logvar), rtol=1e-4)
  # Correlated codes (every unit a copy of one factor) score far above independent ones.
  base = rng.normal(size=(256, 1))
  correlated = np.repeat(base, 3, axis=1)
  independent = rng.normal(size=(256, 3))
  small = np.full((256, 3), np.log(0.01))

  def tc(codes):
    return float(
      objective.total_correlation(jnp.asarray(codes), jnp.asarray(codes), jnp.asarray(small))
    )

  assert tc(correlated) > tc(independent) + 1.0  # about 2.4 nats apart here


def test_the_total_correlation_enters_the_loss_at_its_weight():
  """tc_weight adds tc_weight * total_correlation(z, mean, logvar) of the batch's own draws; at 0
  the loss and its term are those without it."""
  flow = _flow("continuous")
  x = _batch(flow)
  _, _, params = _linear_nets(flow)
  base = objective.ObjectiveConfig(kl_weight=0.3, mmd_weight=0.2, mmd_scale="none")
  with_tc = dataclasses.replace(base, tc_weight=2.5)
  plain, _ = _linear_loss(jax.random.key(4), x, flow, base, params)
  terms, aux = _linear_loss(jax.random.key(4), x, flow, with_tc, params)
  np.testing.assert_array_equal(plain.tc, 0.0)
  logvar = _linear_nets(flow)[0](params, flow.data_input(x), aux["t"])[1]
  expected = objective.total_correlation(aux["z"], aux["mean"], logvar)
  assert np.all(terms.tc == terms.tc[0]) and terms.tc[0] != 0
  np.testing.assert_allclose(terms.tc[0], expected, rtol=1e-6)
  np.testing.assert_allclose(terms.loss, plain.loss + 2.5 * terms.tc, rtol=1e-6)
  np.testing.assert_allclose(terms.means()["tc"], terms.tc[0], rtol=1e-6)


@pytest.mark.parametrize("data_type", ["continuous", "discretised", "discrete"])
def test_the_prior_reconstruction_decodes_z_alone_at_its_weight(data_type):
  """prior_recon_weight adds weight * L^inf(x | theta_0, z; t0): the BFN term at t0 with the
  network reading the prior theta_0, so it moves with z (the output network decodes z), and with
  z fixed (the deterministic posterior of the linear encoder, which reads neither t nor the key)
  it is the same whatever t and theta_t the key draws."""
  flow = _flow(data_type)
  x = _batch(flow)
  encode, decode, params = _linear_nets(flow)
  base = objective.ObjectiveConfig(posterior="deterministic", kl_weight=0.0, mmd_weight=0.0)
  weighted = dataclasses.replace(base, prior_recon_weight=1.5, prior_recon_time=0.2)
  plain, _ = _linear_loss(jax.random.key(5), x, flow, base, params)
  terms, aux = _linear_loss(jax.random.key(5), x, flow, weighted, params)
  np.testing.assert_array_equal(plain.prior_recon, 0.0)
  np.testing.assert_allclose(terms.loss, plain.loss + 1.5 * terms.prior_recon, rtol=1e-6)
  np.testing.assert_allclose(terms.means()["prior_recon"], terms.prior_recon.mean(), rtol=1e-6)

  def at_prior(z):
    t0 = jnp.full((x.shape[0],), 0.2)
    theta0 = flow.prior(x.shape)
    out = flow.output_dist(decode(params, flow.net_input(theta0), z, t0), theta0, t0)
    return flow.ctime_loss(x, out, t0)

  np.testing.assert_allclose(terms.prior_recon, at_prior(aux["z"]), rtol=1e-6)
  other, other_aux = _linear_loss(jax.random.key(6), x, flow, weighted, params)
  assert not np.allclose(other_aux["t"], aux["t"]) and not np.allclose(other.bfn, terms.bfn)
  np.testing.assert_allclose(other.prior_recon, terms.prior_recon, rtol=1e-6)
  moved = at_prior(aux["z"] + 0.5)  # it reads z: every example's term moves with its code
  assert np.all(np.isfinite(moved)) and np.all(np.abs(moved - terms.prior_recon) > 1e-4)


@pytest.mark.parametrize("data_type", ["continuous", "discretised", "discrete"])
def test_the_prior_reconstruction_trains_the_encoder(data_type):
  """The term alone gives the encoder's parameters a gradient (through z)."""
  flow = _flow(data_type)
  x = _batch(flow)
  cfg = objective.ObjectiveConfig(
    posterior="deterministic", kl_weight=0.0, mmd_weight=0.0, prior_recon_weight=1.0
  )
  encode, decode, params = _linear_nets(flow)

  def term(p):
    terms, _ = _linear_loss(jax.random.key(7), x, flow, cfg, p)
    return terms.prior_recon.sum()

  grads = jax.grad(term)(params)
  assert np.all(np.abs(np.asarray(grads["w"])) > 1e-6)


def test_the_total_correlation_needs_a_gaussian_posterior():
  with pytest.raises(ValueError, match="objective.tc_weight=1.0 needs objective.posterior"):
    objective.ObjectiveConfig(tc_weight=1.0, posterior="deterministic", kl_weight=0.0)


def test_the_mmd_is_left_out_without_latents_or_with_one_example():
  flow = _flow("continuous")
  cfg = objective.ObjectiveConfig(kl_weight=0.0, mmd_weight=1.0, mmd_scale="none")
  for batch, latent in ((1, 2), (6, 0)):
    x = _batch(flow, batch)
    zeros = jnp.zeros((batch, latent))
    terms, _ = objective.paramrel_loss(
      jax.random.key(0),
      x,
      flow=flow,
      encode=lambda e, t, z=zeros: (z, z),
      decode=lambda n, z, t: n[..., :1],
      cfg=cfg,
      encoder_input_mode="data",
    )
    np.testing.assert_array_equal(terms.mmd, 0.0)
    np.testing.assert_allclose(terms.loss, terms.bfn)


@pytest.mark.parametrize(("batch", "latent", "kernel"), [(6, 1, "rbf"), (2, 2, "imq")])
def test_the_mmd_term_from_one_latent_or_two_examples_uses_the_configured_kernel(
  batch, latent, kernel
):
  """The smallest codes that have an MMD, one latent unit or two examples: the term is the MMD of
  the drawn z against the loss's prior draw, with objective.mmd_kernel."""
  flow = _flow("continuous")
  x = _batch(flow, batch)
  mean = jnp.linspace(-1.0, 1.0, batch * latent).reshape(batch, latent)
  cfg = objective.ObjectiveConfig(
    kl_weight=0.0, mmd_weight=1.0, mmd_scale="none", mmd_kernel=kernel
  )
  key = jax.random.key(6)
  terms, aux = objective.paramrel_loss(
    key,
    x,
    flow=flow,
    encode=lambda e, t: (mean, jnp.full_like(mean, -4.0)),
    decode=lambda n, z, t: n[..., :1],
    cfg=cfg,
    encoder_input_mode="data",
  )
  k_prior = jax.random.split(key, 6)[3]
  prior = jax.random.normal(k_prior, (batch, latent), jnp.float32)
  expected = objective.mmd(aux["z"], prior, kernel)
  assert float(expected) != 0.0
  np.testing.assert_allclose(terms.mmd, np.full(batch, expected), rtol=1e-6)


def test_flat_both_weights_the_bfn_term_of_the_loss():
  """latent_weighting 'flat_both': the trained loss weights the BFN term by the same factor as the
  encoder's gradient; the reported bfn term stays the unweighted one."""
  flow = _flow("continuous")
  x = _batch(flow)
  encode, decode, params = _linear_nets(flow)
  key = jax.random.key(3)
  plain, _ = _linear_loss(key, x, flow, objective.ObjectiveConfig(mmd_weight=0.0), params)
  cfg = objective.ObjectiveConfig(mmd_weight=0.0, latent_weighting="flat_both")
  terms, _ = _linear_loss(key, x, flow, cfg, params)
  np.testing.assert_array_equal(terms.bfn, plain.bfn)
  scale = objective.latent_gradient_scale(flow, terms.t)
  assert not np.allclose(scale, 1.0)
  np.testing.assert_allclose(terms.loss, terms.bfn * scale + cfg.kl_weight * terms.rate, rtol=1e-6)


def test_gaussian_kl_and_reparameterise_follow_the_closed_forms():
  mean = jnp.array([[0.5, -1.0], [0.0, 2.0]])
  logvar = jnp.log(jnp.array([[0.25, 1.0], [4.0, 0.5]]))
  var = np.exp(np.asarray(logvar, np.float64))
  np.testing.assert_allclose(
    objective.gaussian_kl(mean, logvar),
    0.5 * np.sum(np.square(mean) + var - 1 - np.log(var), -1),
    rtol=1e-6,
  )
  z = objective.reparameterise(
    jax.random.key(0),
    jnp.broadcast_to(mean[0], (20_000, 2)),
    jnp.broadcast_to(logvar[0], (20_000, 2)),
  )
  np.testing.assert_allclose(np.mean(z, 0), mean[0], atol=5 * 1.0 / np.sqrt(20_000))
  np.testing.assert_allclose(np.std(z, 0), np.sqrt(var[0]), rtol=0.03)
  # The draw itself: z = mean + sigma * eps with eps the key's standard normals, in mean's dtype
  # (also under x64), so one key gives one z everywhere (encode, the loss, reverse sampling).
  key = jax.random.key(1)
  eps = jax.random.normal(key, mean.shape, jnp.float32)
  z = objective.reparameterise(key, mean, logvar)
  np.testing.assert_allclose(z, mean + np.sqrt(var) * eps, rtol=1e-6)
  with jax.enable_x64(True):
    assert objective.reparameterise(key, mean, logvar).dtype == jnp.float32


@pytest.mark.parametrize("kind", ["rbf", "imq"])
def test_kernels_are_the_wae_kernels_at_scale_two_l(kind):
  rng = np.random.default_rng(4)
  a, b = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
  sq = ((a[:, None] - b[None]) ** 2).sum(-1)
  want = np.exp(-sq / 10) if kind == "rbf" else 10 / (10 + sq)
  np.testing.assert_allclose(
    objective._kernel(jnp.asarray(a), jnp.asarray(b), kind), want, rtol=1e-5
  )


def test_scale_gradient_keeps_the_value_and_scales_the_gradient():
  x = jnp.arange(6.0).reshape(2, 3)
  scale = jnp.array([2.0, -0.5])
  np.testing.assert_array_equal(objective.scale_gradient(x, scale), x)
  weights = jnp.arange(6.0).reshape(2, 3) + 1
  grad = jax.grad(lambda v: jnp.sum(objective.scale_gradient(v, scale) * weights))(x)
  np.testing.assert_allclose(grad, weights * np.array([[2.0], [-0.5]]))


def test_latent_diagnostics_measure_the_shuffle_gap_and_the_active_dimensions():
  """A decoder blind to z has gap 0; one that reads z a positive gap; dims counted by variance."""
  flow = _flow("continuous")
  x = _batch(flow)
  encode, decode, params = _linear_nets(flow)
  cfg = objective.ObjectiveConfig(kl_weight=0.0, mmd_weight=0.0)
  terms, aux = _linear_loss(jax.random.key(5), x, flow, cfg, params)
  blind = {"w": params["w"], "v": 0 * params["v"]}
  terms_blind, aux_blind = _linear_loss(jax.random.key(5), x, flow, cfg, blind)
  diag_blind = objective.latent_diagnostics(
    x, terms_blind, aux_blind, flow=flow, decode=lambda n, z, t: decode(blind, n, z, t), cfg=cfg
  )
  assert float(diag_blind["z_shuffle_gap"]) == 0.0
  diag = objective.latent_diagnostics(
    x, terms, aux, flow=flow, decode=lambda n, z, t: decode(params, n, z, t), cfg=cfg
  )
  z_rolled = jnp.roll(aux["z"], 1, axis=0)
  out = flow.output_dist(decode(params, aux["net_in"], z_rolled, aux["t"]), aux["theta"], aux["t"])
  gap = np.mean(flow.ctime_loss(x, out, aux["t"]) - terms.bfn)
  np.testing.assert_allclose(diag["z_shuffle_gap"], gap, rtol=1e-5)
  assert abs(gap) > 1e-3  # this decoder reads z (untrained, so the sign is arbitrary)
  # per-dimension variances over the batch of 6: 0, 0.0025, 0.0225, 1
  signs = jnp.array([1.0, -1.0] * 3)[:, None]
  spread = {"mean": signs * jnp.array([0.0, 0.05, 0.15, 1.0])}
  for threshold, active in ((0.01, 2), (0.001, 3), (0.05, 1)):
    got = objective.latent_diagnostics(
      x,
      terms,
      {**aux, **spread},
      flow=flow,
      decode=lambda n, z, t: decode(params, n, z, t),
      cfg=cfg,
      active_threshold=threshold,
    )
    assert int(got["active_dims"]) == active, threshold


def test_latent_diagnostics_default_threshold_and_the_n_step_loss():
  """The default threshold is 0.01 and a dimension exactly at the threshold is not active; under
  the n-step loss (Monte-Carlo for discrete data) the shuffled loss reuses the loss's key and
  steps, so a decoder blind to z has a gap of exactly 0."""
  flow = _flow("discrete")
  x = _batch(flow)
  encode, decode, params = _linear_nets(flow)
  blind = {"w": params["w"], "v": 0 * params["v"]}
  cfg = objective.ObjectiveConfig(kl_weight=0.0, mmd_weight=0.0, loss_steps=10, loss_samples=2)
  terms, aux = _linear_loss(jax.random.key(6), x, flow, cfg, blind)

  def diagnostics(**kwargs):
    return objective.latent_diagnostics(
      x,
      terms,
      {**aux, **kwargs.pop("aux", {})},
      flow=flow,
      decode=lambda n, z, t: decode(blind, n, z, t),
      cfg=cfg,
      **kwargs,
    )

  assert np.all(np.asarray(aux["i"]) >= 1)
  assert float(diagnostics()["z_shuffle_gap"]) == 0.0
  signs = jnp.array([1.0, -1.0] * 3)[:, None]
  spread = {"mean": signs * jnp.array([0.0, 0.05, 0.15, 1.0])}  # variances 0, 0.0025, 0.0225, 1
  assert int(diagnostics(aux=spread)["active_dims"]) == 2
  at_threshold = {"mean": signs * jnp.array([0.5, 0.0])}  # variance exactly 0.25
  assert int(diagnostics(aux=at_threshold, active_threshold=0.25)["active_dims"]) == 0


def test_latent_diagnostics_shuffled_loss_is_float32_under_x64():
  """The shuffled decoder output is cast to float32, the flow math's dtype: a bfloat16 network
  under x64 gives a float32 gap, not a float64 one."""
  flow = _flow("continuous")
  x = _batch(flow)
  encode, decode, params = _linear_nets(flow)
  cfg = objective.ObjectiveConfig(kl_weight=0.0, mmd_weight=0.0)
  terms, aux = _linear_loss(jax.random.key(5), x, flow, cfg, params)
  with jax.enable_x64(True):
    diag = objective.latent_diagnostics(
      x,
      terms,
      aux,
      flow=flow,
      decode=lambda n, z, t: decode(params, n, z, t).astype(jnp.bfloat16),
      cfg=cfg,
    )
  assert diag["z_shuffle_gap"].dtype == jnp.float32


def test_sample_time_defaults_to_iid_float32_times_under_x64_too():
  """The default draw is iid (the key's own uniforms); times are float32 and steps int32 in
  continuous and n-step time, iid or stratified, also under x64."""
  key = jax.random.key(8)
  t, _ = objective.sample_time(key, 5, 0)
  np.testing.assert_array_equal(t, jax.random.uniform(key, (5,), jnp.float32))
  with jax.enable_x64(True):
    for loss_steps in (0, 10):
      for stratified in (False, True):
        t, i = objective.sample_time(key, 5, loss_steps, stratified=stratified)
        assert (t.dtype, i.dtype) == (jnp.float32, jnp.int32), (loss_steps, stratified)


def test_stratified_times_stay_below_one(monkeypatch):
  """An offset just below 1 rounds the last stratum's (offset + B - 1) / B up to 1 in float32; the
  sampler clips it to the largest float32 below 1, so t = 1 (a flow with no noise) never comes."""
  below_one = np.nextafter(np.float32(1), np.float32(0))
  monkeypatch.setattr(jax.random, "uniform", lambda key, shape, dtype: jnp.full(shape, below_one))
  t, _ = objective.sample_time(jax.random.key(0), 3, 0, stratified=True)
  assert float(jnp.float32(below_one) + 2) / 3 == 1.0  # the rounding the clip catches
  assert t.dtype == jnp.float32 and float(t[-1]) == below_one and float(t.max()) < 1.0
  # n steps: the last stratum is step n
  _, i = objective.sample_time(jax.random.key(0), 3, 10, stratified=True)
  np.testing.assert_array_equal(i, [4, 7, 10])


def test_iid_steps_of_the_n_step_loss_are_uniform_on_one_to_n():
  """power 1, iid: i ~ U{1..n} (every step, none outside), t = (i - 1) / n."""
  t, i = objective.sample_time(jax.random.key(2), 20_000, 10)
  counts = np.bincount(np.asarray(i), minlength=12)
  assert counts[0] == counts[11] == 0 and np.all(np.abs(counts[1:11] / 20_000 - 0.1) < 0.01)
  np.testing.assert_allclose(t, (np.asarray(i) - 1) / 10)


@pytest.mark.parametrize("data_type", ["discrete", "discretised"])
def test_bfn_loss_of_n_steps_draws_the_configured_sender_samples(data_type):
  """The n-step loss of discrete and discretised data is a Monte-Carlo estimate: bfn_loss passes
  loss_samples on (3 draws, not the flow's default of 1)."""
  flow = _flow(data_type)
  x = _batch(flow) if data_type == "discrete" else _data(flow)
  theta = flow.prior(x.shape)
  t, i = jnp.full((len(x),), 0.3), jnp.full((len(x),), 4)
  net_out = jnp.zeros(x.shape[:-1] + (x.shape[-1] * flow.params_per_dim,))
  cfg = objective.ObjectiveConfig(loss_steps=10, loss_samples=3)
  key = jax.random.key(9)
  got = objective.bfn_loss(key, flow, x, net_out, theta, t, i, cfg)
  out = flow.output_dist(net_out, theta, t)
  np.testing.assert_allclose(got, flow.dtime_loss(key, x, out, i, 10, 3), rtol=1e-6)
  assert not np.allclose(got, flow.dtime_loss(key, x, out, i, 10, 1), rtol=1e-3)


def test_encoder_mask_hides_record_cells_from_the_encoder_only():
  """objective.encoder_mask > 0: the encoder reads the record with a fraction of its cells hidden
  (`MixedFlow.hide` with the encoder's key), the flow and the BFN term keep every cell."""
  flow = MixedFlow(
    (("a", flows.ContinuousFlow(0.02, 16)), ("b", flows.DiscreteFlow(1.5, 3)))
    + tuple((f"c{k}", flows.ContinuousFlow(0.02, 16)) for k in range(6))
  )
  rng = np.random.default_rng(3)
  x = {name: jnp.asarray(rng.uniform(-1, 1, (8, 1)), jnp.float32) for name in flow.names}
  x["b"] = jnp.asarray(rng.integers(0, 3, (8, 1)), jnp.int32)
  seen = []

  def encode(e, t):
    seen.append(e)
    return jnp.zeros((8, 2)), jnp.zeros((8, 2))

  def loss(mask):
    cfg = objective.ObjectiveConfig(mmd_weight=0.0, encoder_mask=mask)
    return objective.paramrel_loss(
      jax.random.key(1),
      x,
      flow=flow,
      encode=encode,
      decode=lambda n, z, t: jnp.zeros((8, flow.output_channels)),
      cfg=cfg,
      encoder_input_mode="data",
    )[0]

  full = loss(0.0)
  np.testing.assert_array_equal(seen[-1], flow.data_input(x))
  masked = loss(0.5)
  k_enc = jax.random.split(jax.random.key(1), 6)[5]
  hidden = flow.hide(jax.random.fold_in(k_enc, 1), x, 0.5)
  np.testing.assert_array_equal(seen[-1], flow.data_input(hidden))
  assert not np.array_equal(seen[-1], seen[0])  # some cells were hidden
  np.testing.assert_array_equal(masked.bfn, full.bfn)  # the BFN term sees the whole record


@pytest.mark.parametrize("posterior", ["gaussian", "deterministic"])
def test_paramrel_loss_is_float32_under_x64_with_bfloat16_networks(posterior):
  """Networks in bfloat16, x64 on: the posterior, the network output and every loss term are
  cast to float32, the flow math's dtype (float64 would be a silent x64 promotion)."""
  flow = _flow("continuous")
  x = _batch(flow)
  encode, decode, params = _linear_nets(flow)
  cfg = objective.ObjectiveConfig(mmd_weight=0.1, posterior=posterior)
  with jax.enable_x64(True):
    terms, aux = objective.paramrel_loss(
      jax.random.key(3),
      x,
      flow=flow,
      encode=lambda e, t: tuple(a.astype(jnp.bfloat16) for a in encode(params, e, t)),
      decode=lambda n, z, t: decode(params, n, z, t).astype(jnp.bfloat16),
      cfg=cfg,
      encoder_input_mode="data",
    )
  for name in ("loss", "bfn", "rate", "mmd", "t"):
    assert getattr(terms, name).dtype == jnp.float32, name
  assert aux["mean"].dtype == aux["z"].dtype == jnp.float32
  with jax.enable_x64(True):  # one example: no MMD, a float32 zero
    terms, _ = _linear_loss(jax.random.key(3), x[:1], flow, cfg, params)
  assert terms.mmd.dtype == terms.loss.dtype == jnp.float32


def test_the_theta_t_encoder_reads_the_losss_own_theta_t():
  """encoder_input 'theta_t' (the paper's Eq. 3): the encoder reads net_input of the very theta_t
  the BFN term is computed at, not a second draw of the flow."""
  flow = _flow("continuous")
  x = _batch(flow)
  _, decode, params = _linear_nets(flow)
  seen = []

  def encode(e, t):
    seen.append(e)
    return jnp.zeros((len(x), 2)), jnp.zeros((len(x), 2))

  _, aux = objective.paramrel_loss(
    jax.random.key(4),
    x,
    flow=flow,
    encode=encode,
    decode=lambda n, z, t: decode(params, n, z, t),
    cfg=objective.ObjectiveConfig(mmd_weight=0.0),
    encoder_input_mode="theta_t",
  )
  np.testing.assert_array_equal(seen[0], flow.net_input(aux["theta"]))


def test_data_shape_counts_the_dimensions_of_an_image_or_the_columns_of_a_record():
  assert objective.data_shape(jnp.zeros((2, 3, 4, 5))) == (2, 60)
  assert objective.data_shape({"a": jnp.zeros((2, 1)), "b": jnp.zeros((2, 1), jnp.int32)}) == (2, 2)
