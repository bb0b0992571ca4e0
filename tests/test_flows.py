"""The Flow objects: shapes, conventions, Monte-Carlo losses and argument checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramrel_jax.bfn import continuous, discrete, discretised, flows, mixed

KEY = jax.random.key(0, impl="rbg")  # RngBitGenerator: much faster to compile than threefry
B, H, W, C = 2, 4, 3, 2
SHAPE = (B, H, W, C)

FLOWS = [
  flows.ContinuousFlow(0.02, 16),
  flows.DiscretisedFlow(0.02, 16, predict_std=True),
  flows.DiscretisedFlow(0.001, 256),
  flows.DiscreteFlow(3.0, 2),
  flows.DiscreteFlow(1.5, 5),
]


def _flow_id(flow) -> str:
  return f"{flow.data_type}-{getattr(flow, 'num_bins', getattr(flow, 'num_classes', ''))}"


def _data(flow, shape=SHAPE, key=KEY):
  if flow.data_type == "discrete":
    return jax.random.randint(key, shape, 0, flow.num_classes)
  return discretised.quantize(jax.random.uniform(key, shape, minval=-1, maxval=1), flow.num_bins)


def _all_methods(flow, key, x, net_out):
  """Calls every Flow method once; returns name -> result."""
  t = jnp.linspace(0.0, 1.0, B)
  i = jnp.arange(1, B + 1)
  theta = flow.sample_flow(key, x, t)
  out = flow.output_dist(net_out, theta, t)
  alpha = flow.accuracy(i, 10)
  y = flow.sender_sample(key, x, alpha)
  updated = flow.bayesian_update(theta, y, alpha)
  return {
    "prior": flow.prior(x.shape, jnp.float32),
    "theta": theta,
    "net_input": flow.net_input(theta),
    "out": out,
    "ctime_loss": flow.ctime_loss(x, out, t),
    "dtime_loss": flow.dtime_loss(key, x, out, i, 10, 3),
    "reconstruction_loss": flow.reconstruction_loss(x, out),
    "accuracy": alpha,
    "sender_sample": y,
    "receiver_sample": flow.receiver_sample(key, out, alpha),
    "updated": updated,
    "inverse": flow.inverse_bayesian_update(updated, y, alpha),
    "data_estimate": flow.data_estimate(out),
    "sample_output": flow.sample_output(key, out),
  }


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_shapes_and_dtypes(flow):
  x = _data(flow)
  net_out = jnp.zeros(SHAPE[:-1] + (C * flow.params_per_dim,), jnp.bfloat16)
  res = jax.eval_shape(lambda k, x, o: _all_methods(flow, k, x, o), KEY, x, net_out)
  discrete_data = flow.data_type == "discrete"
  K = flow.num_classes if discrete_data else None
  theta_shapes = (
    {"log_probs": SHAPE + (K,)} if discrete_data else {"mu": SHAPE, "rho": (B, 1, 1, 1)}
  )
  for name in ("prior", "theta", "updated", "inverse"):
    for field, shape in theta_shapes.items():
      leaf = getattr(res[name], field)
      assert leaf.shape == shape and leaf.dtype == jnp.float32, (name, field)
  assert res["net_input"].shape == SHAPE[:-1] + (C * flow.input_channels_per_dim,)
  for leaf in jax.tree.leaves(res["out"]):
    assert leaf.dtype == jnp.float32  # bfloat16 network outputs are upcast
  for name in ("ctime_loss", "dtime_loss", "reconstruction_loss", "accuracy"):
    assert res[name].shape == (B,) and res[name].dtype == jnp.float32, name
  y_shape = SHAPE + (K,) if discrete_data else SHAPE
  assert res["sender_sample"].shape == y_shape and res["receiver_sample"].shape == y_shape
  for name in ("data_estimate", "sample_output"):
    assert res[name].shape == SHAPE
    assert res[name].dtype == (jnp.int32 if discrete_data else jnp.float32)


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_methods_under_jit_are_finite_and_invertible(flow):
  x = _data(flow)
  net_out = jax.random.normal(KEY, SHAPE[:-1] + (C * flow.params_per_dim,))
  res = jax.jit(_all_methods, static_argnums=0)(flow, KEY, x, net_out)
  for name, value in res.items():
    for leaf in jax.tree.leaves(value):
      assert bool(jnp.all(jnp.isfinite(leaf))), name
  for a, b in zip(jax.tree.leaves(res["inverse"]), jax.tree.leaves(res["theta"]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  if flow.data_type == "discrete":
    assert bool(jnp.all((res["sample_output"] >= 0) & (res["sample_output"] < flow.num_classes)))
  elif flow.data_type == "discretised":
    for name in ("data_estimate", "sample_output"):
      np.testing.assert_array_equal(res[name], discretised.quantize(res[name], flow.num_bins))
  else:
    np.testing.assert_array_equal(res["data_estimate"], res["out"].x_hat)


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_every_flow_has_the_protocols_members(flow):
  members = [name for name in vars(flows.Flow) if not name.startswith("_")]
  members += list(flows.Flow.__annotations__)
  missing = [name for name in members if not hasattr(flow, name)]
  assert not missing and len(members) > 20


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_batch_methods_read_every_element_of_an_array(flow):
  """An array batch has no missing element: its theta_0 is the prior of its shape and each step
  reads it through the sender, whatever the receiver would say; it has no named columns."""
  x = _data(flow)
  with jax.enable_x64(True):  # the dtype is passed on (the default would be float64)
    want, got = flow.prior(SHAPE, jnp.float32), flow.batch_prior(x, jnp.float32)
  jax.tree.map(np.testing.assert_array_equal, got, want)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(got))
  alpha = flow.accuracy(2, 5)
  net_out = jax.random.normal(KEY, SHAPE[:-1] + (C * flow.params_per_dim,))
  out = flow.output_dist(net_out, flow.prior(SHAPE), jnp.full((B,), 0.5))
  np.testing.assert_array_equal(
    flow.data_sample(KEY, x, out, alpha), flow.sender_sample(KEY, x, alpha)
  )
  t = jnp.full((B,), 0.5)
  assert flow.column_ctime_losses(x, out, t) == {}  # no named columns: the totals are all
  assert flow.column_dtime_losses(KEY, x, out, jnp.full((B,), 2), 5) == {}
  assert flow.column_reconstruction_losses(x, out) == {}


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_batch_checks_read_images_of_the_flows_dtype_and_their_codes(flow):
  x = _data(flow)
  flow.check_batch(x)
  other = x.astype(jnp.float32) if flow.integer_data else x.astype(jnp.int32)
  with pytest.raises(ValueError, match=f"x0 for {flow.data_type} data must hold .* got dtype"):
    flow.check_batch(other)
  with pytest.raises(ValueError, match=r"x0 must have shape \(B, H, W, C\), got \(2, 4, 3\)"):
    flow.check_batch(x[..., 0])
  z = jnp.zeros((3, 5))
  k = (flow.num_classes,) if flow.y_event_ndim else ()
  for batch in (1, 3):  # a batch of 1 is shared by all z
    assert flow.codes_layout(z, jnp.zeros((batch, 7, H, W, C) + k)) == (7, (3, H, W, C))
  for u in (jnp.zeros((2, 7, H, W, C) + k), jnp.zeros((3, 7, H, W) + k)):
    with pytest.raises(ValueError, match=r"codes must hold z \(B, L\) and subcodes"):
      flow.codes_layout(z, u)
  with pytest.raises(ValueError, match=r"codes must hold z"):
    flow.codes_layout(z[0], jnp.zeros((3, 7, H, W, C) + k))


def test_agreement_counts_errors_and_equal_elements():
  x0 = jnp.array([[0.5, -0.5], [0.25, 1.0]])
  x = jnp.array([[0.5, 0.0], [0.25, 1.0]])
  for flow in (flows.ContinuousFlow(0.02, 4), flows.DiscretisedFlow(0.02, 4)):
    stats = flow.agreement(x0, x)
    np.testing.assert_allclose(stats["max_abs_error"], [0.5, 0.0])
    assert ("accuracy" in stats) == flow.finite_values
  np.testing.assert_allclose(flows.DiscretisedFlow(0.02, 4).agreement(x0, x)["accuracy"], [0.5, 1])
  classes = flows.DiscreteFlow(1.5, 5).agreement(jnp.array([[1, 2, 3]]), jnp.array([[1, 0, 3]]))
  assert set(classes) == {"accuracy"}
  np.testing.assert_allclose(classes["accuracy"], [2 / 3])
  with jax.enable_x64(True):  # a fraction in float32 whatever the default float
    assert flows.DiscretisedFlow(0.02, 4).agreement(x0, x)["accuracy"].dtype == jnp.float32


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_the_prior_keeps_mixed_precision_math_in_float32(flow):
  """theta_0 in the default float is a strong float32: a bfloat16 network output or sender
  sample mixed into it promotes to float32 (a weakly typed prior would give bfloat16)."""
  bf16 = jnp.ones((), jnp.bfloat16)
  for leaf in jax.tree.leaves(flow.prior((2, 3, 3, 1))):
    assert leaf.dtype == jnp.float32 and (leaf + bf16).dtype == jnp.float32


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_the_prior_takes_an_empty_batch_and_refuses_a_bad_shape(flow):
  assert jax.tree.leaves(flow.prior((0, 2, 2, 1)))[0].shape[0] == 0
  for shape in ((), (2, -1), (-1,)):
    with pytest.raises(ValueError) as error:
      flow.prior(shape)
    assert str(error.value) == f"data_shape must be (B, ...) of non-negative ints, got {shape}."


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_a_network_output_of_the_wrong_shape_is_named_with_both_shapes(flow):
  theta = flow.prior((2, 3, 3, 1))
  with pytest.raises(ValueError) as error:
    flow.output_dist(jnp.zeros((2, 3, 3, 7)), theta, jnp.full((2,), 0.5))
  expected = (2, 3, 3, flow.params_per_dim)
  assert str(error.value) == (
    f"net_out must have shape {expected} ({flow.params_per_dim} per data channel), "
    "got (2, 3, 3, 7)."
  )


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_receiver_moments_give_the_receiver_distribution(flow):
  """y = m + s u with u ~ N(0, I) has the mean and spread of `receiver_sample` (20,000 draws)."""
  net_out = jax.random.normal(KEY, (1, 2, 2, flow.params_per_dim))
  out = flow.output_dist(net_out, flow.prior((1, 2, 2, 1)), jnp.full((1,), 0.5))
  alpha = flow.accuracy(3, 10)
  m, s = flow.receiver_moments(out, alpha)
  keys = jax.random.split(KEY, 20_000)
  y = jax.vmap(lambda k: flow.receiver_sample(k, out, alpha))(keys)
  scale = float(jnp.max(jnp.broadcast_to(s, m.shape)))
  np.testing.assert_allclose(y.mean(0), m, atol=0.05 * scale)
  if flow.data_type == "continuous":  # a delta output: the spread is the sender's alone
    np.testing.assert_allclose(y.std(0), jnp.broadcast_to(s, m.shape), rtol=0.05)
  assert y.shape[1:] == m.shape and m.ndim == 4 + flow.y_event_ndim


def test_flows_are_static_hashable_pytrees():
  for flow in FLOWS:
    assert jax.tree.leaves(flow) == []
    assert hash(flow) == hash(
      flows.make_flow(
        flow.data_type,
        sigma1=getattr(flow, "sigma1", 0.5),
        beta1=getattr(flow, "beta1", 1.0),
        num_bins=getattr(flow, "num_bins", 256),
        num_classes=getattr(flow, "num_classes", 2),
        predict_std=getattr(flow, "predict_std", False),
      )
    )
  flow = FLOWS[3]
  as_arg = jax.jit(lambda f, x: f.net_input(f.prior(x.shape)))(flow, jnp.zeros((1, 2)))
  np.testing.assert_array_equal(as_arg, 0.0)


def test_make_flow_builds_each_type_and_rejects_unknown():
  kwargs = dict(sigma1=0.001, beta1=3.0, num_bins=256, num_classes=2, predict_std=True)
  assert flows.make_flow("continuous", **kwargs) == flows.ContinuousFlow(0.001, 256)
  assert flows.make_flow("discretised", **kwargs) == flows.DiscretisedFlow(0.001, 256, True)
  assert flows.make_flow("discrete", **kwargs) == flows.DiscreteFlow(3.0, 2)
  with pytest.raises(ValueError, match="data_type"):
    flows.make_flow("binary", **kwargs)
  del kwargs["predict_std"]  # a discretised flow predicts only the mean unless asked
  assert flows.make_flow("discretised", **kwargs).params_per_dim == 1
  assert flows.DATA_TYPES == ("continuous", "discretised", "discrete")


def test_each_flow_names_the_images_it_models():
  """What `configuration.resolve` prepares the images by: binarised for a 2-class discrete flow,
  the K bin centres for a discretised flow, raw floats for a continuous one; none for records."""
  assert flows.ContinuousFlow(0.01, 256).image_format() == flows.ImageFormat(False, 0)
  assert flows.DiscretisedFlow(0.01, 16).image_format() == flows.ImageFormat(False, 16)
  assert flows.DiscreteFlow(3.0, 2).image_format() == flows.ImageFormat(True, 0)
  with pytest.raises(ValueError, match="flow.num_classes=5 but binarised images have 2"):
    flows.DiscreteFlow(3.0, 5).image_format()
  record = mixed.MixedFlow((("a", flows.ContinuousFlow(0.01, 0)),))
  with pytest.raises(ValueError, match="records, not images"):
    record.image_format()


@pytest.mark.parametrize(
  "make, match",
  [
    (lambda: flows.ContinuousFlow(0.0), "sigma1 must lie in (0, 1), got 0.0."),
    (lambda: flows.ContinuousFlow(1.0), "sigma1 must lie in (0, 1), got 1.0."),
    (
      lambda: flows.ContinuousFlow(0.1, num_bins=1),
      "num_bins must be 0 (data not quantised) or >= 2, got 1.",
    ),
    (lambda: flows.ContinuousFlow(0.1, num_bins=-2), "num_bins must be >= 0, got -2."),
    (lambda: flows.DiscretisedFlow(-0.1, 16), "sigma1 must lie in (0, 1), got -0.1."),
    (lambda: flows.DiscretisedFlow(0.1, 16.0), "num_bins must be a static Python int, got 16.0."),
    (lambda: flows.DiscreteFlow(0.0, 2), "beta1 must be > 0, got 0.0."),
    (lambda: flows.DiscreteFlow(1.0, 1), "num_classes must be >= 2, got 1."),
  ],
)
def test_bad_hyperparameters_raise(make, match):
  """Each bad hyperparameter is refused by one message naming it and its value."""
  with pytest.raises(ValueError) as error:
    make()
  assert str(error.value) == match


@pytest.mark.parametrize(
  "flow, x, match",
  [
    (FLOWS[0], np.full((2, 3), 1.5, np.float32), r"\[-1, 1\]"),
    (FLOWS[0], np.zeros((2, 3), np.int32), "float"),
    (FLOWS[0], np.float32(0.1), "batch"),
    (FLOWS[1], np.full((2, 3), 0.01, np.float32), "bin centres"),
    (FLOWS[4], np.full((2, 3), 5, np.int32), r"\[0, 5\)"),
    (FLOWS[4], np.full((2, 3), -1, np.int32), r"\[0, 5\)"),
    (FLOWS[3], np.zeros((2, 3), np.float32), "int"),
  ],
)
def test_validate_data_rejects_bad_data(flow, x, match):
  with pytest.raises(ValueError, match=match):
    flow.validate_data(x)


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_validate_data_accepts_exactly_the_valid_values(flow):
  """Every valid value passes; the nearest invalid one, just past the edge, is refused."""
  if flow.data_type == "discrete":
    valid = np.arange(flow.num_classes, dtype=np.int32)
    invalid = np.array([flow.num_classes], np.int32)
  elif flow.data_type == "discretised":
    k = flow.num_bins
    valid = ((2 * np.arange(k) + 1) / k - 1).astype(np.float32)  # the K bin centres
    invalid = valid[:1] + np.float32(2e-3 / k)
  else:
    valid = np.array([-1.0, -0.3, 0.123, 1.0], np.float32)
    invalid = np.nextafter(np.float32([1.0]), np.float32(2.0))
  assert flow.validate_data(valid[None]) is None
  assert flow.validate_data(np.asarray(_data(flow))) is None
  with pytest.raises(ValueError, match="x must"):
    flow.validate_data(invalid[None])


def test_output_dist_rejects_a_wrong_channel_count():
  flow = FLOWS[1]
  theta = flow.prior(SHAPE)
  with pytest.raises(ValueError, match="net_out"):
    flow.output_dist(jnp.zeros(SHAPE), theta, jnp.zeros(B))


def test_discrete_net_input_conventions():
  """K = 2: 2 p_0 - 1 (the official BFN input); K > 2: the probabilities, channel-major."""
  flow2, flow5 = flows.DiscreteFlow(3.0, 2), flows.DiscreteFlow(1.5, 5)
  np.testing.assert_array_equal(flow2.net_input(flow2.prior(SHAPE)), 0.0)
  np.testing.assert_allclose(flow5.net_input(flow5.prior(SHAPE)), 0.2, rtol=1e-6)
  log_probs = jax.nn.log_softmax(jax.random.normal(KEY, SHAPE + (5,)))
  net_in = flow5.net_input(flows.CategoricalTheta(log_probs))
  np.testing.assert_allclose(net_in.reshape(SHAPE + (5,)), jnp.exp(log_probs), rtol=1e-6)
  np.testing.assert_allclose(net_in[..., 5:10], jnp.exp(log_probs[..., 1, :]), rtol=1e-6)
  log_probs2 = jax.nn.log_softmax(log_probs[..., :2])
  np.testing.assert_allclose(
    flow2.net_input(flows.CategoricalTheta(log_probs2)),
    2 * jnp.exp(log_probs2[..., 0]) - 1,
    rtol=1e-6,
  )


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_data_input_is_net_input_at_the_data(flow):
  """data_input(x) has net_input's shape and layout: net_input of theta concentrated on x."""
  x = _data(flow)
  data_in = jax.jit(lambda f, x: f.data_input(x))(flow, x)
  assert data_in.dtype == jnp.float32
  if flow.data_type == "discrete":
    log_probs = jax.nn.log_softmax(60.0 * jax.nn.one_hot(x, flow.num_classes))
    expected = flow.net_input(flows.CategoricalTheta(log_probs))
  else:
    expected = flow.net_input(flows.GaussianTheta(x, jnp.ones((B, 1, 1, 1))))
  assert data_in.shape == flow.net_input(flow.prior(SHAPE)).shape
  np.testing.assert_allclose(data_in, expected, atol=1e-6)
  if flow.data_type == "discrete" and flow.num_classes == 2:
    np.testing.assert_array_equal(data_in, 1 - 2 * x)  # 2 p_0 - 1: +1 for class 0


