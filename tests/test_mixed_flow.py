"""The mixed flow over a record's columns: it reuses the per-type flows exactly, shares one flow
time, and leaves missing cells out of the sender, the loss and the updates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramrel_jax.bfn import discretised, flows
from paramrel_jax.bfn.mixed import MISSING_CLASS, MixedFlow, RecordTheta

KEY = jax.random.key(0, impl="rbg")
B = 6

CONT = flows.ContinuousFlow(0.02, 16)
BINS = flows.DiscretisedFlow(0.01, 8, predict_std=True)
BINARY = flows.DiscreteFlow(3.0, 2)
CATS = flows.DiscreteFlow(1.5, 4)
MIXED = MixedFlow((("height", CONT), ("age", BINS), ("smoker", BINARY), ("island", CATS)))


def _column(flow, key, batch=B):
  if flow.integer_data:
    return jax.random.randint(key, (batch, 1), 0, flow.num_classes)
  values = jax.random.uniform(key, (batch, 1), minval=-1, maxval=1)
  return discretised.quantize(values, flow.num_bins) if flow.finite_values else values


def _record(mixed=MIXED, key=KEY, batch=B):
  keys = jax.random.split(key, len(mixed.columns))
  return {
    name: _column(flow, k, batch) for k, (name, flow) in zip(keys, mixed.columns, strict=True)
  }


def _net_out(mixed=MIXED, key=KEY, batch=B):
  return jax.random.normal(key, (batch, mixed.output_channels))


def _with_missing(x):
  """Cells missing: height of examples 0 and 3, island of example 1."""
  x = dict(x)
  x["height"] = x["height"].at[jnp.array([0, 3])].set(jnp.nan)
  x["island"] = x["island"].at[1].set(MISSING_CLASS)
  return x


@pytest.mark.parametrize("flow", [CONT, BINS, flows.DiscretisedFlow(0.02, 16), BINARY, CATS])
def test_a_table_of_one_kind_gives_the_single_type_loss(flow):
  """C columns of one flow: the mixed losses equal the single-type flow's on the (B, C) array
  (float64, so that only the order of the sums differs)."""
  with jax.enable_x64(True):
    _check_one_kind(flow)


def _check_one_kind(flow):
  num_columns = 3
  mixed = MixedFlow(tuple((f"c{c}", flow) for c in range(num_columns)))
  k_x, k_theta, k_out, k_loss = jax.random.split(KEY, 4)
  x = jnp.concatenate([_column(flow, k) for k in jax.random.split(k_x, num_columns)], axis=1)
  t = jnp.linspace(0.05, 0.95, B)
  i = jnp.arange(1, B + 1)
  theta = flow.sample_flow(k_theta, x, t)
  net_out = jax.random.normal(k_out, (B, num_columns * flow.params_per_dim))
  out = flow.output_dist(net_out, theta, t)

  record = {f"c{c}": x[:, c : c + 1] for c in range(num_columns)}
  per = flow.params_per_dim
  if isinstance(theta, flows.GaussianTheta):
    columns = {f"c{c}": flows.GaussianTheta(theta.mu[:, c : c + 1], theta.rho) for c in range(3)}
  else:
    columns = {f"c{c}": flows.CategoricalTheta(theta.log_probs[:, c : c + 1]) for c in range(3)}
  record_theta = RecordTheta(columns, jnp.ones((B, num_columns)))
  record_out = mixed.output_dist(net_out, record_theta, t)
  for c in range(num_columns):  # the network output's column-major layout is the same
    single = flow.output_dist(net_out[:, c * per : (c + 1) * per], columns[f"c{c}"], t)
    jax.tree.map(np.testing.assert_array_equal, record_out[f"c{c}"], single)

  np.testing.assert_allclose(
    mixed.ctime_loss(record, record_out, t), flow.ctime_loss(x, out, t), rtol=1e-12
  )
  np.testing.assert_allclose(
    mixed.reconstruction_loss(record, record_out), flow.reconstruction_loss(x, out), rtol=1e-12
  )
  if flow.data_type == "continuous":  # exact KL: no Monte-Carlo noise to align
    np.testing.assert_allclose(
      mixed.dtime_loss(k_loss, record, record_out, i, 10),
      flow.dtime_loss(k_loss, x, out, i, 10),
      rtol=1e-12,
    )


def test_columns_keep_their_own_flows_and_share_one_time():
  x = _record()
  t = jnp.linspace(0.1, 0.9, B)
  theta = MIXED.sample_flow(KEY, x, t)
  for index, (name, flow) in enumerate(MIXED.columns):
    expected = flow.sample_flow(jax.random.fold_in(KEY, index), x[name], t)
    jax.tree.map(np.testing.assert_array_equal, theta.columns[name], expected)
  # the Gaussian columns' precision is their own schedule's at the record's t
  np.testing.assert_allclose(theta.columns["height"].rho[:, 0], CONT.sigma1 ** (-2 * t), rtol=1e-5)
  np.testing.assert_allclose(theta.columns["age"].rho[:, 0], BINS.sigma1 ** (-2 * t), rtol=1e-5)
  out = MIXED.output_dist(_net_out(), theta, t)
  per_column = MIXED.column_ctime_losses(x, out, t)
  np.testing.assert_allclose(sum(per_column.values()), MIXED.ctime_loss(x, out, t), rtol=1e-6)
  for name, flow in MIXED.columns:
    np.testing.assert_allclose(per_column[name], flow.ctime_loss(x[name], out[name], t), rtol=1e-6)


def test_missing_cells_send_nothing_and_cost_nothing():
  x = _with_missing(_record())
  t = jnp.full((B,), 0.8)
  theta = MIXED.sample_flow(KEY, x, t)
  np.testing.assert_array_equal(theta.columns["height"].mu[jnp.array([0, 3])], 0.0)
  np.testing.assert_array_equal(theta.columns["height"].rho[jnp.array([0, 3])], 1.0)
  assert theta.columns["height"].rho[1, 0] > 1.0
  np.testing.assert_allclose(theta.columns["island"].log_probs[1], -np.log(4.0), rtol=1e-6)
  expected_flags = np.ones((B, 4))
  expected_flags[[0, 3], 0] = 0
  expected_flags[1, 3] = 0
  np.testing.assert_array_equal(theta.observed, expected_flags)

  net_out = _net_out()
  out = MIXED.output_dist(net_out, theta, t)
  per_column = MIXED.column_ctime_losses(x, out, t)
  np.testing.assert_array_equal(per_column["height"][jnp.array([0, 3])], 0.0)
  np.testing.assert_array_equal(per_column["island"][1], 0.0)
  assert np.all(per_column["height"][jnp.array([1, 2, 4, 5])] > 0)

  def loss(net_out):
    return MIXED.ctime_loss(x, MIXED.output_dist(net_out, theta, t), t).sum()

  grad = jax.grad(loss)(net_out)
  assert np.all(np.isfinite(grad)), "a missing cell leaked a NaN into the gradient"
  np.testing.assert_array_equal(grad[jnp.array([0, 3]), 0], 0.0)  # height's output channel
  assert np.all(grad[jnp.array([1, 2]), 0] != 0.0)


def test_check_batch_reads_a_record_of_the_flows_columns():
  MIXED.check_batch(_record())
  with pytest.raises(ValueError, match=r"every column must have shape \(B, 1\) with one B"):
    MIXED.check_batch({name: a[:, 0] for name, a in _record().items()})
  with pytest.raises(ValueError, match="a record batch must be a dict of columns, got Array"):
    MIXED.check_batch(jnp.zeros((B, 4)))


def test_batch_methods_keep_missing_cells_out_of_the_sender():
  """A record batch's theta_0 flags its missing cells 0; a step's y sends each observed cell and
  draws each missing one from the receiver (fold_in(key, 1)); agreement counts observed cells."""
  x = _with_missing(_record())
  theta0 = MIXED.batch_prior(x, jnp.float32)
  prior = MIXED.prior((B, 4), jnp.float32)
  jax.tree.map(np.testing.assert_array_equal, theta0.columns, prior.columns)
  expected_flags = np.ones((B, 4))
  expected_flags[[0, 3], 0] = 0
  expected_flags[1, 3] = 0
  np.testing.assert_array_equal(theta0.observed, expected_flags)
  assert theta0.observed.dtype == prior.observed.dtype

  out = MIXED.output_dist(_net_out(), prior, jnp.full((B,), 0.5))
  alpha = MIXED.accuracy(jnp.full((B,), 3), 5)
  y = MIXED.data_sample(KEY, x, out, alpha)
  sent = MIXED.sender_sample(KEY, x, alpha)
  drawn = MIXED.receiver_sample(jax.random.fold_in(KEY, 1), out, alpha)
  observed = MIXED.observed(x)
  for name in MIXED.names:
    seen = np.asarray(observed[name])
    np.testing.assert_array_equal(y[name][seen], sent[name][seen])
    np.testing.assert_array_equal(y[name][~seen], drawn[name][~seen])
  assert not np.array_equal(y["height"][0], sent["height"][0])

  estimate = dict(MIXED.fill(x))
  estimate["height"] = estimate["height"] + 0.25  # every height off by 0.25, the missing ones too
  estimate["island"] = (estimate["island"] + 1) % 4  # every island wrong
  stats = MIXED.agreement(x, estimate)
  # over age (exact) and height (0.25 off where observed; examples 0 and 3 miss theirs)
  np.testing.assert_allclose(stats["max_abs_error"], [0, 0.25, 0.25, 0, 0.25, 0.25], rtol=1e-6)
  # accuracy over the discretised and discrete columns (age, smoker, island) that are observed:
  # island is wrong wherever observed; example 1's island is missing
  want = np.full(B, 2 / 3)
  want[1] = 1.0
  np.testing.assert_allclose(stats["accuracy"], want, rtol=1e-6)


def test_hide_empties_a_fraction_of_the_cells_and_keeps_the_rest():
  x = _with_missing(_record(batch=4000))
  before = MIXED.observed(x)
  hidden = MIXED.hide(jax.random.key(3), x, 0.3)
  after = MIXED.observed(hidden)
  for name in MIXED.names:
    assert not np.any(after[name] & ~before[name]), "a missing cell came back"
    kept = np.asarray(after[name])
    np.testing.assert_array_equal(hidden[name][kept], x[name][kept])  # kept cells unchanged
    share = 1 - kept[np.asarray(before[name])].mean()
    assert abs(share - 0.3) < 0.03, (name, share)
  assert hidden["island"].dtype == x["island"].dtype and np.all(hidden["island"] >= MISSING_CLASS)
  other = MIXED.hide(jax.random.key(4), x, 0.3)
  assert any(np.any(after[n] != MIXED.observed(other)[n]) for n in MIXED.names)  # keyed
  same = MIXED.hide(jax.random.key(3), x, 0.0)
  assert all(np.array_equal(MIXED.observed(same)[n], before[n]) for n in MIXED.names)


def test_updates_leave_unobserved_cells_and_invert():
  x = _with_missing(_record())
  t = jnp.full((B,), 0.3)
  theta = MIXED.sample_flow(KEY, x, t)
  alpha = MIXED.accuracy(jnp.full((B,), 3), 10)
  y = MIXED.sender_sample(jax.random.key(1), x, alpha)
  new = MIXED.bayesian_update(theta, y, alpha)
  np.testing.assert_array_equal(new.columns["height"].mu[0], theta.columns["height"].mu[0])
  assert not np.allclose(new.columns["height"].mu[1], theta.columns["height"].mu[1])
  np.testing.assert_array_equal(
    new.columns["island"].log_probs[1], theta.columns["island"].log_probs[1]
  )
  back = MIXED.inverse_bayesian_update(new, y, alpha)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), back, theta)


def test_network_input_layout():
  x = _with_missing(_record())
  inputs = MIXED.data_input(x)
  # height 1 + flag, age 1 + flag, smoker 1 + flag, island 4 + flag
  assert inputs.shape == (B, MIXED.input_channels) == (B, 11)
  np.testing.assert_array_equal(inputs[:, 1], [0, 1, 1, 0, 1, 1])  # height's flag
  np.testing.assert_array_equal(inputs[jnp.array([0, 3]), 0], 0.0)  # the prior's mean
  np.testing.assert_allclose(inputs[1, 6:10], 0.25)  # a missing class reads as the uniform prior
  np.testing.assert_array_equal(inputs[:, 10], [1, 0, 1, 1, 1, 1])
  np.testing.assert_allclose(inputs[2, 0], x["height"][2, 0])
  theta = MIXED.prior((B, 4))
  prior_in = MIXED.net_input(theta)
  assert prior_in.shape == inputs.shape
  np.testing.assert_array_equal(prior_in[:, jnp.array([1, 3, 5, 10])], 1.0)
  assert MIXED.output_channels == 1 + 2 + 1 + 4


def test_sampling_pieces_are_per_column():
  theta = MIXED.prior((B, 4))
  t = jnp.zeros((B,))
  out = MIXED.output_dist(_net_out(), theta, t)
  alpha = MIXED.accuracy(jnp.ones((B,)), 5)
  y = MIXED.receiver_sample(KEY, out, alpha)
  for index, (name, flow) in enumerate(MIXED.columns):
    expected = flow.receiver_sample(jax.random.fold_in(KEY, index), out[name], alpha[name])
    np.testing.assert_array_equal(y[name], expected)
  draw = MIXED.sample_output(KEY, out)
  MIXED.validate_data({name: np.asarray(v) for name, v in draw.items()})
  assert MIXED.mean_ctime_weight() == sum(f.mean_ctime_weight() for _, f in MIXED.columns)
  np.testing.assert_allclose(
    MIXED.ctime_weight(jnp.array(0.5)), sum(f.ctime_weight(0.5) for _, f in MIXED.columns)
  )


def test_the_point_of_draws_votes_and_averages_per_column():
  # three draws (K, B = 2, 1) of each cell
  draws = {
    "height": jnp.array([[[0.1], [0.5]], [[0.3], [0.5]], [[0.2], [-0.4]]]),
    "age": discretised.quantize(jnp.array([[[-0.8], [0.9]], [[-0.6], [0.9]], [[-0.5], [0.1]]]), 8),
    "smoker": jnp.array([[[1], [0]], [[1], [1]], [[0], [0]]]),
    "island": jnp.array([[[3], [2]], [[1], [0]], [[3], [1]]]),  # row 1: a three-way tie
  }
  point = MIXED.point_of_draws(draws)
  np.testing.assert_allclose(point["height"], [[0.2], [0.2]], rtol=1e-6)
  # age's draws sit on bin centres -0.875, -0.625, -0.375 (mean -0.625) and 0.875, 0.875, 0.125
  # (mean 0.625): the mean moves to its bin centre
  np.testing.assert_allclose(point["age"], [[-0.625], [0.625]])
  np.testing.assert_array_equal(point["smoker"], [[1], [0]])
  np.testing.assert_array_equal(point["island"], [[3], [0]])  # the tie goes to the lower class
  assert point["island"].dtype == draws["island"].dtype
  with pytest.raises(ValueError):
    MIXED.point_of_draws({"height": draws["height"]})


@pytest.mark.parametrize(
  "columns, match",
  [((), "at least one column"), ((("a", CONT), ("a", BINS)), r"unique.*\['a'\]")],
)
def test_bad_column_sets(columns, match):
  with pytest.raises(ValueError, match=match):
    MixedFlow(columns)


def test_bad_records_name_the_problem():
  x = {name: np.asarray(v) for name, v in _record().items()}
  with pytest.raises(ValueError, match=r"missing \['island'\], unknown \['islnd'\]"):
    MIXED.validate_data({**{k: v for k, v in x.items() if k != "island"}, "islnd": x["island"]})
  with pytest.raises(ValueError, match=r"shape \(B, 1\)"):
    MIXED.validate_data({**x, "age": x["age"][:, 0]})
  with pytest.raises(ValueError, match="column 'island': x must hold classes in"):
    MIXED.validate_data({**x, "island": np.full((B, 1), 7)})
  with pytest.raises(ValueError, match="column 'smoker': classes must be ints"):
    MIXED.validate_data({**x, "smoker": x["smoker"].astype(np.float32)})
  with pytest.raises(ValueError, match="column 'height': x must lie in"):
    MIXED.validate_data({**x, "height": np.full((B, 1), 3.0, np.float32)})
  MIXED.validate_data({name: np.asarray(v) for name, v in _with_missing(_record()).items()})
  with pytest.raises(ValueError, match=r"net_out must have shape \(B, 8\)"):
    MIXED.output_dist(jnp.zeros((B, 7)), MIXED.prior((B, 4)), jnp.zeros((B,)))
