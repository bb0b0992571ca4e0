"""How z enters the output network (model.conditioning) and how the encoder pools its features
(model.encoder_pool, model.encoder_coords): shapes, what depends on what, and exact replay."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT
from sampling_testlib import DATA_SHAPE, LATENT_DIM, data_batch, flow_of, tiny_model
from test_models import B, _inputs
from test_models import _params as _random_params

from paramrel_jax.methods.paramrel import reverse_sampling as rs
from paramrel_jax.networks import ParamReLNet, get_variant, layers
from paramrel_jax.networks.encoder import coordinate_channels


def _names(tree) -> set[str]:
  return {str(k.key) for path, _ in jax.tree.flatten_with_path(tree)[0] for k in path}


def _closes_cross_attention(keys: list[str]) -> bool:
  """The output projection of a cross-attention block."""
  return any(k.endswith("_cross_attn") for k in keys) and keys[-2] == "out"


def _closes_content_mask(keys: list[str]) -> bool:
  """The kernel of a dense layer that adds the content-mask map to a res block's input."""
  return keys[-2].endswith("_z_map") and keys[-1] == "kernel"


@pytest.mark.parametrize(
  "conditioning, module, per_block, closes",
  [
    ("cross_attention", "latent_tokens", "_cross_attn", _closes_cross_attention),
    ("content_mask", "latent_content_mask", "_z_map", _closes_content_mask),
  ],
)
def test_factorised_forms_read_z_through_their_own_path_alone(
  conditioning, module, per_block, closes
):
  net = ParamReLNet(get_variant("tiny", conditioning=conditioning, latent_map=True), 2)
  net_in, t, z = _inputs()
  params = _random_params(net, net_in, t, z)
  names = _names(params["decoder"])
  assert module in names
  # One reader of z at every res block: 2 down, 2 mid, 2 x 2 up in the tiny U-Net.
  assert len([n for n in names if n.endswith(per_block)]) == 8
  # No other path of z: no latent embedding in the AdaGNs, no map into the bottleneck.
  others = {"latent_embedding", "latent_map", "z_scale_shift", "z_scale", "latent_tokens"}
  assert not names & (others | {"latent_content_mask"}) - {module}

  decode = jax.jit(
    lambda p, zz: net.apply({"params": p}, net_in, zz, t, train=False, method="decode")
  )
  assert float(jnp.max(jnp.abs(decode(params, z) - decode(params, z + 1.0)))) > 1e-3
  # With every reader closed, z has no effect at all.
  closed = jax.tree.map_with_path(
    lambda path, leaf: jnp.zeros_like(leaf) if closes([str(k.key) for k in path]) else leaf,
    params,
  )
  np.testing.assert_array_equal(decode(closed, z), decode(closed, z + 1.0))


def test_each_token_depends_on_its_own_group_of_units_only():
  module = layers.LatentTokens(group_size=2, features=5)
  z = jnp.asarray(np.random.default_rng(0).normal(size=(1, 6)), jnp.float32)
  params = module.init(jax.random.key(0), z)
  tokens = module.apply(params, z)
  assert tokens.shape == (1, 3, 5)
  # d token[k] / d z[l]: (3, 5, 6) after dropping the batch axes.
  jacobian = jax.jacobian(lambda zz: module.apply(params, zz))(z)[0, :, :, 0, :]
  for k in range(3):
    own = slice(2 * k, 2 * k + 2)
    assert float(jnp.abs(jacobian[k][:, own]).max()) > 1e-3
    others = np.delete(np.asarray(jacobian[k]), np.arange(2 * k, 2 * k + 2), axis=1)
    np.testing.assert_array_equal(others, 0.0)