@pytest.mark.parametrize("flow", FLOWS, ids=_flow_id)
def test_integer_inputs_give_the_default_float_dtype(flow):
  """Step indices, shapes and class data carry no float dtype: float64 under x64, else float32.

  Float step indices keep their dtype and an explicit dtype wins (issue 12).
  """
  for x64, default in ((False, jnp.float32), (True, jnp.float64)):
    with jax.enable_x64(x64):
      i = jnp.arange(1, 4, dtype=jnp.int32)
      alpha = flow.accuracy(i, 10)
      assert alpha.dtype == default
      assert flow.accuracy(i.astype(jnp.float32), 10).dtype == jnp.float32
      assert flow.accuracy(i, 10, jnp.float32).dtype == jnp.float32
      assert all(leaf.dtype == default for leaf in jax.tree.leaves(flow.prior(SHAPE)))
      if flow.data_type == "discrete":
        x = jnp.zeros(SHAPE, jnp.int32)
        assert flow.data_input(x).dtype == default
        assert flow.sender_sample(KEY, x, jnp.arange(1, B + 1)).dtype == default
    with jax.enable_x64(True):
      want = flow.accuracy(jnp.arange(1, 4, dtype=jnp.float64), 10)
      np.testing.assert_allclose(alpha, want, rtol=1e-13 if x64 else 1e-6)


