"""Tests of methods.paramrel.reverse_sampling: codes, replay and reconstruction (paper Eq. 5)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sampling_testlib import (
  DATA_SHAPE,
  FLOW_CASES,
  LATENT_DIM,
  TinyNet,
  data_batch,
  flow_of,
  tiny_model,
)

from paramrel_jax.bfn import flows
from paramrel_jax.bfn.mixed import MISSING_CLASS, MixedFlow
from paramrel_jax.config.network import ENCODER_INPUTS, get_variant
from paramrel_jax.methods.paramrel import reverse_sampling as rs
from paramrel_jax.methods.paramrel import sampling
from paramrel_jax.networks.record_net import RecordNet

N_STEPS = 12


def _assert_paths_close(flow, got, want):
  if flow.data_type == "discrete":
    np.testing.assert_allclose(got.log_probs, want.log_probs, rtol=1e-5, atol=1e-4)
  else:
    np.testing.assert_allclose(got.mu, want.mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.rho, want.rho, rtol=1e-6)


@pytest.mark.parametrize("encoder_input", ENCODER_INPUTS)
@pytest.mark.parametrize("case", list(FLOW_CASES))
def test_decode_replays_the_data_conditioned_path(case, encoder_input):
  flow = flow_of(case)
  net, params = tiny_model(flow, net_cls=functools.partial(TinyNet, encoder_input=encoder_input))
  x0 = data_batch(flow)
  key = jax.random.key(7)
  codes = rs.encode(key, flow, net, params, x0, n_steps=N_STEPS)
  extra = (flow.num_classes,) if flow.data_type == "discrete" else ()
  assert codes.z.shape == (DATA_SHAPE[0], LATENT_DIM)
  assert codes.subcodes.shape == (DATA_SHAPE[0], N_STEPS) + DATA_SHAPE[1:] + extra
  data = rs.data_flow(key, flow, x0, n_steps=N_STEPS)
  rec = rs.decode(flow, net, params, codes, return_path=True)
  _assert_paths_close(flow, rec.path, data.theta)
  _assert_paths_close(flow, rec.theta, jax.tree.map(lambda a: a[-1], data.theta))
  # The replay is steered by the codes: other subcodes or another z leave x0's path. TinyNet
  # adds FIXED_GAIN sum(z) (times 1..C) to its outputs by construction: z + 1 moves them >= 0.75.
  # The subcodes move by N(0, 1) noise: a constant shift per K-vector would be a no-op for
  # discrete data (the Bayesian update ignores it).
  noise = jax.random.normal(jax.random.key(8), codes.subcodes.shape)
  for other in (codes._replace(subcodes=codes.subcodes + noise), codes._replace(z=codes.z + 1.0)):
    moved = rs.decode(flow, net, params, other, return_path=True)
    change = np.abs(jax.tree.leaves(moved.theta)[0] - jax.tree.leaves(rec.theta)[0])
    assert np.max(change) > 1e-2, np.max(change)
  # With an accurate network the subcodes are the sender noise; here they are still O(1).
  assert 0.5 < float(jnp.std(codes.subcodes)) < 3.0


@pytest.mark.parametrize("case", ["continuous", "categorical"])
def test_inverse_update_walks_the_replayed_path_back(case):
  flow = flow_of(case)
  net, params = tiny_model(flow)
  x0 = data_batch(flow)
  key = jax.random.key(3)
  data = rs.data_flow(key, flow, x0, n_steps=N_STEPS)
  path = rs.decode(
    flow, net, params, rs.encode(key, flow, net, params, x0, n_steps=N_STEPS), return_path=True
  ).path
  steps = jnp.arange(1, N_STEPS + 1)
  alphas = jax.vmap(lambda i: flow.accuracy(i, N_STEPS))(steps)
  later = jax.tree.map(lambda a: a[1:], path)
  earlier = jax.vmap(flow.inverse_bayesian_update)(later, data.y, alphas)
  _assert_paths_close(flow, earlier, jax.tree.map(lambda a: a[:-1], path))
  # The sender samples follow from consecutive thetas (Eq. 5's h^-1 read the other way).
  if flow.data_type == "discrete":
    recovered = path.log_probs[1:] - path.log_probs[:-1]
    offset = data.y - recovered  # a constant per K-vector, which the update ignores
    np.testing.assert_allclose(offset - offset[..., :1], 0.0, atol=2e-3)
  else:
    rho, mu = path.rho, path.mu
    recovered = (rho[1:] * mu[1:] - rho[:-1] * mu[:-1]) / alphas[:, None, None, None, None]
    np.testing.assert_allclose(recovered, data.y, rtol=1e-3, atol=2e-2)


@pytest.mark.parametrize("case", ["continuous", "categorical"])
def test_data_flow_is_the_n_step_bayesian_flow_of_x0(case):
  """theta_0 is the prior, theta_i the update of theta_(i-1) with y_i ~ p_S(. | x0; alpha_i) drawn
  with fold_in(key, i); one step is a flow too, and n = 0 is refused by name."""
  flow = flow_of(case)
  x0 = data_batch(flow)
  key = jax.random.key(5)
  for n in (1, 3):
    path = rs.data_flow(key, flow, x0, n_steps=n)
    theta = flow.prior(x0.shape, jnp.float32)
    _assert_paths_close(flow, jax.tree.map(lambda a: a[0], path.theta), theta)
    assert path.y.shape[0] == n
    for i in range(1, n + 1):
      alpha = flow.accuracy(i, n)
      y = flow.sender_sample(jax.random.fold_in(key, i), x0, alpha)
      np.testing.assert_allclose(path.y[i - 1], y, rtol=1e-6, atol=1e-6)
      theta = flow.bayesian_update(theta, y, alpha)
      _assert_paths_close(flow, jax.tree.map(lambda a, i=i: a[i], path.theta), theta)
  with pytest.raises(ValueError, match=r"^n_steps must be >= 1, got 0\."):
    rs.data_flow(key, flow, x0, n_steps=0)


def test_data_flow_is_float32_under_x64():
  for case in ("continuous", "categorical"):
    flow = flow_of(case)
    with jax.enable_x64(True):
      path = rs.data_flow(jax.random.key(0), flow, data_batch(flow), n_steps=2)
    leaves = [*jax.tree.leaves(path.theta), path.y]  # the sender samples too (int steps)
    assert {leaf.dtype for leaf in leaves} == {jnp.dtype("float32")}, case


def test_codes_and_their_replay_are_float32_under_x64():
  """encode and decode start from a float32 prior, so the codes and theta_n stay float32."""
  for case in ("continuous", "categorical"):
    flow = flow_of(case)
    net, params = tiny_model(flow)
    with jax.enable_x64(True):
      codes = rs.encode(jax.random.key(0), flow, net, params, data_batch(flow), n_steps=2)
      rec = rs.decode(flow, net, params, codes)
    leaves = [codes.z, codes.subcodes, *jax.tree.leaves(rec.theta), *jax.tree.leaves(rec.out)]
    assert {leaf.dtype for leaf in leaves} == {jnp.dtype("float32")}, case
    # the output distribution at theta_n is the one x was read from; no path unless asked for
    np.testing.assert_array_equal(flow.data_estimate(rec.out), rec.x)
    assert rec.path is None


@pytest.mark.parametrize("sigma1", [0.02, 0.001])
def test_continuous_reconstruction_is_within_the_derived_bound(sigma1):
  flow = flow_of("continuous", sigma1=sigma1)
  shape = (4, 8, 8, 1)
  net, params = tiny_model(flow, shape)
  x0 = data_batch(flow, shape)
  codes = rs.encode(jax.random.key(0), flow, net, params, x0, n_steps=50)
  rec = rs.decode(flow, net, params, codes)
  stats = rs.reconstruction_stats(flow, x0, rec)
  flow_error = float(stats["max_abs_error_flow"].max())
  bound = rs.reconstruction_error_bound(sigma1)
  assert 0.0 < flow_error <= bound
  np.testing.assert_allclose(rec.x_flow, rec.theta.mu)
  # The network's x_hat: its error bound depends on max |eps_hat| at theta_n.
  t1 = jnp.ones((shape[0],))
  eps_hat = net.apply({"params": params}, rec.theta.mu, codes.z, t1, train=False, method=net.decode)
  net_bound = rs.reconstruction_error_bound(sigma1, eps_hat_max=float(jnp.abs(eps_hat).max()))
  assert float(stats["max_abs_error"].max()) <= net_bound
  assert bound < 7 * sigma1 and net_bound < 20 * sigma1


def test_discrete_reconstruction_reports_bit_accuracy():
  flow = flow_of("binary")
  shape = (4, 8, 8, 1)
  net, params = tiny_model(flow, shape)
  x0 = data_batch(flow, shape)
  rec = rs.decode(
    flow, net, params, rs.encode(jax.random.key(0), flow, net, params, x0, n_steps=N_STEPS)
  )
  stats = rs.reconstruction_stats(flow, x0, rec)
  assert set(stats) == {"accuracy", "accuracy_flow"}
  assert stats["accuracy"].shape == (4,)
  # argmax theta_n is right with probability Phi(sqrt(beta1)) (K = 2): 0.958 for beta1 = 3.
  expected = 0.5 * (1.0 + math.erf(math.sqrt(flow.beta1) / math.sqrt(2.0)))
  assert abs(float(stats["accuracy_flow"].mean()) - expected) < 0.05
  np.testing.assert_array_equal(rec.x_flow, jnp.argmax(rec.theta.log_probs, axis=-1))


def test_decode_shares_a_single_subcode_batch_across_latents():
  flow = flow_of("continuous")
  net, params = tiny_model(flow)
  codes = rs.encode(jax.random.key(0), flow, net, params, data_batch(flow), n_steps=N_STEPS)
  z = jax.random.normal(jax.random.key(1), (3, LATENT_DIM))
  shared = rs.decode(flow, net, params, rs.Codes(z, codes.subcodes[:1]))
  repeated = rs.decode(flow, net, params, rs.Codes(z, jnp.repeat(codes.subcodes[:1], 3, axis=0)))
  np.testing.assert_allclose(shared.x, repeated.x, rtol=1e-6, atol=1e-6)
  assert shared.x.shape == (3,) + DATA_SHAPE[1:]


def test_conditional_sample_shares_z_and_varies_the_rest():
  flow = flow_of("continuous")
  net, params = tiny_model(flow, net_cls=functools.partial(TinyNet, encoder_input="data"))
  x0 = data_batch(flow)
  res = rs.conditional_sample(
    jax.random.key(0), flow, net, params, x0, num_variations=3, n_steps=N_STEPS
  )
  assert res.x.shape == (6,) + DATA_SHAPE[1:]
  for b in range(2):
    np.testing.assert_array_equal(res.z[3 * b : 3 * b + 3], jnp.broadcast_to(res.z[3 * b], (3, 3)))
    assert not np.allclose(res.x[3 * b], res.x[3 * b + 1])
  assert not np.allclose(res.z[0], res.z[3])


def test_conditional_sample_uses_the_code_of_each_steps_time():
  """Step i's output network gets the mean of q(z | x0, t_i), as in training, not one code."""
  flow = flow_of("binary")
  net, params = tiny_model(flow)
  x0 = data_batch(flow)
  key = jax.random.key(4)
  res = rs.conditional_sample(key, flow, net, params, x0, num_variations=1, n_steps=N_STEPS)

  def step(theta, i):
    k_z, k_y = jax.random.split(jax.random.fold_in(key, i))
    t = jnp.full((x0.shape[0],), (i - 1) / N_STEPS, jnp.float32)
    out = sampling.output_dist(
      flow, net, params, theta, t, rs.encode_z(k_z, flow, net, params, x0, t)
    )
    alpha = flow.accuracy(i, N_STEPS)
    return flow.bayesian_update(theta, flow.receiver_sample(k_y, out, alpha), alpha), None

  theta, _ = jax.lax.scan(step, flow.prior(x0.shape), jnp.arange(1, N_STEPS + 1))
  np.testing.assert_allclose(res.theta.log_probs, theta.log_probs, atol=1e-5)
  one_code = sampling.sample(
    key,
    flow,
    net,
    params,
    data_shape=x0.shape,
    n_steps=N_STEPS,
    z=rs.encode_z(key, flow, net, params, x0, 1.0),
  )
  assert np.abs(np.asarray(one_code.theta.log_probs - theta.log_probs)).max() > 1e-2


