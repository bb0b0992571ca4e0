"""Tests of paramrel_jax.networks: shapes, conditioning, encoder variants, dtypes, validation."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramrel_jax.config import network as network_config
from paramrel_jax.networks import (
  VARIANTS,
  NetworkConfig,
  ParamReLNet,
  get_variant,
  layers,
  parameter_counts,
)

B = 2


def _inputs(shape=(8, 8, 2), latent_dim=4, seed=0):
  rng = np.random.default_rng(seed)
  net_in = jnp.asarray(rng.uniform(-1.0, 1.0, (B, *shape)), jnp.float32)
  t = jnp.asarray(rng.uniform(0.0, 1.0, (B,)), jnp.float32)
  z = jnp.asarray(rng.normal(size=(B, latent_dim)), jnp.float32)
  return net_in, t, z


def _param_shapes(net, net_in, t, z):
  return jax.eval_shape(lambda *a: net.init(jax.random.key(0), *a, train=False), net_in, t, z)[
    "params"
  ]


def _fill(shapes, seed=1):
  """Random parameters with the given shapes, none zero (unlike the zero-initialised layers).

  Drawn with numpy: compiling `net.init` costs far more CPU time than the tests themselves.
  """
  rng = np.random.default_rng(seed)

  def draw(path, shape):
    noise = rng.normal(size=shape.shape)
    if len(shape.shape) > 1:  # kernels: 1 / sqrt(fan-in)
      return jnp.asarray(noise / np.sqrt(np.prod(shape.shape[:-1])), shape.dtype)
    offset = 1.0 if str(path[-1].key) == "scale" else 0.0
    return jnp.asarray(offset + 0.1 * noise, shape.dtype)

  return jax.tree.map_with_path(draw, shapes)


def _params(net, net_in, t, z, seed=1):
  return _fill(_param_shapes(net, net_in, t, z), seed)


def _apply(net, params, *args, **kwargs):
  """net.apply under jit (eager Flax is slow on CPU); kwargs are static."""
  return jax.jit(lambda p, *a: net.apply({"params": p}, *a, **kwargs))(params, *args)


def _module_names(tree) -> set[str]:
  return {str(k.key) for path, _ in jax.tree.flatten_with_path(tree)[0] for k in path}


@pytest.fixture(scope="module")
def tiny():
  """Tiny progressive network on (B, 8, 8, 2) inputs, with random non-zero parameters."""
  net = ParamReLNet(get_variant("tiny"), out_channels=2)
  net_in, t, z = _inputs()
  params = _params(net, net_in, t, z)
  return net, params, (net_in, t, z)


# ---------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize(
  "data, channels, in_per_dim, out_per_dim",
  [
    ("continuous", 3, 1, 1),  # eps_hat
    ("discretised", 3, 1, 2),  # mean and log-std
    ("discrete_k2", 1, 1, 1),  # one Bernoulli logit
    ("discrete_k4", 2, 4, 4),  # K logits
  ],
)
def test_output_shapes_per_data_type(data, channels, in_per_dim, out_per_dim):
  del data
  cfg = get_variant("tiny")
  net = ParamReLNet(cfg, out_channels=channels * out_per_dim)
  net_in, t, z = _inputs((12, 8, channels * in_per_dim), cfg.latent_dim)
  params = _param_shapes(net, net_in, t, z)
  mean, logvar, out = jax.eval_shape(
    lambda p: net.apply({"params": p}, net_in, t, z, train=False), params
  )
  assert mean.shape == logvar.shape == (B, cfg.latent_dim)
  assert out.shape == (B, 12, 8, channels * out_per_dim)
  assert mean.dtype == logvar.dtype == out.dtype == jnp.float32


@pytest.mark.parametrize(
  "variant, shape",
  [
    ("paper_mnist", (28, 28, 1)),
    ("paper_cifar10", (32, 32, 3)),
    ("paper_celeba", (64, 64, 3)),
    ("paper_shapes3d", (64, 64, 3)),
  ],
)
def test_paper_table5_shapes(variant, shape):
  cfg = get_variant(variant, fourier_features=True)
  net = ParamReLNet(cfg, out_channels=2 * shape[-1])
  net_in, t, z = (
    jax.ShapeDtypeStruct((B, *shape), jnp.float32),
    jax.ShapeDtypeStruct((B,), jnp.float32),
    jax.ShapeDtypeStruct((B, cfg.latent_dim), jnp.float32),
  )
  params = _param_shapes(net, net_in, t, z)
  rngs = {"dropout": jax.random.key(0)}
  mean, logvar = jax.eval_shape(
    lambda p, x, s: net.apply({"params": p}, x, s, train=True, method="encode", rngs=rngs),
    params,
    net_in,
    t,
  )
  out = jax.eval_shape(
    lambda p, x, zz, s: net.apply({"params": p}, x, zz, s, train=True, method="decode", rngs=rngs),
    params,
    net_in,
    z,
    t,
  )
  assert mean.shape == logvar.shape == (B, cfg.latent_dim)
  assert out.shape == (B, *shape[:2], 2 * shape[-1])


def test_tiny_runs_on_odd_and_non_square_sizes():
  cfg = get_variant("tiny")  # two levels: 14 -> 7, 6 -> 3
  net = ParamReLNet(cfg, out_channels=1)
  net_in, t, z = _inputs((14, 6, 1), cfg.latent_dim)
  params = _params(net, net_in, t, z)
  _, _, out = _apply(net, params, net_in, t, z, train=False)
  assert out.shape == (B, 14, 6, 1)
  assert np.all(np.isfinite(out))


# ---------------------------------------------------------------------------------------------
# Conditioning


def test_output_depends_on_z_and_t(tiny):
  net, params, (net_in, t, z) = tiny
  decode = jax.jit(
    lambda x, zz, s: net.apply({"params": params}, x, zz, s, train=False, method="decode")
  )
  out = decode(net_in, z, t)
  assert float(jnp.max(jnp.abs(out - decode(net_in, z + 1.0, t)))) > 1e-3
  assert float(jnp.max(jnp.abs(out - decode(net_in, z, 1.0 - t)))) > 1e-3
  assert float(jnp.max(jnp.abs(out - decode(-net_in, z, t)))) > 1e-3


def test_diffae_adagn_network_depends_on_z():
  net = ParamReLNet(get_variant("tiny", adagn="diffae"), out_channels=2)
  net_in, t, z = _inputs()
  params = _params(net, net_in, t, z)
  assert "z_scale" in _module_names(params) and "z_scale_shift" not in _module_names(params)
  decode = jax.jit(
    lambda zz: net.apply({"params": params}, net_in, zz, t, train=False, method="decode")
  )
  assert float(jnp.max(jnp.abs(decode(z) - decode(z + 1.0)))) > 1e-3


def test_progressive_encoder_depends_on_t(tiny):
  net, params, (net_in, t, _) = tiny
  encode = jax.jit(lambda s: net.apply({"params": params}, net_in, s, train=False, method="encode"))
  mean, logvar = encode(t)
  mean2, logvar2 = encode(1.0 - t)
  assert float(jnp.max(jnp.abs(mean - mean2))) > 1e-4
  assert float(jnp.max(jnp.abs(logvar - logvar2))) > 1e-4
  assert "time_embedding" in params["encoder"]


def test_latent_map_adds_z_to_the_bottleneck():
  net = ParamReLNet(get_variant("tiny", latent_map=True), out_channels=2)
  net_in, t, z = _inputs()
  params = _params(net, net_in, t, z)
  kernel = params["decoder"]["latent_map"]["kernel"]
  assert kernel.shape == (4, 4 * 4 * 16)  # latent 4 -> the 4 x 4 x 16 bottleneck of 8 x 8 inputs
  no_map = jax.tree.map(lambda a: a, params)
  no_map["decoder"]["latent_map"] = jax.tree.map(jnp.zeros_like, params["decoder"]["latent_map"])
  decode = jax.jit(lambda p: net.apply({"params": p}, net_in, z, t, train=False, method="decode"))
  assert float(jnp.max(jnp.abs(decode(params) - decode(no_map)))) > 1e-3


def test_posterior_logvar_init_sets_the_initial_log_variance():
  net = ParamReLNet(get_variant("tiny", posterior_logvar_init=-6.0), out_channels=2)
  net_in, t, z = _inputs()
  params = jax.jit(lambda k: net.init(k, net_in, t, z, train=False))(jax.random.key(0))["params"]
  bias = params["encoder"]["posterior"]["bias"]
  np.testing.assert_array_equal(bias, [0.0] * 4 + [-6.0] * 4)  # latent_dim 4: means, logvars
  _, logvar = _apply(net, params, net_in, t, train=False, method="encode")
  assert float(jnp.mean(logvar)) < -4.0


def test_vanilla_encoder_ignores_t_exactly():
  cfg = get_variant("tiny", encoder="vanilla")
  net = ParamReLNet(cfg, out_channels=2)
  net_in, t, z = _inputs(latent_dim=cfg.latent_dim)
  params = _params(net, net_in, t, z)
  assert "time_embedding" not in params["encoder"]
  assert "t_scale_shift" not in _module_names(params["encoder"])
  encode = jax.jit(lambda x, s: net.apply({"params": params}, x, s, train=False, method="encode"))
  mean, logvar = encode(net_in, t)
  mean2, logvar2 = encode(net_in, 1.0 - t)
  np.testing.assert_array_equal(mean, mean2)
  np.testing.assert_array_equal(logvar, logvar2)
  assert float(jnp.max(jnp.abs(mean - encode(-net_in, t)[0]))) > 1e-4


def test_latent_dim_zero_is_a_plain_bfn_network():
  cfg = get_variant("tiny", latent_dim=0)
  net = ParamReLNet(cfg, out_channels=2)
  net_in, t, z = _inputs(latent_dim=0)
  params = _params(net, net_in, t, z)
  assert set(params) == {"decoder"}
  names = _module_names(params)
  assert "latent_embedding" not in names and "z_scale_shift" not in names
  assert "t_scale_shift" in names
  mean, logvar, out = _apply(net, params, net_in, t, z, train=False)
  assert mean.shape == logvar.shape == (B, 0)
  assert out.shape == (B, 8, 8, 2)
  assert parameter_counts(cfg, (8, 8, 2), 2)["encoder"] == 0


def test_adagn_matches_eq_11_and_12():
  rng = np.random.default_rng(0)
  h, t_emb, z_emb = (
    jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in [(B, 4, 4, 8), (B, 6), (B, 6)]
  )
  norm = layers.AdaGroupNorm(num_groups=2)

  def group_norm(x):
    g = x.reshape(B, 4, 4, 2, 4)
    mu = g.mean(axis=(1, 2, 4), keepdims=True)
    var = g.var(axis=(1, 2, 4), keepdims=True)
    return ((g - mu) / jnp.sqrt(var + 1e-6)).reshape(x.shape)

  def scale_shift(p, emb):
    s, b = jnp.split(nn.silu(emb) @ p["kernel"] + p["bias"], 2, axis=-1)
    return s[:, None, None, :], b[:, None, None, :]

  p11 = _fill(jax.eval_shape(norm.init, jax.random.key(0), h, t_emb)["params"])
  st, bt = scale_shift(p11["t_scale_shift"], t_emb)
  expected11 = (1 + st) * group_norm(h) + bt  # Eq. 11
  np.testing.assert_allclose(norm.apply({"params": p11}, h, t_emb), expected11, atol=1e-4)

  p12 = _fill(jax.eval_shape(norm.init, jax.random.key(0), h, t_emb, z_emb)["params"])
  st, bt = scale_shift(p12["t_scale_shift"], t_emb)
  sz, bz = scale_shift(p12["z_scale_shift"], z_emb)
  expected12 = (1 + st) * group_norm((1 + sz) * group_norm(h) + bz) + bt  # Eq. 12
  np.testing.assert_allclose(norm.apply({"params": p12}, h, t_emb, z_emb), expected12, atol=1e-4)


def test_adagn_diffae_form_scales_after_the_time_modulation():
  rng = np.random.default_rng(0)
  h, t_emb, z_emb = (
    jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in [(B, 4, 4, 8), (B, 6), (B, 6)]
  )
  norm = layers.AdaGroupNorm(num_groups=8, form="diffae")
  params = _fill(jax.eval_shape(norm.init, jax.random.key(0), h, t_emb, z_emb)["params"])
  mu = h.mean(axis=(1, 2), keepdims=True)
  normed = (h - mu) / jnp.sqrt(h.var(axis=(1, 2), keepdims=True) + 1e-6)  # 1 channel per group
  st, bt = jnp.split(
    nn.silu(t_emb) @ params["t_scale_shift"]["kernel"] + params["t_scale_shift"]["bias"], 2, axis=-1
  )
  sz = nn.silu(z_emb) @ params["z_scale"]["kernel"] + params["z_scale"]["bias"]
  expected = (1 + sz[:, None, None, :]) * (
    (1 + st[:, None, None, :]) * normed + bt[:, None, None, :]
  )
  np.testing.assert_allclose(norm.apply({"params": params}, h, t_emb, z_emb), expected, atol=1e-4)


@pytest.mark.parametrize("form, z_matters", [("paper", False), ("diffae", True)])
def test_adagn_with_one_channel_per_group(form, z_matters):
  """Eq. 12's outer GroupNorm undoes z's per-channel scale and shift when every group is one
  channel (e.g. 32 channels in 32 groups); the DiffAE form keeps z's effect."""
  rng = np.random.default_rng(1)
  h, t_emb = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in [(B, 4, 4, 8), (B, 6)])
  z_a, z_b = (jnp.asarray(rng.normal(size=(B, 6)), jnp.float32) for _ in range(2))
  norm = layers.AdaGroupNorm(num_groups=8, form=form)
  params = _fill(jax.eval_shape(norm.init, jax.random.key(0), h, t_emb, z_a)["params"])
  # Small z scales keep 1 + s(z) > 0, the regime of trained networks near their initialisation.
  params = jax.tree.map(lambda p: 0.1 * p, params)
  change = jnp.abs(
    norm.apply({"params": params}, h, t_emb, z_a) - norm.apply({"params": params}, h, t_emb, z_b)
  ).max()
  if z_matters:
    assert change > 1e-2
  else:
    assert change < 1e-4