def test_output_dist_channel_layout_and_official_mappings():
  t = jnp.array([0.3, 0.9])
  t_b = t.reshape(B, 1, 1, 1)
  mu = 0.5 * jax.random.normal(KEY, SHAPE)
  theta = flows.GaussianTheta(mu, continuous.precision(t_b, 0.02))
  net_out = jax.random.normal(KEY, SHAPE[:-1] + (2 * C,))
  flow = flows.DiscretisedFlow(0.02, 16, predict_std=True)
  out = flow.output_dist(net_out, theta, t)
  mean, std = discretised.predict_mean_std(mu, net_out[..., 0::2], net_out[..., 1::2], t_b, 0.02)
  np.testing.assert_allclose(out.mean, mean, rtol=1e-6)
  np.testing.assert_allclose(out.std, std, rtol=1e-6)
  one = flows.DiscretisedFlow(0.02, 16).output_dist(net_out[..., :C], theta, t)
  _, unit = discretised.predict_mean_std(mu, net_out[..., :C], 0.0, t_b, 0.02)
  np.testing.assert_allclose(one.std, unit, rtol=1e-6)

  x_hat = flows.ContinuousFlow(0.02).output_dist(net_out[..., :C], theta, t).x_hat
  np.testing.assert_allclose(
    x_hat, continuous.predict_x(mu, net_out[..., :C], t_b, 0.02), rtol=1e-6
  )
  assert float(jnp.abs(x_hat).max()) <= 1.0

  log_probs = (
    flows.DiscreteFlow(1.0, 2)
    .output_dist(net_out[..., :C], flows.DiscreteFlow(1.0, 2).prior(SHAPE), t)
    .log_probs
  )
  p1 = jax.nn.sigmoid(net_out[..., :C])  # the official Bernoulli of class 1
  np.testing.assert_allclose(jnp.exp(log_probs), jnp.stack([1 - p1, p1], -1), rtol=1e-5)
  flow5 = flows.DiscreteFlow(1.0, 5)
  logits = jax.random.normal(KEY, SHAPE[:-1] + (5 * C,))
  out5 = flow5.output_dist(logits, flow5.prior(SHAPE), t)
  np.testing.assert_allclose(out5.probs[..., 1, :], jax.nn.softmax(logits[..., 5:10]), rtol=1e-5)


