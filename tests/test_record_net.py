"""RecordNet and ParamReL on records: the network's interface, z's path into it, and a short
training run on a mixed-type table with missing cells in which the output network comes to use z."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from paramrel_jax.config.network import get_variant
from paramrel_jax.config.objective import ObjectiveConfig
from paramrel_jax.data import tables
from paramrel_jax.methods import registry
from paramrel_jax.methods.paramrel import objective, reverse_sampling, sampling
from paramrel_jax.methods.paramrel.model import ParamReL
from paramrel_jax.networks.record_net import RecordNet

pytestmark = pytest.mark.xdist_group("record_net")  # one worker: the module fixture trains once

KEY = jax.random.key(0)


def _table(rows: int, seed: int = 0) -> pd.DataFrame:
  """A hidden kind (3 values) sets every column; a few cells are missing."""
  rng = np.random.default_rng(seed)
  kind = rng.integers(0, 3, rows)
  table = pd.DataFrame(
    {
      "colour": np.array(["red", "green", "blue"])[kind],
      "size": kind * 2.0 + rng.normal(0, 0.3, rows),
      "legs": (kind * 20 + rng.integers(0, 5, rows)).astype(int),
      "flag": (kind == 1) ^ (rng.random(rows) < 0.05),
    }
  )
  table.loc[rng.random(rows) < 0.1, "size"] = np.nan
  table.loc[rng.random(rows) < 0.1, "colour"] = None
  return table


def _setup(conditioning="adagn", encoder="progressive", latent_dim=4):
  schema = tables.infer_schema(_table(200))
  flow = schema.flow(sigma1=0.001, beta1=3.0)
  config = get_variant(
    "tiny",
    num_channels=16,
    num_res_blocks=2,
    num_heads=2,
    latent_dim=latent_dim,
    encoder=encoder,
    conditioning=conditioning,
    posterior_logvar_init=-6.0,
  )
  net = RecordNet(
    config,
    tuple(f.input_channels_per_dim + 1 for _, f in flow.columns),
    tuple(f.params_per_dim for _, f in flow.columns),
  )
  return schema, flow, net


@pytest.mark.parametrize("conditioning", ["adagn", "cross_attention"])
def test_shapes_and_z_reaches_every_column(conditioning):
  schema, flow, net = _setup(conditioning)
  record, _ = schema.encode(_table(8, seed=1))
  net_in = flow.data_input(record)
  t = jnp.full((8,), 0.5)
  z = jax.random.normal(KEY, (8, 4))
  params = net.init(KEY, net_in, t, z, train=False)["params"]
  # the heads start at zero; give them weights so that the output shows what reaches them
  params = jax.tree_util.tree_map_with_path(
    lambda path, p: jax.random.normal(KEY, p.shape) if "head" in jax.tree_util.keystr(path) else p,
    params,
  )
  mean, logvar = net.apply({"params": params}, net_in, t, train=False, method=net.encode)
  assert mean.shape == logvar.shape == (8, 4)
  np.testing.assert_array_equal(params["posterior"]["bias"], [0.0] * 4 + [-6.0] * 4)
  out = net.apply({"params": params}, net_in, z, t, train=False, method=net.decode)
  assert out.shape == (8, flow.output_channels) and out.dtype == jnp.float32
  jac = jax.jacobian(
    lambda z: net.apply({"params": params}, net_in, z, t, train=False, method=net.decode)
  )(z)  # (8, C_out, 8, 4)
  per_example = jnp.stack([jac[b, :, b] for b in range(8)])
  assert np.all(np.abs(per_example).sum(axis=(0, 2)) > 0), "some column's output ignores z"
  across = jac.at[jnp.arange(8), :, jnp.arange(8)].set(0.0)
  np.testing.assert_allclose(across, 0.0, atol=1e-6)  # no example reads another's z


def test_vanilla_encoder_ignores_t_and_bad_shapes_are_named():
  schema, flow, net = _setup(encoder="vanilla")
  record, _ = schema.encode(_table(4, seed=2))
  net_in = flow.data_input(record)
  z = jnp.zeros((4, 4))
  params = net.init(KEY, net_in, jnp.zeros((4,)), z, train=False)["params"]
  encode = lambda t: net.apply({"params": params}, net_in, t, train=False, method=net.encode)  # noqa: E731
  np.testing.assert_array_equal(encode(jnp.zeros((4,)))[0], encode(jnp.ones((4,)))[0])
  with pytest.raises(ValueError, match=r"net_in must have shape \(B, 10\)"):
    net.apply({"params": params}, net_in[:, :-1], jnp.zeros((4,)), train=False, method=net.encode)
  with pytest.raises(ValueError, match=r"z must have shape \(B, latent_dim\) = \(4, 4\)"):
    net.apply({"params": params}, net_in, z[:, :3], jnp.zeros((4,)), train=False, method=net.decode)


@pytest.fixture(scope="module")
def trained():
  """ParamReL on records, 300 Adam steps on a mixed table with missing cells."""
  schema, flow, net = _setup()
  model = ParamReL(flow, net, ObjectiveConfig(), image_shape=(len(flow.columns),), sample_steps=50)
  record, _ = schema.encode(_table(512, seed=3))
  params = model.init(KEY, (8, len(flow.columns)))
  optimizer = optax.adam(3e-3)

  def scan_body(carry, key):
    params, state = carry
    index = jax.random.choice(key, 512, (64,), replace=False)
    batch = {"record": {name: jnp.asarray(column)[index] for name, column in record.items()}}
    k_loss, k_drop = jax.random.split(jax.random.fold_in(key, 1))
    grads, (loss, _) = jax.grad(
      lambda p: (lambda loss, terms: (loss, (loss, terms)))(*model.loss(p, k_loss, batch, k_drop)),
      has_aux=True,
    )(params)
    updates, state = optimizer.update(grads, state)
    return (optax.apply_updates(params, updates), state), loss

  run = jax.jit(
    lambda params, keys: jax.lax.scan(scan_body, (params, optimizer.init(params)), keys)
  )
  (params, _), losses = run(params, jax.random.split(KEY, 300))
  return schema, model, params, record, np.asarray(losses)


def test_paramrel_trains_on_a_mixed_table_and_uses_z(trained):
  """ParamReL's objective, unchanged, on records: the loss falls, no NaN from missing cells, and
  the output network relies on z (the BFN loss rises when the codes are shuffled)."""
  _, model, params, record, losses = trained
  assert np.all(np.isfinite(losses))
  assert losses[-50:].mean() < 0.6 * losses[:20].mean()
  full = {"record": {name: jnp.asarray(column) for name, column in record.items()}}
  gaps = [
    float(model.diagnostics(params, jax.random.key(k), full)["z_shuffle_gap"]) for k in range(5)
  ]
  assert np.mean(gaps) > 5.0, f"the output network ignores z (gap {np.mean(gaps):.3f} nats)"
  assert objective.data_shape(full["record"]) == (512, 4)


def test_samples_are_valid_records_that_keep_the_columns_together(trained):
  schema, model, params, _, _ = trained
  samples, z = model.sample(params, jax.random.key(7), 200)
  assert z.shape == (200, 4)
  samples = {name: np.asarray(column) for name, column in samples.items()}
  model.flow.validate_data(samples)
  table = schema.decode(samples)
  assert list(table.columns) == ["colour", "size", "legs", "flag"]
  # in the data, legs // 20 is the colour's kind (red 0, green 1, blue 2): samples keep the link
  kind = table["colour"].map({"red": 0, "green": 1, "blue": 2})
  agree = np.mean(kind.to_numpy() == (table["legs"].to_numpy(float) // 20))
  assert agree > 0.55, f"samples mix the columns up ({agree:.2f} agree; chance about 0.33)"


def test_imputation_keeps_observed_cells_and_fills_missing_ones(trained):
  schema, model, params, _, _ = trained
  test = _table(300, seed=11)
  truth = test["colour"].copy()
  known = truth.notna().to_numpy()
  hidden = test.copy()
  hidden["colour"] = None  # every colour hidden; size, legs and flag tell the kind
  record, _ = schema.encode(hidden)
  record = {name: jnp.asarray(column) for name, column in record.items()}
  filled = sampling.impute(jax.random.key(5), model.flow, model.net, params, record, 50)
  observed = model.flow.observed(record)
  for name in ("size", "legs", "flag"):  # observed cells unchanged
    np.testing.assert_array_equal(filled[name][observed[name]], record[name][observed[name]])
  assert np.isnan(record["size"]).any() and np.all(np.isfinite(filled["size"]))  # size filled too
  assert np.all(np.asarray(filled["colour"]) >= 0)
  imputed = schema.decode({k: np.asarray(v) for k, v in filled.items()})["colour"]
  accuracy = np.mean(imputed[known].to_numpy() == truth[known].to_numpy())
  mode_accuracy = truth[known].value_counts(normalize=True).iloc[0]
  assert accuracy > 0.8 and accuracy > mode_accuracy + 0.3, (accuracy, mode_accuracy)


def test_the_point_estimate_pools_independent_imputations(trained):
  schema, model, params, _, _ = trained
  test = _table(300, seed=12)
  truth = test.copy()
  hidden = test.copy()
  hidden["colour"] = None
  hidden["size"] = np.nan  # legs and flag tell the kind, which sets the size's mean
  record, _ = schema.encode(hidden)
  record = {name: jnp.asarray(column) for name, column in record.items()}

  def fill(**kwargs):
    filled = sampling.impute(jax.random.key(9), model.flow, model.net, params, record, 50, **kwargs)
    return schema.decode({k: np.asarray(v) for k, v in filled.items()})

  draw, one = fill(), fill(draw=False, num_draws=1)
  pd.testing.assert_frame_equal(draw, one)  # the point of one imputation is that imputation
  point = fill(draw=False, num_draws=16)
  pd.testing.assert_series_equal(point["legs"], draw["legs"])  # observed cells as given
  known = truth["colour"].notna().to_numpy() & truth["size"].notna().to_numpy()

  def scores(filled):
    accuracy = np.mean(filled["colour"][known].to_numpy() == truth["colour"][known].to_numpy())
    error = filled["size"][known].to_numpy() - truth["size"][known].to_numpy()
    return accuracy, np.sqrt(np.mean(error**2))

  (draw_accuracy, draw_rmse), (point_accuracy, point_rmse) = scores(draw), scores(point)
  # a draw from the predictive distribution of the size (kind * 2 + N(0, 0.3^2)) errs by about
  # sqrt(2) * 0.3; its mean, by about 0.3
  assert point_rmse < 0.85 * draw_rmse, (point_rmse, draw_rmse)
  assert point_accuracy >= draw_accuracy, (point_accuracy, draw_accuracy)
  with pytest.raises(ValueError, match="num_draws must be >= 1"):
    fill(draw=False, num_draws=0)


def test_record_net_refuses_mismatched_columns_and_spatial_conditioning():
  _, _, net = _setup()
  bad = dataclasses.replace(net, output_channels=(1,))
  with pytest.raises(ValueError, match="must name the same, non-zero number of columns"):
    bad.init(KEY, jnp.zeros((2, 10)), jnp.zeros((2,)), jnp.zeros((2, 4)), train=False)
  spatial_config = dataclasses.replace(net.config, conditioning="content_mask")
  spatial = dataclasses.replace(net, config=spatial_config)
  with pytest.raises(ValueError, match="places z in an image's space"):
    spatial.init(KEY, jnp.zeros((2, 10)), jnp.zeros((2,)), jnp.zeros((2, 4)), train=False)


def test_the_registry_gives_records_their_network_and_no_baseline():
  _, flow, net = _setup()
  objective_config = ObjectiveConfig()
  model = registry.make_model(
    "paramrel",
    flow=flow,
    network=net.config,
    objective=objective_config,
    image_shape=(len(flow.columns),),
  )
  assert model.net == net
  with pytest.raises(ValueError, match=r"^model.kind='vae' models images only; flow.data_type="):
    registry.make_model(
      "vae",
      flow=flow,
      network=net.config,
      objective=objective_config,
      image_shape=(len(flow.columns),),
    )


def _device(record: dict) -> dict:
  return {name: jnp.asarray(column) for name, column in record.items()}


def test_reverse_sampling_retraces_a_records_flow_and_reconstructs_it(trained):
  """Eq. 5 on records: the codes' replay follows the record's own data-conditioned flow, so the
  flow's end point is the record (within sigma1's bound for continuous columns), and the trained
  network reads it back."""
  schema, model, params, _, _ = trained
  table = _table(64, seed=21).dropna()
  x = _device(schema.encode(table)[0])
  key = jax.random.key(3)
  codes = model.codes(params, key, x)
  assert codes.subcodes["colour"].shape == (len(table), 50, 1, 3)  # a K-vector per step
  assert codes.subcodes["size"].shape == (len(table), 50, 1)
  rec = model.decode_codes(params, codes)
  path = reverse_sampling.data_flow(key, model.flow, x, n_steps=50)
  end = jax.tree.map(lambda a: a[-1], path.theta)
  for name in model.flow.names:
    for got, want in zip(rec.theta.columns[name], end.columns[name], strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  stats = model.reconstruction_stats(x, rec)
  assert float(jnp.max(stats["max_abs_error_flow"])) < reverse_sampling.reconstruction_error_bound(
    0.001
  )
  assert float(jnp.mean(stats["accuracy"])) > 0.95, stats["accuracy"]
  back = schema.decode(jax.device_get(rec.x))
  np.testing.assert_array_equal(back["colour"], table["colour"])
  np.testing.assert_array_equal(back["legs"].to_numpy(), table["legs"].to_numpy())


def test_reverse_sampling_of_a_record_with_gaps_keeps_its_observed_flow(trained):
  """A missing cell has no sender: its codes are receiver draws, so the replay keeps every
  observed cell's flow exactly as without the gap and fills the missing one."""
  schema, model, params, _, _ = trained
  table = _table(32, seed=22).dropna()
  gaps = table.copy()
  gaps.loc[gaps.index[::2], "size"] = np.nan
  gaps.loc[gaps.index[1::2], "colour"] = None
  key = jax.random.key(4)
  full = model.decode_codes(params, model.codes(params, key, _device(schema.encode(table)[0])))
  x = _device(schema.encode(gaps)[0])
  rec = model.decode_codes(params, model.codes(params, key, x))
  for name in ("legs", "flag"):  # observed everywhere: the same flow
    for got, want in zip(rec.theta.columns[name], full.theta.columns[name], strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  seen = np.asarray(model.flow.observed(x)["size"])
  np.testing.assert_allclose(
    np.asarray(rec.theta.columns["size"].mu)[seen],
    np.asarray(full.theta.columns["size"].mu)[seen],
    rtol=1e-4,
    atol=1e-5,
  )
  assert np.all(np.isfinite(rec.x["size"])) and np.all(np.asarray(rec.x["colour"]) >= 0)
  stats = model.reconstruction_stats(x, rec)  # over the observed cells only
  assert float(jnp.mean(stats["accuracy"])) > 0.95
  with pytest.raises(ValueError, match="record codes must hold z"):
    model.decode_codes(params, reverse_sampling.Codes(rec.x["size"][:, :0], {"size": x["size"]}))


def test_encoder_mask_hides_cells_from_the_encoder_only():
  """objective.encoder_mask: the encoder reads a record with cells hidden (its code changes),
  the flow and the loss's data keep every cell (the same theta_t)."""
  schema, flow, net = _setup()
  x = _device(schema.encode(_table(16, seed=4))[0])
  params = ParamReL(flow, net, ObjectiveConfig()).init(KEY, (16, len(flow.columns)))
  aux = {}
  for mask in (0.0, 0.5):
    model = ParamReL(flow, net, ObjectiveConfig(encoder_mask=mask))
    _, aux[mask] = model._terms(params, jax.random.key(8), {"record": x})[1:]
  leaves = [jax.tree.leaves(aux[mask]["theta"]) for mask in (0.5, 0.0)]
  for got, want in zip(*leaves, strict=True):
    np.testing.assert_array_equal(got, want)
  assert not np.allclose(aux[0.5]["mean"], aux[0.0]["mean"])
  with pytest.raises(ValueError, match=r"encoder_mask must lie in \[0, 1\)"):
    ObjectiveConfig(encoder_mask=1.0)