def test_embeddings():
  emb = layers.timestep_embedding(jnp.array([0.0, 0.5]), 16)
  assert emb.shape == (2, 16)
  np.testing.assert_allclose(emb[0], np.r_[np.ones(8), np.zeros(8)])
  # The highest frequency sees t * 1000 radians.
  np.testing.assert_allclose(emb[1, 0], np.cos(500.0), rtol=1e-4)

  x = jnp.array([[[[0.0, 0.01]]]])
  feats = layers.fourier_features(x)
  assert layers.FOURIER_EXPONENTS == (5, 6)
  args = 2 * np.pi * np.array([0.0, 32 * 0.01, 0.0, 64 * 0.01])  # (frequency, channel) pairs
  np.testing.assert_allclose(feats[0, 0, 0], np.r_[np.sin(args), np.cos(args)], atol=1e-5)


def test_fourier_features_widen_the_stem():
  cfg = get_variant("tiny", fourier_features=True)
  net = ParamReLNet(cfg, out_channels=2)
  net_in, t, z = _inputs(latent_dim=cfg.latent_dim)
  params = _param_shapes(net, net_in, t, z)
  num_features = 1 + 2 * len(layers.FOURIER_EXPONENTS)
  for part in ("encoder", "decoder"):
    assert params[part]["conv_in"]["kernel"].shape[2] == 2 * num_features