def test_reconstruction_losses_follow_the_official_code():
  x = discretised.quantize(jnp.array([[-1.0, 0.1, 0.99]]), 16)
  x_hat = jnp.array([[-0.9, 0.12, 0.9]])
  cont16 = flows.ContinuousFlow(1e-3**0.5, 16).reconstruction_loss(x, flows.DeltaOutput(x_hat))
  np.testing.assert_allclose(
    cont16, -discretised.log_prob(x, x_hat, 0.7 * 1e-3**0.5, 16).sum(), rtol=1e-6
  )
  cont256 = flows.ContinuousFlow(1e-3, 256).reconstruction_loss(x, flows.DeltaOutput(x_hat))
  np.testing.assert_allclose(cont256, -discretised.log_prob(x, x_hat, 1e-3, 256).sum(), rtol=1e-6)
  unbinned = flows.ContinuousFlow(1e-3, 0).reconstruction_loss(x, flows.DeltaOutput(x_hat))
  np.testing.assert_allclose(
    unbinned, -continuous.sender_log_prob(x, x_hat, 1e-3**-2).sum(), rtol=1e-6
  )
  xc = jnp.array([[0, 1, 1]])
  logits = jnp.array([[0.3, -2.0, 4.0]])
  flow = flows.DiscreteFlow(3.0, 2)
  loss = flow.reconstruction_loss(xc, flow.output_dist(logits, flow.prior(xc.shape), jnp.ones(1)))
  bce = -jnp.sum(jnp.where(xc == 1, jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)))
  np.testing.assert_allclose(loss, [bce], rtol=1e-6)