def test_time_varying_reconstruction_changes_with_the_latent_time():
  flow = flow_of("discretised")
  net, params = tiny_model(flow)
  x0 = data_batch(flow)
  times = jnp.array([0.1, 0.2, 0.3])
  out = rs.time_varying_reconstruction(
    jax.random.key(0), flow, net, params, x0, times, n_steps=N_STEPS
  )
  assert out.shape == (3,) + DATA_SHAPE
  again = rs.time_varying_reconstruction(
    jax.random.key(0), flow, net, params, x0, times, n_steps=N_STEPS
  )
  np.testing.assert_array_equal(out, again)
  assert not np.array_equal(out[0], out[2])
  z_early = rs.encode_z(jax.random.key(0), flow, net, params, x0, 0.1)
  z_late = rs.encode_z(jax.random.key(0), flow, net, params, x0, 0.9)
  assert not np.allclose(z_early, z_late)


def test_encode_takes_z_at_the_data_end_by_default():
  """z of the codes is the encoder's mean at z_time, t = 1 unless given, drawn with
  fold_in(key, 0) (an encoder of theta_1 reads the key); one step is a valid code."""
  flow = flow_of("discretised")
  net, params = tiny_model(flow, net_cls=functools.partial(TinyNet, encoder_input="final_params"))
  x0 = data_batch(flow)
  key = jax.random.key(2)
  codes = rs.encode(key, flow, net, params, x0, n_steps=1)
  assert codes.subcodes.shape[:2] == (x0.shape[0], 1)
  z_one = rs.encode_z(jax.random.fold_in(key, 0), flow, net, params, x0, 1.0)
  np.testing.assert_allclose(codes.z, z_one, rtol=1e-6)
  z_half = rs.encode_z(jax.random.fold_in(key, 0), flow, net, params, x0, 0.5)
  assert not np.allclose(z_one, z_half)  # the encoder reads t, so the default is seen
  z_other = rs.encode_z(jax.random.fold_in(key, 1), flow, net, params, x0, 1.0)
  assert not np.allclose(z_one, z_other)  # and the key, so its fold is seen


