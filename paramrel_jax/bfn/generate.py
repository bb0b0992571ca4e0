"""The generic n-step generative loop of a Bayesian flow (ParamReL Eq. 4 without z).

From the prior theta_0, step i = 1..n at flow time t = (i - 1) / n and accuracy alpha_i does

  out_i   = output_fn(theta_{i-1}, t)                                output distribution
  y_i     ~ p_R(. | out_i; alpha_i) = E_{x ~ out_i} p_S(. | x; alpha_i)
  theta_i = h(theta_{i-1}, y_i, alpha_i)                             Bayesian update

and the result is the data estimate of output_fn(theta_n, 1) (BFN sample generation,
Algorithms 3, 6 and 9). The official BFN `sample` loops over range(1, n), i.e. n - 1 updates;
this loop makes the paper's n. A latent z (ParamReL) is closed over by output_fn.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from paramrel_jax.bfn.continuous import _check_static_int
from paramrel_jax.bfn.flows import Flow, OutputDist

Array = jax.Array
OutputFn = Callable[[Any, Array], OutputDist]


def generate(
  key: Array,
  flow: Flow,
  output_fn: OutputFn,
  data_shape: tuple[int, ...],
  n_steps: int,
  *,
  return_trajectory: bool = False,
  dtype=None,
) -> tuple[Array, OutputDist] | tuple[Array, OutputDist, Any]:
  """Runs the n-step generative process under `jax.lax.scan`.

  output_fn is wrapped in `jax.jit`, so it is traced once for the whole run: the scan body and
  the final call at t = 1 share that trace (same argument shapes and dtypes). Call `generate`
  inside `jax.jit` with flow, output_fn, data_shape and n_steps static.

  Args:
    key: PRNG key; step i uses the i-th key of jax.random.split(key, n_steps).
    flow: the Bayesian flow of the data type.
    output_fn: (theta, t (B,)) -> the flow's output distribution at theta (e.g. a network
      closed over its parameters and a latent z).
    data_shape: (B, ...) of the batch to generate.
    n_steps: n >= 1, a static int.
    return_trajectory: also return theta_0..theta_n stacked on a leading axis (n + 1, ...).
    dtype: float dtype of the input parameters and times (default: the default float dtype,
      float64 under x64, else float32).

  Returns:
    (x, out) or (x, out, thetas): x = flow.data_estimate(out), out = output_fn(theta_n, 1).

  Raises:
    ValueError: for n_steps < 1 or a bad data_shape.
  """
  n_steps = _check_static_int("n_steps", n_steps, 1)
  data_shape = tuple(int(d) for d in data_shape)
  if not data_shape or min(data_shape) < 1:
    raise ValueError(f"data_shape must be (B, ...) of positive ints, got {data_shape}.")
  batch = data_shape[0]
  dtype = jnp.result_type(float) if dtype is None else dtype
  output_fn = jax.jit(output_fn)

  def step(theta, inputs):
    i, step_key = inputs
    t = jnp.full((batch,), (i - 1) / n_steps, dtype)
    out = output_fn(theta, t)
    alpha = flow.accuracy(i, n_steps, dtype)
    theta = flow.bayesian_update(theta, flow.receiver_sample(step_key, out, alpha), alpha)
    return theta, theta if return_trajectory else None

  theta0 = flow.prior(data_shape, dtype)
  steps = (jnp.arange(1, n_steps + 1), jax.random.split(key, n_steps))
  theta, thetas = jax.lax.scan(step, theta0, steps)
  out = output_fn(theta, jnp.ones((batch,), dtype))
  x = flow.data_estimate(out)
  if not return_trajectory:
    return x, out
  trajectory = jax.tree.map(
    lambda first, rest: jnp.concatenate([first[None], rest]), theta0, thetas
  )
  return x, out, trajectory