def test_attention_resolutions_add_attention_blocks():
  cfg = get_variant("tiny", attention_resolutions=(4,))  # the 4x4 level of 8x8 inputs
  net = ParamReLNet(cfg, out_channels=2)
  net_in, t, z = _inputs(latent_dim=cfg.latent_dim)
  params = _param_shapes(net, net_in, t, z)
  assert {"down_1_0_attn", "mid_attn"} <= set(params["encoder"])
  assert {"down_1_0_attn", "up_1_0_attn", "up_1_1_attn", "mid_attn"} <= set(params["decoder"])
  assert "down_0_0_attn" not in params["decoder"]


# ---------------------------------------------------------------------------------------------
# Dropout, dtype, remat


def test_dropout_uses_the_dropout_rng():
  cfg = get_variant("tiny", dropout=0.5)
  net = ParamReLNet(cfg, out_channels=2)
  net_in, t, z = _inputs(latent_dim=cfg.latent_dim)
  params = _params(net, net_in, t, z)

  def decode(seed, train):
    return net.apply(
      {"params": params},
      net_in,
      z,
      t,
      train=train,
      method="decode",
      rngs={"dropout": jax.random.key(seed)},
    )

  decode = jax.jit(decode, static_argnums=1)
  np.testing.assert_array_equal(decode(0, False), decode(1, False))
  assert float(jnp.max(jnp.abs(decode(0, True) - decode(1, True)))) > 1e-4