def test_time_varying_reconstruction_is_the_subcodes_with_z_of_each_time():
  """Each batch is x0's subcodes, encoded with z at z_time (default 1), decoded with z at t."""
  flow = flow_of("discretised")
  net, params = tiny_model(flow)
  x0 = data_batch(flow)
  times = jnp.array([0.2, 0.7])
  k_codes, k_t = jax.random.split(jax.random.key(4))
  for z_time, kwargs in ((1.0, {}), (0.5, {"z_time": 0.5})):
    out = rs.time_varying_reconstruction(
      jax.random.key(4), flow, net, params, x0, times, n_steps=N_STEPS, **kwargs
    )
    codes = rs.encode(k_codes, flow, net, params, x0, n_steps=N_STEPS, z_time=z_time)
    for index, t in enumerate([0.2, 0.7]):
      z_t = rs.encode_z(k_t, flow, net, params, x0, t)
      expected = rs.decode(flow, net, params, codes._replace(z=z_t)).x
      np.testing.assert_allclose(out[index], expected, atol=1e-6)


def test_reconstruction_error_bound_values():
  assert rs.reconstruction_error_bound(0.001) == pytest.approx(1e-6 + 6e-3 * math.sqrt(1 - 1e-6))
  assert rs.reconstruction_error_bound(0.02, num_std=3.0, eps_hat_max=1.0) == pytest.approx(
    0.02 * 4.0 / math.sqrt(1 - 4e-4)
  )
  with pytest.raises(ValueError, match="sigma1"):
    rs.reconstruction_error_bound(1.5)


