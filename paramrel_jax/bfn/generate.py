"""The generic n-step generative loop of a Bayesian flow (ParamReL Eq. 4 without z).

From the prior theta_0, step i = 1..n at flow time t = (i - 1) / n and accuracy alpha_i does

  out_i   = output_fn(theta_{i-1}, t)                                output distribution
  y_i     ~ p_R(. | out_i; alpha_i) = E_{x ~ out_i} p_S(. | x; alpha_i)
  theta_i = h(theta_{i-1}, y_i, alpha_i)                             Bayesian update

and the result is the data estimate of output_fn(theta_n, 1) (BFN sample generation,
Algorithms 3, 6 and 9). The official BFN `sample` loops over range(1, n), i.e. n - 1 updates;
this loop makes the paper's n. ParamReL's sampler (`methods.paramrel.sampling.sample`) is this
loop with its latent z inside output_fn, which gets a key per call for it.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from paramrel_jax.bfn.checks import check_static_int
from paramrel_jax.bfn.flows import Flow, OutputDist

Array = jax.Array
OutputFn = Callable[[Any, Array, Array], OutputDist]


class Generation(NamedTuple):
  """What `generate` returns.

  Attributes:
    x: flow.data_estimate(out), the generated batch.
    out: output_fn(theta_n, 1), the final output distribution.
    theta: theta_n, the input parameters after the n updates.
    trajectory: theta_0 .. theta_n stacked on a leading axis (n + 1, ...), or None.
  """

  x: Array
  out: OutputDist
  theta: Any
  trajectory: Any


def generate(
  key: Array,
  flow: Flow,
  output_fn: OutputFn,
  data_shape: tuple[int, ...],
  n_steps: int,
  *,
  return_trajectory: bool = False,
  dtype=None,
  observe: Callable[[Array, Any, Any], Any] | None = None,
) -> Generation:
  """Runs the n-step generative process under `jax.lax.scan`.

  output_fn is wrapped in `jax.jit`, so it is traced once for the whole run: the scan body and
  the final call at t = 1 share that trace (same argument shapes and dtypes). Call `generate`
  inside `jax.jit` with flow, output_fn, data_shape and n_steps static.

  Args:
    key: PRNG key. Step i splits fold_in(key, i) into the key it passes to output_fn and the
      key of the receiver sample; the final call gets fold_in(key, n + 1). Key 0 is left to the
      caller (e.g. ParamReL's prior latent), so a batch is a deterministic function of the key.
    flow: the Bayesian flow of the data type.
    output_fn: (theta, t (B,), key) -> the flow's output distribution at theta (e.g. a network
      closed over its parameters; ParamReL's latent may draw with the key).
    data_shape: (B, ...) of the batch to generate.
    n_steps: n >= 1, a static int.
    return_trajectory: also return theta_0..theta_n.
    dtype: float dtype of the input parameters and times (default: the default float dtype,
      float64 under x64, else float32).
    observe: optional (key, y, alpha) -> y, applied to each step's receiver sample with the key
      fold_in(receiver key, 1): it replaces the parts of y whose data are known by sender samples
      of those data, so that their parameters follow p_F(theta | x; t) as in training and the
      rest is generated given them (imputation, `bfn.mixed.MixedFlow.observe`).

  Returns:
    A `Generation`.

  Raises:
    ValueError: for n_steps < 1 or a bad data_shape.
  """
  n_steps = check_static_int("n_steps", n_steps, 1)
  data_shape = tuple(int(d) for d in data_shape)
  if not data_shape or min(data_shape) < 1:
    raise ValueError(f"data_shape must be (B, ...) of positive ints, got {data_shape}.")
  batch = data_shape[0]
  dtype = jnp.result_type(float) if dtype is None else dtype
  output_fn = jax.jit(output_fn)

  def step(theta, i):
    out_key, sample_key = jax.random.split(jax.random.fold_in(key, i))
    t = jnp.full((batch,), (i - 1) / n_steps, dtype)
    out = output_fn(theta, t, out_key)
    alpha = flow.accuracy(i, n_steps, dtype)
    y = flow.receiver_sample(sample_key, out, alpha)
    if observe is not None:
      y = observe(jax.random.fold_in(sample_key, 1), y, alpha)
    theta = flow.bayesian_update(theta, y, alpha)
    return theta, theta if return_trajectory else None

  theta0 = flow.prior(data_shape, dtype)
  theta, thetas = jax.lax.scan(step, theta0, jnp.arange(1, n_steps + 1))
  out = output_fn(theta, jnp.ones((batch,), dtype), jax.random.fold_in(key, n_steps + 1))
  trajectory = None
  if return_trajectory:
    trajectory = jax.tree.map(
      lambda first, rest: jnp.concatenate([first[None], rest]), theta0, thetas
    )
  return Generation(x=flow.data_estimate(out), out=out, theta=theta, trajectory=trajectory)