def test_bfloat16_compute_with_float32_params_and_outputs():
  cfg = get_variant("tiny", dtype="bfloat16")
  net = ParamReLNet(cfg, out_channels=2)
  net_in, t, z = _inputs(latent_dim=cfg.latent_dim)
  shapes = _param_shapes(net, net_in, t, z)
  assert {p.dtype for p in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
  (mean, logvar, out), state = _apply(
    net, _fill(shapes), net_in, t, z, train=False, capture_intermediates=True
  )
  assert mean.dtype == logvar.dtype == out.dtype == jnp.float32
  assert np.all(np.isfinite(out))
  inter = state["intermediates"]
  assert inter["decoder"]["mid_res_0"]["__call__"][0].dtype == jnp.bfloat16
  assert inter["encoder"]["mid_attn"]["__call__"][0].dtype == jnp.bfloat16


def test_remat_keeps_params_outputs_and_gradients(tiny):
  net, params, (net_in, t, z) = tiny
  remat_net = ParamReLNet(get_variant("tiny", remat=True), out_channels=2)
  remat_params = _param_shapes(remat_net, net_in, t, z)
  assert jax.tree.structure(remat_params) == jax.tree.structure(params)

  def loss(p, model):
    mean, logvar, out = model.apply(
      {"params": p}, net_in, t, z, train=True, rngs={"dropout": jax.random.key(0)}
    )
    return jnp.sum(out**2) + jnp.sum(mean**2) + jnp.sum(logvar)

  grads = jax.jit(jax.grad(loss), static_argnums=1)(params, net)
  remat_grads = jax.jit(jax.grad(loss), static_argnums=1)(params, remat_net)
  # Remat recomputes the forward pass in another order: float32 sums of terms up to about 10
  # differ by 1e-5 absolute (seen at XLA's optimisation level 0); a wrong recompute by O(1).
  jax.tree.map(
    lambda g, rg: np.testing.assert_allclose(g, rg, rtol=1e-4, atol=1e-4), grads, remat_grads
  )
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert float(jnp.abs(grads["encoder"]["time_embedding"]["dense_0"]["kernel"]).sum()) > 0
  assert float(jnp.abs(grads["decoder"]["latent_embedding"]["dense_0"]["kernel"]).sum()) > 0


# ---------------------------------------------------------------------------------------------
# Variants and parameter counts


def test_variants_are_valid_and_hashable():
  assert {"tiny", "small", "paper_mnist", "paper_cifar10", "paper_celeba", "paper_shapes3d"} <= set(
    VARIANTS
  )
  cfg = get_variant("paper_celeba", channel_mult=[1, 2, 2, 2], dropout=0.1)
  assert cfg.channel_mult == (1, 2, 2, 2) and cfg.dropout == 0.1
  assert hash(cfg) == hash(get_variant("paper_celeba", dropout=0.1))
  assert get_variant("paper_celeba").latent_dim == 64
  assert get_variant("paper_mnist").num_channels == 32


def _documented_counts() -> dict:
  """The 'Parameter counts' table of `config/network.py`'s docstring: variant -> row."""
  count = r"([\d,]+) +\(([\d.]+)\)"  # 1,608,544  (6.14)
  row = rf"^  (paper_\w+) +(\d+)x(\d+)x(\d+) +{count} +{count}$"
  rows = re.findall(row, network_config.__doc__, re.MULTILINE)
  return {row[0]: row[1:] for row in rows}


def test_the_documented_parameter_counts_are_exact():
  """The docstring's table is what `parameter_counts` gives, with its float32 MiB rounded right.

  These are our own networks' sizes, not the paper's: Table 4 does not say what its MB count.
  """
  documented = _documented_counts()
  assert set(documented) == {v for v in VARIANTS if v.startswith("paper_")}
  for variant, (h, w, c, encoder, encoder_mib, decoder, decoder_mib) in documented.items():
    shape = (int(h), int(w), int(c))
    counts = parameter_counts(get_variant(variant), shape, shape[-1])
    assert counts == {
      "encoder": int(encoder.replace(",", "")),
      "decoder": int(decoder.replace(",", "")),
    }, variant
    for name, mib in (("encoder", encoder_mib), ("decoder", decoder_mib)):
      assert f"{counts[name] * 4 / 2**20:.2f}" == mib, (variant, name)


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
  "overrides, field",
  [
    (dict(num_groups=3), "num_groups"),
    (dict(num_channels=12, num_groups=4, num_heads=8), "num_heads"),
    (dict(encoder="ladder"), "encoder"),
    (dict(latent_dim=-1), "latent_dim"),
    (dict(dtype="float16"), "dtype"),
    (dict(channel_mult=()), "channel_mult"),
    (dict(encoder_channel_mult=(1, 0)), "encoder_channel_mult"),
    (dict(attention_resolutions=(-4,)), "attention_resolutions"),
    (dict(dropout=1.0), "dropout"),
    (dict(num_res_blocks=0), "num_res_blocks"),
    (dict(width=3), "width"),
    (dict(adagn="film"), "adagn"),
  ],
)
def test_bad_configs_raise(overrides, field):
  with pytest.raises(ValueError, match=field):
    get_variant("tiny", **overrides)