def test_bad_inputs_raise():
  flow = flow_of("binary")
  net, params = tiny_model(flow)
  with pytest.raises(ValueError, match="discrete data must hold int class indices, got dtype"):
    rs.encode(jax.random.key(0), flow, net, params, jnp.zeros(DATA_SHAPE), n_steps=2)
  with pytest.raises(ValueError, match="shape"):
    rs.data_flow(jax.random.key(0), flow, jnp.zeros((2, 8, 8), jnp.int32), n_steps=2)
  with pytest.raises(ValueError, match=r"subcodes \(B or 1, n, H, W, C, K\), got"):
    rs.decode(flow, net, params, rs.Codes(jnp.zeros((2, LATENT_DIM)), jnp.zeros((2, 3, 8, 8, 1))))
  gaussian = flow_of("continuous")
  g_net, g_params = tiny_model(gaussian)
  with pytest.raises(ValueError, match=r"subcodes \(B or 1, n, H, W, C\), got"):
    rs.decode(gaussian, g_net, g_params, rs.Codes(jnp.zeros((2, LATENT_DIM)), jnp.zeros((2, 3))))
  with pytest.raises(ValueError, match=r"continuous data must hold floats in \[-1, 1\], got dtype"):
    rs.data_flow(jax.random.key(0), gaussian, jnp.zeros(DATA_SHAPE, jnp.int32), n_steps=2)
  with pytest.raises(ValueError, match="^n_steps must be >= 1, got 0"):
    rs.encode(jax.random.key(0), flow, net, params, data_batch(flow), n_steps=0)
  with pytest.raises(ValueError, match="^num_variations must be >= 1, got 0"):
    rs.conditional_sample(
      jax.random.key(0), flow, net, params, data_batch(flow), num_variations=0, n_steps=2
    )