def test_a_group_of_units_moves_its_own_mask_and_content_only():
  """Masks are a softmax over tokens; a change of group 1's units leaves the other tokens'
  logits, hence the ratios of their masks, and their contents unchanged."""
  module = layers.ContentMaskMap(group_size=2, features=5, hidden=8)
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.normal(size=(2, 6)), jnp.float32)
  params = module.init(jax.random.key(0), z, 4, 6)
  feature_map, masks = module.apply(params, z, 4, 6)
  assert feature_map.shape == (2, 4, 6, 5) and masks.shape == (2, 3, 4, 6)
  np.testing.assert_allclose(masks.sum(axis=1), 1.0, rtol=1e-5)
  moved = z.at[:, 2:4].add(jnp.asarray(rng.normal(size=(2, 2)), jnp.float32))
  _, moved_masks = module.apply(params, moved, 4, 6)
  assert float(jnp.max(jnp.abs(moved_masks[:, 1] - masks[:, 1]))) > 1e-4
  np.testing.assert_allclose(
    moved_masks[:, 0] / moved_masks[:, 2], masks[:, 0] / masks[:, 2], rtol=1e-4
  )
  # The map is the masks' mix of the contents, which the masks alone do not change.
  content = layers.LatentTokens(2, 5).apply({"params": params["params"]["content"]}, z)
  np.testing.assert_allclose(
    feature_map, jnp.einsum("bkhw,bkf->bhwf", masks, content), rtol=1e-5, atol=1e-6
  )
  # A temperature T divides the logits: softmax(log(masks) / T) with the same parameters.
  cold = layers.ContentMaskMap(group_size=2, features=5, hidden=8, temperature=0.25)
  _, cold_masks = cold.apply(params, z, 4, 6)
  np.testing.assert_allclose(cold_masks, jax.nn.softmax(jnp.log(masks) / 0.25, axis=1), rtol=1e-4)
  assert float(cold_masks.max(axis=1).mean()) > float(masks.max(axis=1).mean())  # sharper


def test_latent_group_size_sets_the_token_count():
  for group_size, tokens in ((1, 4), (2, 2), (4, 1)):
    net = ParamReLNet(
      get_variant("tiny", conditioning="cross_attention", latent_group_size=group_size), 2
    )
    shapes = jax.eval_shape(
      lambda *a, n=net: n.init(jax.random.key(0), *a, train=False), *_inputs()
    )
    kernel = shapes["params"]["decoder"]["latent_tokens"]["dense_0_kernel"]
    assert kernel.shape == (tokens, group_size, 32)  # embedding width 4 * 8 channels


@pytest.mark.parametrize("pool", ["mean", "flatten", "attention"])
@pytest.mark.parametrize("coords", [False, True])
def test_encoder_pools_give_a_posterior_per_unit(pool, coords):
  net = ParamReLNet(
    get_variant("tiny", encoder_pool=pool, encoder_coords=coords, posterior_logvar_init=-6.0), 2
  )
  net_in, t, z = _inputs()
  params = jax.jit(lambda k: net.init(k, net_in, t, z, train=False))(jax.random.key(0))["params"]
  encoder = params["encoder"]
  assert encoder["conv_in"]["kernel"].shape[2] == 2 + 2 * coords  # the input's channels
  if pool == "flatten":  # the 4 x 4 x 16 feature map of an 8 x 8 input, flattened
    assert encoder["flatten_dense"]["kernel"].shape == (4 * 4 * 16, 256)
  if pool == "attention":
    assert encoder["queries"].shape == (4, 16) and encoder["position_embedding"].shape == (16, 16)
  mean, logvar = jax.jit(
    lambda x: net.apply({"params": params}, x, t, train=False, method="encode")
  )(net_in)
  assert mean.shape == logvar.shape == (B, 4)
  # The head's bias starts the posterior nearly deterministic, whatever the pooling.
  assert abs(float(jnp.median(logvar)) + 6.0) < 1.0


def test_an_encoder_that_sees_position_tells_a_shifted_blob_apart():
  """On a constant image with one bright pixel, flatten and attention pools (or coordinates)
  give codes that depend on where the pixel is; the contrast to the mean pool is the point."""

  def codes(pool, coords, x):
    net = ParamReLNet(get_variant("tiny", encoder_pool=pool, encoder_coords=coords), 2)
    t = jnp.full((x.shape[0],), 0.5)
    params = _random_params(net, x, t, jnp.zeros((x.shape[0], 4)))
    return net.apply({"params": params}, x, t, train=False, method="encode")[0]

  blobs = np.zeros((2, 8, 8, 2), np.float32)
  blobs[0, 3, 3], blobs[1, 4, 4] = 1.0, 1.0  # the same blob, one pixel apart, away from borders
  for pool, coords in (("flatten", False), ("attention", False), ("mean", True)):
    mean = codes(pool, coords, jnp.asarray(blobs))
    assert float(jnp.max(jnp.abs(mean[0] - mean[1]))) > 1e-3, (pool, coords)


