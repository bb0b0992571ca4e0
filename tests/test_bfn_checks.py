"""Every argument check of the `bfn` functions names the argument it refuses.

A function that forgot one argument in its shape check would broadcast a wrong shape silently (or
fail deep inside jnp with a message naming nothing): `CASES` gives one argument a length that
cannot broadcast with the others and expects the one clear error that names it. `SCALAR_CASES`
does the same for the hyperparameters (sigma1, beta1, K, n, num_samples) and the class axes.
"""

import math
import re

import jax
import numpy as np
import pytest

from paramrel_jax.bfn import checks, continuous, discrete, discretised

K = 3
N = 3  # length of every valid argument; the mismatched one gets N + 1
KEY = jax.random.key(0, impl="rbg")


def _probs(n: int) -> np.ndarray:
  return np.full((n, K), 1 / K, np.float32)


def _y(n: int) -> np.ndarray:
  return np.linspace(-1, 1, n * K, dtype=np.float32).reshape(n, K)


def _full(value: float):
  return lambda n: np.full((n,), value, np.float32)


def _classes(n: int) -> np.ndarray:
  return np.arange(n) % K


# (function, {array argument: its valid value of length n}, other keyword arguments, key first?)
CASES = {
  "continuous.flow_mean": (
    continuous.flow_mean,
    {"x": _full(0.1), "t": _full(0.5), "eps": _full(0.2)},
    {"sigma1": 0.02},
  ),
  "continuous.sample_flow": (
    continuous.sample_flow,
    {"x": _full(0.1), "t": _full(0.5)},
    {"key": KEY, "sigma1": 0.02},
  ),
  "continuous.bayesian_update": (
    continuous.bayesian_update,
    {"mu": _full(0.0), "rho": _full(1.0), "y": _full(0.5), "alpha": _full(2.0)},
    {},
  ),
  "continuous.inverse_bayesian_update": (
    continuous.inverse_bayesian_update,
    {"mu_new": _full(0.0), "rho_new": _full(3.0), "y": _full(0.5), "alpha": _full(2.0)},
    {},
  ),
  "continuous.sender_log_prob": (
    continuous.sender_log_prob,
    {"y": _full(0.5), "x": _full(0.1), "alpha": _full(2.0)},
    {},
  ),
  "continuous.sender_sample": (
    continuous.sender_sample,
    {"x": _full(0.1), "alpha": _full(2.0)},
    {"key": KEY},
  ),
  "continuous.predict_x": (
    continuous.predict_x,
    {"mu": _full(0.1), "eps_hat": _full(0.2), "t": _full(0.5)},
    {"sigma1": 0.02},
  ),
  "continuous.ctime_loss": (
    continuous.ctime_loss,
    {"x": _full(0.1), "x_hat": _full(0.2), "t": _full(0.5)},
    {"sigma1": 0.02},
  ),
  "continuous.dtime_loss": (
    continuous.dtime_loss,
    {"x": _full(0.1), "x_hat": _full(0.2), "i": lambda n: np.ones(n, np.int32)},
    {"n": 4, "sigma1": 0.02},
  ),
  "discrete.sample_flow": (
    discrete.sample_flow,
    {"x": _classes, "t": _full(0.5)},
    {"key": KEY, "beta1": 3.0, "K": K},
  ),
  "discrete.sender_sample": (
    discrete.sender_sample,
    {"x": _classes, "alpha": _full(2.0)},
    {"key": KEY, "K": K},
  ),
  "discrete.flow_probs": (
    discrete.flow_probs,
    {"x": _classes, "t": _full(0.5), "eps": _y},
    {"beta1": 3.0, "K": K},
  ),
  "discrete.flow_log_probs": (
    discrete.flow_log_probs,
    {"x": _classes, "t": _full(0.5), "eps": _y},
    {"beta1": 3.0, "K": K},
  ),
  "discrete.sender_log_prob": (
    discrete.sender_log_prob,
    {"y": _y, "x": _classes, "alpha": _full(2.0)},
    {"K": K},
  ),
  "discrete.receiver_log_prob": (
    discrete.receiver_log_prob,
    {"y": _y, "probs": _probs, "alpha": _full(2.0)},
    {"K": K},
  ),
  "discrete.ctime_loss": (
    discrete.ctime_loss,
    {"x": _classes, "probs": _probs, "t": _full(0.5)},
    {"beta1": 3.0, "K": K},
  ),
  "discrete.dtime_loss": (
    discrete.dtime_loss,
    {"x": _classes, "log_probs": lambda n: np.log(_probs(n)), "i": lambda n: np.ones(n, np.int32)},
    {"key": KEY, "n": 4, "beta1": 3.0, "K": K},
  ),
  "discrete.reconstruction_loss": (
    discrete.reconstruction_loss,
    {"x": _classes, "log_probs": lambda n: np.log(_probs(n))},
    {},
  ),
  "discrete.bayesian_update": (discrete.bayesian_update, {"theta": _probs, "y": _y}, {}),
  "discrete.inverse_bayesian_update": (
    discrete.inverse_bayesian_update,
    {"theta_new": _probs, "y": _y},
    {},
  ),
  "discrete.update_log_probs": (
    discrete.update_log_probs,
    {"log_probs": lambda n: np.log(_probs(n)), "y": _y},
    {},
  ),
  "discrete.inverse_update_log_probs": (
    discrete.inverse_update_log_probs,
    {"log_probs_new": lambda n: np.log(_probs(n)), "y": _y},
    {},
  ),
  "discretised.bin_probs": (
    discretised.bin_probs,
    {"mean": _full(0.1), "std": _full(0.5)},
    {"K": 16},
  ),
  "discretised.normal_bin_mean": (
    discretised.normal_bin_mean,
    {"mean": _full(0.1), "std": _full(0.5)},
    {"K": 16},
  ),
  "discretised.log_prob": (
    discretised.log_prob,
    {"x": _full(1 / 16), "mean": _full(0.1), "std": _full(0.5)},
    {"K": 16},
  ),
  "discretised.predict_mean_std": (
    discretised.predict_mean_std,
    {"mu": _full(0.1), "eps_mean": _full(0.2), "log_std_eps": _full(0.0), "t": _full(0.5)},
    {"sigma1": 0.02},
  ),
  "discretised.sample": (
    discretised.sample,
    {"mean": _full(0.1), "std": _full(0.5)},
    {"key": KEY, "K": 16},
  ),
  "discretised.receiver_log_prob": (
    discretised.receiver_log_prob,
    {"y": _full(0.1), "probs": lambda n: np.full((n, 16), 1 / 16, np.float32), "alpha": _full(2.0)},
    {"K": 16},
  ),
  "discretised.dtime_loss": (
    discretised.dtime_loss,
    {
      "x": _full(1 / 16),
      "probs": lambda n: np.full((n, 16), 1 / 16, np.float32),
      "i": lambda n: np.ones(n, np.int32),
    },
    {"key": KEY, "n": 4, "sigma1": 0.02, "K": 16},
  ),
  "discretised.receiver_sample": (
    discretised.receiver_sample,
    {"mean": _full(0.1), "std": _full(0.5), "alpha": _full(2.0)},
    {"key": KEY, "K": 16},
  ),
}