def test_reconstruction_error_bound_at_a_large_sigma1_and_its_open_interval():
  """sigma1^2 + c sigma1 sqrt(1 - sigma1^2): at sigma1 = 0.6 the square root is 0.8."""
  assert rs.reconstruction_error_bound(0.6, num_std=2.0) == pytest.approx(0.36 + 2.0 * 0.6 * 0.8)
  for sigma1 in (0.0, 1.0):
    with pytest.raises(ValueError, match="sigma1"):
      rs.reconstruction_error_bound(sigma1)


def test_reconstruction_stats_are_per_example():
  """(B,) statistics: an error in one example leaves the other's at zero."""
  x0 = jnp.zeros((2, 2, 2, 1))
  x = x0.at[1, 0, 1, 0].set(0.25)
  for name, flow in (("continuous", flow_of("continuous")), ("binary", flow_of("binary"))):
    data = x0.astype(jnp.int32) if flow.integer_data else x0
    rec = rs.Reconstruction(
      x=(x > 0).astype(jnp.int32) if flow.integer_data else x,
      x_flow=data,
      out=None,
      theta=None,
      path=None,
    )
    stats = rs.reconstruction_stats(flow, data, rec)
    if flow.integer_data:
      np.testing.assert_allclose(stats["accuracy"], [1.0, 0.75], err_msg=name)
      np.testing.assert_allclose(stats["accuracy_flow"], [1.0, 1.0], err_msg=name)
    else:
      np.testing.assert_allclose(stats["max_abs_error"], [0.0, 0.25], err_msg=name)
      np.testing.assert_allclose(stats["max_abs_error_flow"], [0.0, 0.0], err_msg=name)


def test_reconstruction_accuracy_is_float32_under_x64():
  flow = flow_of("binary")
  with jax.enable_x64(True):
    x0 = jnp.zeros((2, 2, 2, 1), jnp.int32)
    rec = rs.Reconstruction(x=x0, x_flow=x0, out=None, theta=None, path=None)
    assert rs.reconstruction_stats(flow, x0, rec)["accuracy"].dtype == jnp.float32


RECORD_FLOW = MixedFlow(
  (
    ("height", flows.ContinuousFlow(0.02, 16)),
    ("age", flows.DiscretisedFlow(0.01, 8)),
    ("island", flows.DiscreteFlow(1.5, 4)),
  )
)


# A record batch of RECORD_FLOW with gaps: height missing in example 1, age in 2, island in 1;
# GAP_FLAGS (B, columns) marks the observed cells.
GAP_FLAGS = np.array([[1, 1, 1], [0, 1, 0], [1, 0, 1]], bool)


def _record_with_gaps() -> dict:
  return {
    "height": jnp.array([[0.5], [jnp.nan], [-0.2]]),
    "age": jnp.array([[-0.875], [0.125], [jnp.nan]]),
    "island": jnp.array([[2], [MISSING_CLASS], [1]], jnp.int32),
  }