@pytest.mark.parametrize("flow", [FLOWS[1], FLOWS[4]], ids=_flow_id)
def test_dtime_loss_averages_num_samples_sender_draws(flow):
  """Many draws shrink the spread of the Monte-Carlo estimate around the same mean."""
  x = _data(flow, (1, 2, 2, 1))
  net_out = jax.random.normal(KEY, (1, 2, 2, flow.params_per_dim))
  t = jnp.array([0.4])
  i = jnp.array([5])

  @jax.jit
  def estimates(keys):
    out = flow.output_dist(net_out, flow.sample_flow(KEY, x, t), t)
    one = jax.vmap(lambda k: flow.dtime_loss(k, x, out, i, 10, 1))(keys)
    many = jax.vmap(lambda k: flow.dtime_loss(k, x, out, i, 10, 64))(keys)
    return one, many

  one, many = estimates(jax.random.split(KEY, 400))
  assert one.shape == many.shape == (400, 1)
  assert float(jnp.std(many)) < float(jnp.std(one)) / 4
  np.testing.assert_allclose(jnp.mean(many), jnp.mean(one), rtol=0.25)


@jax.jit
def _flows_at_zero():
  return [(flow.sample_flow(KEY, _data(flow), jnp.zeros(B)), flow.prior(SHAPE)) for flow in FLOWS]


def test_sample_flow_at_zero_is_the_prior():
  for theta, prior in _flows_at_zero():
    for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(prior), strict=True):
      np.testing.assert_allclose(a, b, atol=1e-6)


def test_nats_and_bits_per_dim():
  loss = jnp.array([24.0 * math.log(2), 0.0])
  np.testing.assert_allclose(flows.nats_per_dim(loss, SHAPE), loss / 24)
  np.testing.assert_allclose(flows.bits_per_dim(loss, SHAPE), [1.0, 0.0], rtol=1e-6)


def test_discrete_flow_update_is_alpha_free_and_matches_the_api():
  flow = flows.DiscreteFlow(3.0, 5)
  theta = flow.sample_flow(KEY, _data(flow), jnp.array([0.3, 0.6]))
  y = 3 * jax.random.normal(KEY, SHAPE + (5,))
  new = flow.bayesian_update(theta, y, jnp.array([0.1, 0.2]))
  np.testing.assert_allclose(
    new.probs, discrete.bayesian_update(theta.probs, y), rtol=1e-5, atol=1e-7
  )


