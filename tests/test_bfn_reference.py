"""The fixed math API (README, "Notes on the implementation") against the official BFN code.

tests/data/bfn_reference.npz holds inputs and outputs of every API function, produced by running
the official NNAISENSE code in float64. Keys are `<module>.<function>.<case>.<arg>`; every case
in the file is checked, in float32 at the tolerances of `API` and in float64 (x64 enabled only
inside the test) at rtol 1e-11, atol 1e-12.

Under x64 the dtype contract of `bfn` is checked too: float64 results for int32 step / class
indices, and float32 results for float32 data (float64 only where every argument is an integer).
"""

import collections
import inspect
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramrel_jax.bfn import continuous, discrete, discretised

DATA = os.path.join(os.path.dirname(__file__), "data", "bfn_reference.npz")
MODULES = {"continuous": continuous, "discretised": discretised, "discrete": discrete}

# function -> (argument names in API order, float32 rtol, float32 atol)
API = {
  "continuous.gamma": (("t", "sigma1"), 1e-5, 1e-6),
  "continuous.flow_mean": (("x", "t", "sigma1", "eps"), 1e-4, 1e-4),
  "continuous.accuracy": (("i", "n", "sigma1"), 1e-5, 0.0),
  "continuous.bayesian_update": (("mu", "rho", "y", "alpha"), 1e-5, 1e-5),
  "continuous.inverse_bayesian_update": (("mu_new", "rho_new", "y", "alpha"), 1e-5, 1e-4),
  "continuous.predict_x": (("mu", "eps_hat", "t", "sigma1", "t_min", "clip"), 1e-3, 1e-4),
  "continuous.ctime_loss": (("x", "x_hat", "t", "sigma1"), 1e-5, 1e-6),
  "continuous.dtime_loss": (("x", "x_hat", "i", "n", "sigma1"), 1e-5, 1e-6),
  "discretised.bin_centres": (("K",), 1e-6, 1e-6),
  "discretised.quantize": (("x", "K"), 1e-6, 1e-6),
  "discretised.bin_probs": (("mean", "std", "K"), 1e-5, 2e-6),
  "discretised.log_prob": (("x", "mean", "std", "K"), 1e-3, 1e-4),
  "discretised.receiver_log_prob": (("y", "probs", "alpha", "K"), 1e-4, 1e-3),
  "discrete.beta": (("t", "beta1"), 1e-6, 1e-6),
  "discrete.flow_probs": (("x", "t", "beta1", "K", "eps"), 1e-5, 1e-6),
  "discrete.accuracy": (("i", "n", "beta1"), 1e-6, 1e-7),
  "discrete.sender_log_prob": (("y", "x", "alpha", "K"), 1e-5, 1e-4),
  "discrete.receiver_log_prob": (("y", "probs", "alpha", "K"), 1e-5, 1e-4),
  "discrete.bayesian_update": (("theta", "y"), 1e-5, 1e-6),
  "discrete.inverse_bayesian_update": (("theta_new", "y"), 1e-5, 1e-6),
  "discrete.ctime_loss": (("x", "probs", "t", "beta1", "K"), 1e-5, 1e-6),
}
FLOAT_CONFIG = ("sigma1", "beta1", "t_min")
INT_CONFIG = ("K", "n")
# Stored values that are not arguments or outputs (what the official loss computes, note 5).
INFO = ("official_factorised",)


def _load_cases() -> dict[str, dict[str, np.ndarray]]:
  cases = collections.defaultdict(dict)
  with np.load(DATA) as data:
    for key in data.files:
      parts = key.split(".")
      cases[".".join(parts[:3])][".".join(parts[3:])] = data[key]
  return dict(sorted(cases.items()))


CASES = _load_cases()
# Cases with an integer array argument (step indices i, discrete class indices x).
INTEGER_CASES = sorted(
  case
  for case, stored in CASES.items()
  if any(
    np.issubdtype(stored[name].dtype, np.integer)
    for name in API[case.rsplit(".", 1)[0]][0]
    if name not in INT_CONFIG
  )
)


def _function(case: str):
  module, name, _ = case.split(".")
  return getattr(MODULES[module], name)


def _api_name(case: str) -> str:
  return case.rsplit(".", 1)[0]


def _arguments(case: str, float_dtype, int_dtype) -> list:
  """The case's arguments in API order: config scalars as Python numbers, arrays in the dtypes."""
  stored = CASES[case]
  args = []
  for name in API[_api_name(case)][0]:
    value = stored[name]
    if name in FLOAT_CONFIG:
      args.append(float(value))
    elif name in INT_CONFIG:
      args.append(int(value))
    elif name == "clip":
      args.append(bool(value))
    elif np.issubdtype(value.dtype, np.integer):
      args.append(jnp.asarray(value, int_dtype))
    else:
      args.append(jnp.asarray(value, float_dtype))
  return args


def _outputs(case: str) -> list[np.ndarray]:
  stored = CASES[case]
  names = sorted(k for k in stored if k.startswith("out"))
  return [stored[k] for k in names]