def test_record_stats_count_the_observed_cells_only():
  """reconstruction_stats of records against a direct count: the largest error over the observed
  continuous and discretised cells, the share of observed discretised cells in the right bin
  (|x - x0| K < 1; one half-bin off misses) and of observed discrete cells of the right class."""
  nan, gap = np.nan, MISSING_CLASS
  x0 = {  # age: the bin centres of K = 8
    "height": np.array([[0.5], [nan], [-0.2], [0.1], [nan]], np.float32),
    "age": np.array([[-0.875], [0.125], [nan], [0.625], [nan]], np.float32),
    "island": np.array([[2], [0], [1], [gap], [gap]], np.int32),
  }
  estimates = {
    "": {
      "height": np.array([[0.25], [0.9], [-0.2], [0.4], [0.7]], np.float32),
      "age": np.array([[-0.75], [0.125], [0.9], [0.6], [0.3]], np.float32),
      "island": np.array([[2], [1], [3], [0], [2]], np.int32),
    },
    "_flow": {
      "height": np.array([[0.5], [0.0], [0.6], [0.1], [0.0]], np.float32),
      "age": np.array([[-0.9], [-0.125], [0.0], [0.625], [0.0]], np.float32),
      "island": np.array([[1], [0], [1], [3], [0]], np.int32),
    },
  }
  device = lambda record: {name: jnp.asarray(a) for name, a in record.items()}  # noqa: E731
  rec = rs.Reconstruction(
    x=device(estimates[""]), x_flow=device(estimates["_flow"]), out=None, theta=None, path=None
  )
  stats = rs.reconstruction_stats(RECORD_FLOW, device(x0), rec)
  assert set(stats) == {"max_abs_error", "accuracy", "max_abs_error_flow", "accuracy_flow"}
  for suffix, x in estimates.items():
    errors, accuracy = [], []
    for i in range(5):
      cell_errors = [
        abs(float(x[name][i, 0]) - float(x0[name][i, 0]))
        for name in ("height", "age")
        if not np.isnan(x0[name][i, 0])
      ]
      errors.append(max(cell_errors, default=0.0))
      hits = []
      if not np.isnan(x0["age"][i, 0]):
        hits.append(abs(float(x["age"][i, 0]) - float(x0["age"][i, 0])) * 8 < 1)
      if x0["island"][i, 0] != gap:
        hits.append(x["island"][i, 0] == x0["island"][i, 0])
      accuracy.append(sum(hits) / max(len(hits), 1))
    np.testing.assert_allclose(stats["max_abs_error" + suffix], errors, rtol=1e-6)
    np.testing.assert_allclose(stats["accuracy" + suffix], accuracy, rtol=1e-6)
  # the values the count gives, written out: the half-bin miss of row 0 and the empty row 4
  np.testing.assert_allclose(stats["accuracy"], [0.5, 0.5, 0.0, 1.0, 0.0])
  np.testing.assert_allclose(stats["accuracy_flow"], [0.5, 0.5, 1.0, 1.0, 0.0])


def test_record_codes_are_checked_by_shape():
  """decode refuses record codes whose z or subcodes do not fit the flow's columns, naming them
  (`MixedFlow.codes_layout`, which gives the steps and the records' shape of good ones)."""
  z = jnp.zeros((3, 2))
  good = {
    "height": jnp.zeros((3, 5, 1)),
    "age": jnp.zeros((1, 5, 1)),  # one subcode batch shared by every z
    "island": jnp.zeros((3, 5, 1, 4)),
  }
  assert RECORD_FLOW.codes_layout(z, good) == (5, (3, 3))
  bad = {
    "z of one axis": (jnp.zeros((3,)), good),
    "subcodes not a dict": (z, tuple(good.values())),
    "a column missing": (z, {k: v for k, v in good.items() if k != "age"}),
    "an extra column": (z, {**good, "weight": jnp.zeros((3, 5, 1))}),
    "a discrete column without K": (z, {**good, "island": jnp.zeros((3, 5, 1))}),
    "a Gaussian column with an extra axis": (z, {**good, "height": jnp.zeros((3, 5, 1, 1))}),
    "two step counts": (z, {**good, "age": jnp.zeros((3, 4, 1))}),
    "a batch that is neither B nor 1": (z, {**good, "height": jnp.zeros((2, 5, 1))}),
  }
  for what, (z_bad, u_bad) in bad.items():
    with pytest.raises(ValueError, match=r"record codes must hold z \(B, L\).*'height', 'age'"):
      RECORD_FLOW.codes_layout(z_bad, u_bad)
      pytest.fail(what)