@pytest.mark.parametrize("K", [2, 16, 256])
def test_normal_bin_mean_equals_the_mean_of_the_bin_masses(K):
  from paramrel_jax.bfn import discretised

  rng = np.random.default_rng(K)
  mean = rng.uniform(-1.5, 1.5, (64,)).astype(np.float32)
  std = np.exp(rng.uniform(-6, 1, (64,))).astype(np.float32)
  expected = discretised.distribution_mean(discretised.bin_probs(mean, std, K))
  np.testing.assert_allclose(discretised.normal_bin_mean(mean, std, K), expected, atol=2e-6)


def _per_type_calls(flow, key, x, net_out, t, i, alpha):
  """What each Flow method must equal: the per-type function of `bfn` at per-example (B, 1, 1, 1)
  times, steps and accuracies, with per-example sums where the method returns (B,)."""
  t4, i4, a4 = (v.reshape(B, 1, 1, 1) for v in (t, i, alpha))
  theta = flow.sample_flow(key, x, t)
  out = flow.output_dist(net_out, theta, t)
  total = lambda v: jnp.sum(v, axis=(1, 2, 3))  # noqa: E731
  if flow.data_type == "discrete":
    K, beta1 = flow.num_classes, flow.beta1
    logits = net_out if K == 2 else net_out.reshape(SHAPE + (K,))
    probs = jnp.exp(out.log_probs)
    y = discrete.sender_sample(key, x, a4, K)
    return (
      theta,
      out,
      {
        "theta": discrete.sample_flow(key, x, t4, beta1, K),
        "out": discrete.output_log_probs(logits, K),
        "ctime_loss": total(discrete.ctime_loss(x, probs, t4, beta1, K)),
        "dtime_loss": total(discrete.dtime_loss(key, x, out.log_probs, i4, 10, beta1, K, 2)),
        "reconstruction_loss": total(discrete.reconstruction_loss(x, out.log_probs)),
        "accuracy": discrete.accuracy(i, 10, beta1),
        "sender_sample": y,
        "receiver_sample": discrete.receiver_sample(key, out.log_probs, a4, K),
        "updated": discrete.update_log_probs(theta.log_probs, y),
        "ctime_weight": K * beta1 * t,
        "moments": (a4[..., None] * (K * probs - 1), jnp.sqrt(a4[..., None] * K)),
        "flow_estimate": jnp.argmax(theta.log_probs, -1),
        "data_estimate": jnp.argmax(out.log_probs, -1),
        "sample_output": discrete.sample(key, out.log_probs),
      },
    )
  sigma1 = flow.sigma1
  mu, rho = continuous.sample_flow(key, x, t4, sigma1)
  y = continuous.sender_sample(key, x, a4)
  common = {
    "theta": (mu, rho),
    "accuracy": continuous.accuracy(i, 10, sigma1),
    "sender_sample": y,
    "updated": continuous.bayesian_update(mu, rho, y, a4),
    "ctime_weight": -math.log(sigma1) * sigma1 ** (-2 * t),
    "flow_estimate": mu if flow.data_type == "continuous" else discretised.quantize(mu, 16),
  }
  if flow.data_type == "continuous":
    x_hat = continuous.predict_x(mu, net_out, t4, sigma1)
    return (
      theta,
      out,
      {
        **common,
        "out": (x_hat,),
        "ctime_loss": total(continuous.ctime_loss(x, x_hat, t4, sigma1)),
        "dtime_loss": total(continuous.dtime_loss(x, x_hat, i4, 10, sigma1)),
        "reconstruction_loss": total(
          discretised.delta_reconstruction_loss(x, x_hat, sigma1, flow.num_bins)
        ),
        "receiver_sample": continuous.sender_sample(key, x_hat, a4),
        "moments": (x_hat, 1 / jnp.sqrt(a4)),
        "data_estimate": x_hat,
        "sample_output": x_hat,
      },
    )
  params = net_out.reshape(SHAPE + (flow.params_per_dim,))
  log_std = params[..., 1] if flow.predict_std else 0 * params[..., 0]
  mean, std = discretised.predict_mean_std(mu, params[..., 0], log_std, t4, sigma1)
  probs = discretised.bin_probs(mean, std, 16)
  bin_mean = discretised.normal_bin_mean(mean, std, 16)
  return (
    theta,
    out,
    {
      **common,
      "out": (mean, std),
      "ctime_loss": total(continuous.ctime_loss(x, bin_mean, t4, sigma1)),
      "dtime_loss": total(discretised.dtime_loss(key, x, probs, i4, 10, sigma1, 16, 2)),
      "reconstruction_loss": total(discretised.reconstruction_loss(x, mean, std, 16)),
      "receiver_sample": discretised.receiver_sample(key, mean, std, a4, 16),
      "moments": (discretised.distribution_mean(probs), 1 / jnp.sqrt(a4)),
      "data_estimate": discretised.quantize(bin_mean, 16),
      "sample_output": discretised.sample(key, mean, std, 16),
    },
  )


VALUE_FLOWS = [
  flows.ContinuousFlow(0.02, 16),
  flows.DiscretisedFlow(0.02, 16),
  flows.DiscretisedFlow(0.05, 16, predict_std=True),
  flows.DiscreteFlow(3.0, 2),
  flows.DiscreteFlow(1.5, 4),
]