def test_coordinate_channels():
  coords = coordinate_channels(jnp.zeros((2, 3, 5, 1)))
  assert coords.shape == (2, 3, 5, 2)
  np.testing.assert_allclose(coords[0, 0, 0], [-1.0, -1.0])
  np.testing.assert_allclose(coords[0, -1, -1], [1.0, 1.0])
  np.testing.assert_allclose(coords[0, 1, :, 0], np.linspace(-1, 1, 5))  # x along the width


@pytest.mark.parametrize(
  "overrides, field",
  [
    (dict(conditioning="film"), "conditioning"),
    (dict(conditioning="cross_attention", latent_group_size=3), "latent_group_size"),
    (dict(conditioning="content_mask", latent_group_size=3), "latent_group_size"),
    (dict(latent_group_size=True), "model.latent_group_size must be a static Python int"),
    (dict(num_heads="4"), "NetworkConfig.num_heads must be a static Python int"),
    (dict(channel_mult=(1, 2.0)), r"each of NetworkConfig.channel_mult \(1, 2.0\)"),
    (dict(latent_group_size=0), "latent_group_size"),
    (dict(mask_temperature=0.0), "mask_temperature"),
    (dict(mask_temperature="cold"), "mask_temperature"),
    (dict(encoder_pool="max"), "encoder_pool"),
  ],
)
def test_bad_settings_raise(overrides, field):
  with pytest.raises(ValueError, match=field):
    get_variant("tiny", **overrides)


class _TokenNet(ParamReLNet):
  latent_dim: int = LATENT_DIM


@pytest.mark.parametrize(
  "case, conditioning",
  [
    ("continuous", "cross_attention"),
    ("categorical", "cross_attention"),
    ("categorical", "content_mask"),
  ],
)
def test_decode_of_the_codes_replays_the_data_path_with_factorised_conditioning(case, conditioning):
  flow = flow_of(case)
  config = get_variant(
    "tiny", latent_dim=LATENT_DIM, conditioning=conditioning, encoder_pool="attention"
  )
  net, params = tiny_model(flow, net_cls=functools.partial(_TokenNet, config))
  params = _random_params(net, *_zeros_like_inputs(flow, net))
  x0 = data_batch(flow)
  key = jax.random.key(3)
  codes = rs.encode(key, flow, net, params, x0, n_steps=8)
  replay = rs.decode(flow, net, params, codes, return_path=True)
  data = rs.data_flow(key, flow, x0, n_steps=8)
  got, want = jax.tree.leaves(replay.path)[0], jax.tree.leaves(data.theta)[0]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def _zeros_like_inputs(flow, net):
  batch, height, width, channels = DATA_SHAPE
  net_in = jnp.zeros((batch, height, width, channels * flow.input_channels_per_dim))
  return net_in, jnp.zeros((batch,)), jnp.zeros((batch, net.latent_dim))


def test_the_command_line_trains_and_reconstructs_with_factorised_conditioning(tmp_path):
  workdir = str(tmp_path / "run")
  common = [
    "--config=configs/default.py:smoke",
    f"--workdir={workdir}",
    "--config.model.conditioning=cross_attention",
    "--config.model.encoder_pool=attention",
    "--config.model.encoder_coords=True",
    "--config.eval.num_examples=4",
    "--config.eval.batch_size=4",
  ]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  for mode in ("train", "reconstruct", "traverse"):
    result = subprocess.run(
      [sys.executable, "-m", "paramrel_jax.main", *common, f"--mode={mode}"],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
    )
    assert result.returncode == 0, (mode, result.stderr[-3000:])
  config = json.load(open(os.path.join(workdir, "config.json")))
  assert config["model"]["conditioning"] == "cross_attention"
  rec = np.load(os.path.join(workdir, "reconstruct", "reconstruct.npz"))
  summary = json.load(open(os.path.join(workdir, "reconstruct", "summary.json")))
  # The flow's end point of the replayed path (Eq. 5) against the input's pixels, at 4 sampling
  # steps: it must recover most of the ink that an all-black guess misses (about 8 % of pixels).
  all_black = float(np.mean(rec["input"] == 0))
  assert summary["mean_accuracy_flow"] > all_black + 0.5 * (1.0 - all_black), summary