PARAMS = [(name, arg) for name, (_, arrays, _) in CASES.items() for arg in arrays]


@pytest.mark.parametrize("name", CASES)
def test_valid_shapes_pass(name):
  fn, arrays, kwargs = CASES[name]
  out = fn(**kwargs, **{arg: make(N) for arg, make in arrays.items()})
  for leaf in jax.tree.leaves(out):
    assert np.shape(leaf)[:1] == (N,)  # the batch axis the arguments share


@pytest.mark.parametrize("name,bad", PARAMS, ids=[f"{n}:{a}" for n, a in PARAMS])
def test_a_mismatched_argument_is_named(name, bad):
  fn, arrays, kwargs = CASES[name]
  args = {arg: make(N + 1 if arg == bad else N) for arg, make in arrays.items()}
  with pytest.raises(ValueError, match=rf"shapes do not broadcast: .*\b{bad} \({N + 1},"):
    fn(**kwargs, **args)


P3 = np.full((2, 3), 1 / 3, np.float32)  # (B, K = 3) probabilities
P4 = np.full((2, 4), 1 / 4, np.float32)  # the same with a last axis of the wrong size
X2 = np.array([0, 2])  # classes
F2 = np.array([0.1, -0.3], np.float32)
T2 = np.array([0.3, 0.6], np.float32)