def test_unknown_variant_raises():
  with pytest.raises(ValueError, match="name='huge'"):
    get_variant("huge")


def test_bad_call_shapes_raise():
  cfg = NetworkConfig(num_channels=8, channel_mult=(1, 2, 2, 2), num_groups=4, latent_dim=4)
  net = ParamReLNet(cfg, out_channels=1)
  net_in, t, z = (
    jax.ShapeDtypeStruct((B, 28, 28, 1), jnp.float32),  # 28 is not divisible by 8
    jax.ShapeDtypeStruct((B,), jnp.float32),
    jax.ShapeDtypeStruct((B, 4), jnp.float32),
  )
  with pytest.raises(ValueError, match="channel_mult"):
    _param_shapes(net, net_in, t, z)
  enc = ParamReLNet(get_variant("tiny", encoder_channel_mult=(1, 1, 1)), out_channels=1)
  with pytest.raises(ValueError, match="encoder_channel_mult"):
    _param_shapes(enc, *_inputs((6, 6, 1)))

  tiny = ParamReLNet(get_variant("tiny"), out_channels=1)
  net_in, t, z = _inputs((8, 8, 1))
  with pytest.raises(ValueError, match="t must have shape"):
    _param_shapes(tiny, net_in, t[:1], z)
  with pytest.raises(ValueError, match="z must have shape"):
    _param_shapes(tiny, net_in, t, z[:, :2])
  with pytest.raises(ValueError, match="net_in must have shape"):
    _param_shapes(tiny, net_in[..., 0], t, z)
  with pytest.raises(ValueError, match="out_channels"):
    _param_shapes(ParamReLNet(get_variant("tiny"), out_channels=0), net_in, t, z)