@pytest.mark.parametrize("flow", VALUE_FLOWS, ids=_flow_id)
def test_every_method_is_the_per_type_math_per_example(flow):
  """Each Flow method against the `bfn` function it wraps, at distinct per-example t, i, alpha."""
  x = _data(flow)
  net_out = 0.7 * jax.random.normal(jax.random.key(1), SHAPE[:-1] + (C * flow.params_per_dim,))
  t, i = jnp.array([0.35, 0.8]), jnp.array([3, 7])
  alpha = flow.accuracy(i, 10)
  theta, out, want = _per_type_calls(flow, KEY, x, net_out, t, i, alpha)
  y = flow.sender_sample(KEY, x, alpha)
  updated = flow.bayesian_update(theta, y, alpha)
  got = {
    "theta": theta,
    "out": out,
    "ctime_loss": flow.ctime_loss(x, out, t),
    "dtime_loss": flow.dtime_loss(KEY, x, out, i, 10, 2),
    "reconstruction_loss": flow.reconstruction_loss(x, out),
    "accuracy": alpha,
    "sender_sample": y,
    "receiver_sample": flow.receiver_sample(KEY, out, alpha),
    "updated": updated,
    "ctime_weight": flow.ctime_weight(t),
    "moments": flow.receiver_moments(out, alpha),
    "flow_estimate": flow.flow_estimate(theta),
    "data_estimate": flow.data_estimate(out),
    "sample_output": flow.sample_output(KEY, out),
  }
  assert got["ctime_loss"].shape == got["dtime_loss"].shape == (B,)
  for name, value in want.items():
    for g, w in zip(jax.tree.leaves(got[name]), jax.tree.leaves(value), strict=True):
      np.testing.assert_allclose(
        np.broadcast_to(g, np.shape(w)), w, rtol=2e-5, atol=1e-6, err_msg=name
      )
  inverse = flow.inverse_bayesian_update(updated, y, alpha)
  for a, b in zip(jax.tree.leaves(inverse), jax.tree.leaves(theta), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("flow", VALUE_FLOWS, ids=_flow_id)
def test_the_mean_ctime_weight_is_the_integral_of_the_weight(flow):
  grid = np.linspace(0.0, 1.0, 20_001)
  weight = np.asarray(flow.ctime_weight(jnp.asarray(grid)), np.float64)
  assert flow.mean_ctime_weight() == pytest.approx(np.trapezoid(weight, grid), rel=1e-6)


@pytest.mark.parametrize("flow", VALUE_FLOWS, ids=_flow_id)
def test_the_prior_and_accuracy_dtypes(flow):
  """prior: theta_0 in dtype (default: the default float); accuracy: in dtype when given."""
  prior = flow.prior(SHAPE)
  if flow.data_type == "discrete":
    np.testing.assert_allclose(prior.log_probs, -math.log(flow.num_classes))
    assert prior.log_probs.shape == SHAPE + (flow.num_classes,)
  else:
    np.testing.assert_array_equal(prior.mu, np.zeros(SHAPE))
    np.testing.assert_array_equal(prior.rho, np.ones((B, 1, 1, 1)))
  assert {leaf.dtype for leaf in jax.tree.leaves(prior)} == {jnp.dtype(jnp.float32)}
  half = flow.prior(SHAPE, jnp.bfloat16)
  assert {leaf.dtype for leaf in jax.tree.leaves(half)} == {jnp.dtype(jnp.bfloat16)}
  i = jnp.array([1, 4])
  assert flow.accuracy(i, 10).dtype == jnp.float32
  assert flow.accuracy(i, 10, jnp.bfloat16).dtype == jnp.bfloat16
  np.testing.assert_allclose(flow.accuracy(i, 10, jnp.bfloat16), flow.accuracy(i, 10), rtol=1e-2)


def test_validate_data_takes_a_batch_of_scalars_and_the_tolerance_edge():
  """x (B,) is a batch; 0-d is not. Discretised data may be off a centre by 1e-3 / K inclusive,
  and the error names the largest distance."""
  for flow in FLOWS:
    assert flow.validate_data(np.asarray(_data(flow, (3,)))) is None
  flow = flows.DiscretisedFlow(0.02, 15)  # 0 is the centre of bin 7: distances below are exact
  assert flow.validate_data(np.array([1e-3 / 15])) is None
  centre = 17 / 15 - 1
  with pytest.raises(ValueError, match=r"max distance 0\.0(099|100)"):
    flow.validate_data(np.array([centre + 0.01]))


@pytest.mark.parametrize("flow", VALUE_FLOWS, ids=_flow_id)
def test_n_step_loss_checks_num_samples_and_takes_one_by_default(flow):
  x = _data(flow)
  out = flow.output_dist(jnp.zeros(SHAPE[:-1] + (C * flow.params_per_dim,)), flow.prior(SHAPE), 0.5)
  i = jnp.array([2, 6])
  with pytest.raises(ValueError, match="^num_samples must be >= 1"):
    flow.dtime_loss(KEY, x, out, i, 10, 0)
  np.testing.assert_array_equal(
    flow.dtime_loss(KEY, x, out, i, 10), flow.dtime_loss(KEY, x, out, i, 10, num_samples=1)
  )


def _float32_case(flow):
  """Under x64: float32 data (ints for discrete), theta at t = (0.3, 0.7) and a zero output."""
  x = _data(flow)
  x = x if flow.data_type == "discrete" else x.astype(jnp.float32)
  theta = flow.sample_flow(KEY, x, jnp.array([0.3, 0.7], jnp.float32))
  net_out = jnp.zeros(SHAPE[:-1] + (C * flow.params_per_dim,), jnp.float32)
  return x, theta, flow.output_dist(net_out, theta, jnp.array([0.3, 0.7], jnp.float32))


@pytest.mark.parametrize("flow", VALUE_FLOWS, ids=_flow_id)
def test_updates_and_losses_keep_the_parameters_dtype_under_x64(flow):
  """float32 theta and data with float64 y and alpha: the updates stay float32, as the losses."""
  with jax.enable_x64(True):
    x, theta, out = _float32_case(flow)
    alpha = jnp.array([0.5, 2.0], jnp.float64)
    y = flow.sender_sample(KEY, x, alpha).astype(jnp.float64)
    for updated in (
      flow.bayesian_update(theta, y, alpha),
      flow.inverse_bayesian_update(theta, y, alpha),
    ):
      assert {leaf.dtype for leaf in jax.tree.leaves(updated)} == {jnp.dtype(jnp.float32)}
    assert flow.dtime_loss(KEY, x, out, jnp.array([2, 6]), 10).dtype == jnp.float32


def test_hyperparameters_are_stored_as_python_scalars():
  """numpy scalars from a config become float / int / bool, so equal flows hash equally."""
  flow = flows.DiscretisedFlow(np.float32(0.5), np.int64(16), np.int64(1))
  assert type(flow.sigma1) is float and type(flow.num_bins) is int and flow.predict_std is True
  flow = flows.ContinuousFlow(np.float32(0.5), np.int64(16))
  assert type(flow.sigma1) is float and type(flow.num_bins) is int
  flow = flows.DiscreteFlow(np.float32(2.0), np.int64(3))
  assert type(flow.beta1) is float and type(flow.num_classes) is int
  for make in (flows.DiscretisedFlow, flows.ContinuousFlow):
    assert make(0.02, 2).num_bins == 2  # the fewest bins
    with pytest.raises(ValueError, match="^num_bins must be (>= 2|0 .* or >= 2), got 1"):
      make(0.02, 1)
  assert flows.ContinuousFlow(0.02, 0).num_bins == 0  # continuous data need no bins
  with pytest.raises(ValueError, match="^num_bins must be >= 2, got 0"):
    flows.DiscretisedFlow(0.02, 0)


@pytest.mark.parametrize("flow", VALUE_FLOWS, ids=_flow_id)
def test_data_input_and_ctime_loss_keep_float32_under_x64(flow):
  """Under x64: float32 data give a float32 network input, and float64 times a float32 loss."""
  with jax.enable_x64(True):
    x, _, out = _float32_case(flow)
    if flow.data_type != "discrete":
      assert flow.data_input(x).dtype == jnp.float32
    assert flow.ctime_loss(x, out, jnp.array([0.3, 0.7], jnp.float64)).dtype == jnp.float32


@pytest.mark.parametrize("flow", VALUE_FLOWS, ids=_flow_id)
def test_output_dist_promotes_the_network_output_and_the_parameters_under_x64(flow):
  """The output distribution is in promote(net_out, theta) whatever dtype t comes in."""
  with jax.enable_x64(True):
    _, theta32, _ = _float32_case(flow)
    theta64 = jax.tree.map(lambda a: a.astype(jnp.float64), theta32)
    net = jnp.zeros(SHAPE[:-1] + (C * flow.params_per_dim,))
    t64 = jnp.array([0.3, 0.7], jnp.float64)
    for theta, net_dtype, want in (
      (theta32, jnp.float32, jnp.float32),
      (theta32, jnp.float64, jnp.float64),
      (theta64, jnp.float32, jnp.float64),
    ):
      out = flow.output_dist(net.astype(net_dtype), theta, t64)
      assert {leaf.dtype for leaf in jax.tree.leaves(out)} == {jnp.dtype(want)}


@pytest.mark.parametrize("flow", VALUE_FLOWS, ids=_flow_id)
def test_draws_and_moments_are_in_the_datas_dtype_under_x64(flow):
  """float32 data with float64 t and alpha: the flow, the sender and receiver draws and the
  receiver's moments stay float32."""
  with jax.enable_x64(True):
    x, _, out = _float32_case(flow)
    t64, alpha64 = jnp.array([0.3, 0.7], jnp.float64), jnp.array([0.5, 2.0], jnp.float64)
    draws = {
      "receiver_sample": flow.receiver_sample(KEY, out, alpha64),
      "receiver_moments": flow.receiver_moments(out, alpha64),
    }
    if flow.data_type != "discrete":  # discrete data are ints: t and alpha set the float dtype
      draws["sample_flow"] = flow.sample_flow(KEY, x, t64)
      draws["sender_sample"] = flow.sender_sample(KEY, x, alpha64)
    for name, value in draws.items():
      assert {leaf.dtype for leaf in jax.tree.leaves(value)} == {jnp.dtype(jnp.float32)}, name


def test_discrete_estimates_and_draws_are_int32_classes():
  flow = flows.DiscreteFlow(3.0, 4)
  with jax.enable_x64(True):
    theta = flow.sample_flow(KEY, _data(flow), jnp.array([0.3, 0.7]))
    out = flow.output_dist(jnp.zeros(SHAPE[:-1] + (4 * C,)), theta, jnp.array([0.3, 0.7]))
    for value in (flow.flow_estimate(theta), flow.data_estimate(out), flow.sample_output(KEY, out)):
      assert value.dtype == jnp.int32 and value.shape == SHAPE