def test_data_flow_of_a_record_keeps_missing_cells_at_their_prior():
  """The n-step flow of a record with gaps: every step's flags are the observed cells, a missing
  cell stays at its column's prior, and an observed one follows its own column's n-step flow."""
  x0 = _record_with_gaps()
  key = jax.random.key(5)
  path = rs.data_flow(key, RECORD_FLOW, x0, n_steps=4)
  flags = GAP_FLAGS.astype(np.float32)
  assert path.theta.observed.shape == (5, 3, 3)
  np.testing.assert_array_equal(path.theta.observed, np.broadcast_to(flags, (5, 3, 3)))
  filled = RECORD_FLOW.fill(x0)
  for index, (name, flow) in enumerate(RECORD_FLOW.columns):
    seen = flags[:, index].astype(bool)
    prior = flow.prior((3, 1), jnp.float32)

    def step(theta, i, flow=flow, name=name, index=index):  # the column's own flow, its own key
      alpha = flow.accuracy(i, 4)
      key_i = jax.random.fold_in(jax.random.fold_in(key, i), index)
      return flow.bayesian_update(theta, flow.sender_sample(key_i, filled[name], alpha), alpha)

    theta = prior
    for i in range(1, 5):
      theta = step(theta, i)
      for got, alone, first in zip(path.theta.columns[name], theta, prior, strict=True):
        np.testing.assert_allclose(got[i][seen], alone[seen], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got[i][~seen], first[~seen])


def test_codes_of_a_record_with_gaps_replay_its_observed_flow():
  """Eq. 5 on records with an untrained RecordNet: decode(encode(x)) retraces x's own n-step flow
  on every observed cell; a missing cell's sender is a receiver draw, so it leaves the prior."""
  flow = RECORD_FLOW
  net = RecordNet(
    get_variant("tiny", num_channels=16, num_res_blocks=1, num_heads=2, latent_dim=2),
    tuple(f.input_channels_per_dim + 1 for _, f in flow.columns),
    tuple(f.params_per_dim for _, f in flow.columns),
  )
  x0 = _record_with_gaps()
  params = net.init(
    jax.random.key(0), flow.data_input(x0), jnp.full((3,), 0.5), jnp.zeros((3, 2)), train=False
  )["params"]
  key = jax.random.key(7)
  rec = rs.decode(flow, net, params, rs.encode(key, flow, net, params, x0, n_steps=4))
  end = jax.tree.map(lambda a: a[-1], rs.data_flow(key, flow, x0, n_steps=4).theta)
  flags = GAP_FLAGS
  for index, (name, column) in enumerate(flow.columns):
    seen = flags[:, index]
    prior = column.prior((3, 1), jnp.float32)
    for got, want, first in zip(rec.theta.columns[name], end.columns[name], prior, strict=True):
      np.testing.assert_allclose(
        np.asarray(got)[seen], np.asarray(want)[seen], rtol=1e-4, atol=1e-5
      )
      assert not np.allclose(np.asarray(got)[~seen], np.asarray(first)[~seen]), name


def test_codes_of_a_one_column_record_replay_its_flow():
  """A record of one column: its subcodes hold one array, whose second axis is the step count
  decode replays (n = 3 here), ending where x's own 3-step flow ends."""
  flow = MixedFlow((("age", flows.DiscretisedFlow(0.01, 8)),))
  net = RecordNet(
    get_variant("tiny", num_channels=16, num_res_blocks=1, num_heads=2, latent_dim=2),
    (flow.columns[0][1].input_channels_per_dim + 1,),
    (flow.columns[0][1].params_per_dim,),
  )
  x0 = {"age": jnp.array([[-0.875], [0.125], [0.625]])}
  params = net.init(
    jax.random.key(0), flow.data_input(x0), jnp.full((3,), 0.5), jnp.zeros((3, 2)), train=False
  )["params"]
  key = jax.random.key(3)
  codes = rs.encode(key, flow, net, params, x0, n_steps=3)
  assert codes.subcodes["age"].shape == (3, 3, 1)
  rec = rs.decode(flow, net, params, codes, return_path=True)
  assert rec.path.columns["age"][0].shape == (4, 3, 1)  # theta_0..theta_3
  end = jax.tree.map(lambda a: a[-1], rs.data_flow(key, flow, x0, n_steps=3).theta)
  for got, want in zip(rec.theta.columns["age"], end.columns["age"], strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