def _check(case: str, result, float_dtype, rtol: float, atol: float) -> None:
  results = result if isinstance(result, tuple) else (result,)
  expected = _outputs(case)
  assert len(results) == len(expected)
  for got, want in zip(results, expected, strict=True):
    assert got.dtype == float_dtype
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol)


def test_every_case_is_an_api_function_and_every_function_has_cases():
  for case, stored in CASES.items():
    assert _api_name(case) in API, f"{case} has no entry in the API table"
    known = set(API[_api_name(case)][0]) | set(INFO)
    assert all(k in known or k.startswith("out") for k in stored), sorted(stored)
    assert any(k.startswith("out") for k in stored)
  covered = collections.Counter(_api_name(case) for case in CASES)
  assert set(covered) == set(API)


@pytest.mark.parametrize("name", sorted(API))
def test_signature_follows_the_api(name):
  params = list(inspect.signature(_function(name + ".0")).parameters.values())
  api_args = API[name][0]
  assert [p.name for p in params[: len(api_args)]] == list(api_args)
  assert all(p.default is not inspect.Parameter.empty for p in params[len(api_args) :])
  if name == "continuous.predict_x":
    assert params[4].default == 1e-6 and params[5].default is True


def _jitted_call(case: str, args: list):
  """Calls the case's function under jit, the config scalars (K static) closed over."""
  is_array = [isinstance(a, jax.Array) for a in args]

  def call(*arrays):
    it = iter(arrays)
    return _function(case)(*[next(it) if arr else a for a, arr in zip(args, is_array, strict=True)])

  return jax.jit(call)(*[a for a, arr in zip(args, is_array, strict=True) if arr])


@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_under_jit(case):
  _, rtol, atol = API[_api_name(case)]
  result = _jitted_call(case, _arguments(case, jnp.float32, jnp.int32))
  _check(case, result, jnp.float32, rtol, atol)


@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_under_jit(case):
  with jax.enable_x64(True):
    result = _jitted_call(case, _arguments(case, jnp.float64, jnp.int64))
    _check(case, result, jnp.float64, 1e-11, 1e-12)


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
@pytest.mark.parametrize("case", INTEGER_CASES)
def test_float64_with_int32_indices(case, jit):
  """x64 with float64 data and int32 indices (jnp.arange / randint without x64): float64 values.

  Integer-only arguments give the default float dtype, float64; `continuous.accuracy` used to
  compute from int32 i in float32, so its results and those of `dtime_loss` missed the golden
  values (issue 12).
  """
  with jax.enable_x64(True):
    args = _arguments(case, jnp.float64, jnp.int32)
    result = _jitted_call(case, args) if jit else _function(case)(*args)
    _check(case, result, jnp.float64, 1e-11, 1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_data_stays_float32_under_x64(case):
  """x64 with float32 data and int64 indices: float32 results at the float32 tolerances.

  Only cases whose arguments are all integers (`accuracy` of i, `bin_centres` of K) give the
  default float dtype, float64.
  """
  _, rtol, atol = API[_api_name(case)]
  with jax.enable_x64(True):
    args = _arguments(case, jnp.float32, jnp.int64)
    floating = any(isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jnp.floating) for a in args)
    result = _jitted_call(case, args)
    _check(case, result, jnp.float32 if floating else jnp.float64, rtol, atol)


@pytest.mark.parametrize("name", sorted(API))
def test_eager(name):
  """The first case of every function without jit."""
  case = name + ".0"
  _, rtol, atol = API[name]
  _check(case, _function(case)(*_arguments(case, jnp.float32, jnp.int32)), jnp.float32, rtol, atol)


def test_discrete_receiver_is_the_joint_mixture_not_the_official_factorised_one():
  """Note 5: the stored official (per-dimension) mixture differs; we compute the joint one."""
  differences = []
  for case in (c for c in CASES if c.startswith("discrete.receiver_log_prob.")):
    stored = CASES[case]
    y, probs, alpha, K = stored["y"], stored["probs"], stored["alpha"], int(stored["K"])
    means = alpha[..., None, None] * (K * np.eye(K) - 1)  # (..., j, k)
    log_n = -0.5 * np.log(2 * np.pi * alpha[..., None, None] * K) - (
      (y[..., None, :] - means) ** 2 / (2 * alpha[..., None, None] * K)
    )
    per_dim = np.log(np.sum(probs[..., :, None] * np.exp(log_n), axis=-2)).sum(-1)
    np.testing.assert_allclose(per_dim, stored["official_factorised"], rtol=1e-10, atol=1e-10)
    joint = discrete.receiver_log_prob(
      jnp.asarray(y, jnp.float32),
      jnp.asarray(probs, jnp.float32),
      jnp.asarray(alpha, jnp.float32),
      K,
    )
    np.testing.assert_allclose(joint, stored["out"], rtol=1e-5, atol=1e-4)
    differences.append(np.max(np.abs(stored["out"] - per_dim)))
  assert max(differences) > 0.1