# (call, the one error it must raise): each scalar and last-axis check names its argument.
SCALAR_CASES = {
  "continuous sigma1": (lambda: continuous.gamma(T2, 1.0), r"^sigma1 must lie in \(0, 1\)"),
  "continuous n": (lambda: continuous.accuracy(1, 0, 0.02), r"^n must be >= 1"),
  "discrete beta1": (lambda: discrete.beta(T2, 0.0), r"^beta1 must be > 0"),
  "discrete accuracy beta1": (lambda: discrete.accuracy(1, 2, -1.0), r"^beta1 must be > 0"),
  "discrete accuracy n": (lambda: discrete.accuracy(1, 0, 3.0), r"^n must be >= 1"),
  "discrete K": (lambda: discrete.sample_flow(KEY, X2, T2, 3.0, 1), r"^K must be >= 2"),
  "discrete static K": (
    lambda: discrete.sample_flow(KEY, X2, T2, 3.0, 3.0),
    r"^K must be a static Python int",
  ),
  "flow_probs eps": (lambda: discrete.flow_probs(X2, T2, 3.0, 3, P4), r"^eps must have a last"),
  "flow_probs beta1": (lambda: discrete.flow_probs(X2, T2, 0.0, 3, P3), r"^beta1 must be > 0"),
  "sender_log_prob y": (lambda: discrete.sender_log_prob(P4, X2, 1.0, 3), r"^y must have a last"),
  "receiver_log_prob y": (lambda: discrete.receiver_log_prob(P4, P3, 1.0, 3), r"^y must have"),
  "receiver_log_prob probs": (
    lambda: discrete.receiver_log_prob(P3, P4, 1.0, 3),
    r"^probs must have a last axis",
  ),
  "receiver_sample log_probs": (
    lambda: discrete.receiver_sample(KEY, P4, 1.0, 3),
    r"^log_probs must have a last axis",
  ),
  "output_log_probs logits": (lambda: discrete.output_log_probs(P4, 3), r"^logits must have"),
  "discrete ctime_loss probs": (
    lambda: discrete.ctime_loss(X2, P4, T2, 3.0, 3),
    r"^probs must have a last axis",
  ),
  "discrete ctime_loss beta1": (
    lambda: discrete.ctime_loss(X2, P3, T2, 0.0, 3),
    r"^beta1 must be > 0",
  ),
  "discrete dtime_loss samples": (
    lambda: discrete.dtime_loss(KEY, X2, P3, 1, 2, 3.0, 3, 0),
    r"^num_samples must be >= 1",
  ),
  "discrete dtime_loss log_probs": (
    lambda: discrete.dtime_loss(KEY, X2, P4, 1, 2, 3.0, 3),
    r"^log_probs must have a last axis",
  ),
  "discretised K": (lambda: discretised.bin_centres(1), r"^K must be >= 2"),
  "discretised static K": (lambda: discretised.quantize(F2, 16.0), r"^K must be a static"),
  "discretised receiver probs": (
    lambda: discretised.receiver_log_prob(F2, P4, 1.0, 3),
    r"^probs must have a last axis",
  ),
  "discretised dtime_loss samples": (
    lambda: discretised.dtime_loss(KEY, F2, P3, 1, 2, 0.02, 3, 0),
    r"^num_samples must be >= 1",
  ),
  "discretised dtime_loss probs": (
    lambda: discretised.dtime_loss(KEY, F2, P4, 1, 2, 0.02, 3),
    r"^probs must have a last axis",
  ),
  "delta_reconstruction sigma1": (
    lambda: discretised.delta_reconstruction_loss(F2, F2, 1.5, 16),
    r"^sigma1 must lie in",
  ),
}


@pytest.mark.parametrize("name", SCALAR_CASES)
def test_a_bad_scalar_or_last_axis_is_named(name):
  call, match = SCALAR_CASES[name]
  with pytest.raises(ValueError, match=match):
    call()


@pytest.mark.parametrize("value", [0, -1.5, True, "2", None, float("nan")])
def test_a_setting_that_is_not_a_positive_number_is_named(value):
  with pytest.raises(ValueError, match=r"^training.batch_size must be a number > 0, got "):
    checks.check_positive("training.batch_size", value, setting=True)


@pytest.mark.parametrize("value", [1, 0.25, np.float32(2.0), np.int64(3)])
def test_a_positive_number_passes(value):
  checks.check_positive("training.batch_size", value, setting=True)


@pytest.mark.parametrize(
  "value, low, high, open_high, message",
  [
    (-1, 0, math.inf, False, "w must be >= 0, got -1."),
    ("0.5", 0, math.inf, False, "w must be >= 0, got '0.5'."),
    (True, 0, 1, False, "w must lie in [0, 1], got True."),
    (1.0, 0, 1, True, "w must lie in [0, 1), got 1.0."),
    (float("nan"), 0, 1, False, "w must lie in [0, 1], got nan."),
  ],
)
def test_a_setting_outside_its_range_is_named_with_it(value, low, high, open_high, message):
  with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
    checks.check_range("w", value, low, high, open_high=open_high)


@pytest.mark.parametrize("value, high, open_high", [(0, 1, False), (1, 1, False), (0.99, 1, True)])
def test_a_setting_inside_its_range_passes(value, high, open_high):
  checks.check_range("w", value, 0, high, open_high=open_high)
  checks.check_range("w", np.float32(value), 0, high, open_high=open_high)


def test_a_choice_outside_its_names_is_named_with_them():
  checks.check_choice("model.conditioning", "adagn", ("adagn", "content_mask"))
  with pytest.raises(
    ValueError,
    match=r"^model.conditioning must be one of \('adagn', 'content_mask'\), got 'film'\.$",
  ):
    checks.check_choice("model.conditioning", "film", ("adagn", "content_mask"))
  with pytest.raises(ValueError, match=r"^dtype must be one of \('float32',\), got 'f16'\.$"):
    checks.check_choice("dtype", "f16", {"float32": None})  # a dict: its keys
