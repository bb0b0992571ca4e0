"""What one step of the sampler (Eq. 4, `sampling.sample`) costs, and what it must not do.

A sampling step is one output-network forward, psi(theta_{i-1}, z, t), plus the flow math: the
output distribution, a receiver draw and a Bayesian update. `step_costs` times the three apart on
the same shapes, and the step inside the compiled `lax.scan` as the slope of the sampler's time
between two step counts, so the step can be checked against forward + flow math.
`host_transfers` and `compiles_while` check the other two promises of a `lax.scan` sampler: no
host round trip in the loop and no compile after the first call; `lower` and `network_dtypes`
give the benchmark (`perf.benchmark`) the compiled sampler and the networks' output dtypes of a
model, so that it needs no part of the model.
"""

import re
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from paramrel_jax.methods.paramrel import sampling
from paramrel_jax.methods.paramrel.apply import net_fns
from paramrel_jax.methods.paramrel.model import ParamReL

# HLO ops that move data between device and host, or call back into Python.
_HOST_OP = re.compile(
  r"\b(send|recv|send-done|recv-done|infeed|outfeed)\(|custom_call_target=\"[^\"]*callback[^\"]*\""
)


def host_transfers(hlo_text: str) -> list[str]:
  """The lines of a compiled program's HLO that talk to the host (empty: none)."""
  return [line.strip() for line in hlo_text.splitlines() if _HOST_OP.search(line)]


def compiles_while(fn: Callable[[], object]) -> int:
  """How many XLA compiles happen while `fn()` runs (and its result is waited for)."""
  count = 0

  def listener(event: str, duration: float, **kwargs) -> None:
    nonlocal count
    if event == "/jax/core/compile/backend_compile_duration":
      count += 1

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    jax.block_until_ready(fn())
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  return count


def lower(
  model: ParamReL, params, data_shape: tuple[int, ...], n_steps: int, key: jax.Array
) -> jax.stages.Lowered:
  """`sampling.sample` of the model (z from the prior) lowered for these arguments; its compiled
  form is called as `compiled(key, params)` and returns a `sampling.SampleResult`."""
  return sampling.sample.lower(
    key, model.flow, model.net, params, data_shape=data_shape, n_steps=n_steps, z_source="prior"
  )


def sample(model: ParamReL, params, data_shape: tuple[int, ...], n_steps: int, seed: int):
  """The samples x (B, H, W, C) of `sampling.sample` for the model, z from the prior."""
  return sampling.sample(
    jax.random.key(seed),
    model.flow,
    model.net,
    params,
    data_shape=data_shape,
    n_steps=n_steps,
    z_source="prior",
  ).x


def network_dtypes(model: ParamReL, params, data_shape: tuple[int, ...]) -> dict[str, str]:
  """dtypes of what the networks hand to the flow math and the objective (shapes only)."""
  encode, decode = net_fns(model.net, params)
  net_in = model.flow.net_input(model.flow.prior(data_shape, jnp.float32))
  t = jnp.zeros(data_shape[:1], jnp.float32)
  mean, _ = jax.eval_shape(encode, net_in, t)
  net_out = jax.eval_shape(decode, net_in, jnp.zeros(mean.shape, jnp.float32), t)
  return {"encoder_out_dtype": str(mean.dtype), "net_out_dtype": str(net_out.dtype)}


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
  jax.block_until_ready(fn())  # compile and warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def step_costs(
  model: ParamReL,
  params,
  data_shape: tuple[int, ...],
  *,
  n_steps: tuple[int, int] = (10, 30),
  repeats: int = 3,
) -> dict[str, float]:
  """Milliseconds of one sampling step and of its parts, z from the prior.

  Args:
    model, params: the model and its network parameters.
    data_shape: (B, H, W, C) of the samples.
    n_steps: two step counts; the step's cost is the slope of the sampler's time between them
      (this removes the fixed cost of the prior draw and the final output).
    repeats: timed calls of each function (median).

  Returns:
    {'step_ms': the step in the scan, 'forward_ms': the output network alone, 'flow_ms': output
    distribution + receiver draw + Bayesian update alone, 'flow_share': flow_ms / step_ms,
    'overhead_ms': step_ms - forward_ms - flow_ms}.
  """
  flow, net = model.flow, model.net
  batch = data_shape[0]
  key = jax.random.key(0)
  theta = flow.prior(data_shape, jnp.float32)
  t = jnp.full((batch,), 0.5, jnp.float32)
  z = jnp.zeros((batch, sampling.latent_dim(flow, net, params, data_shape)), jnp.float32)
  net_in = flow.net_input(theta)

  forward = jax.jit(lambda p, x, z, t: net_fns(net, p)[1](x, z, t))
  net_out = forward(params, net_in, z, t)

  @jax.jit
  def flow_math(key, net_out, theta, t):
    out = flow.output_dist(net_out.astype(jnp.float32), theta, t)
    alpha = flow.accuracy(jnp.int32(5), 10)
    return flow.bayesian_update(theta, flow.receiver_sample(key, out, alpha), alpha)

  lo, hi = n_steps
  sampler = {n: (lambda n=n: sample(model, params, data_shape, n, 0)) for n in (lo, hi)}
  sampler_s = {n: _median_seconds(fn, repeats) for n, fn in sampler.items()}
  step_ms = 1e3 * (sampler_s[hi] - sampler_s[lo]) / (hi - lo)
  forward_ms = 1e3 * _median_seconds(lambda: forward(params, net_in, z, t), repeats)
  flow_ms = 1e3 * _median_seconds(lambda: flow_math(key, net_out, theta, t), repeats)
  return {
    "step_ms": step_ms,
    "forward_ms": forward_ms,
    "flow_ms": flow_ms,
    "flow_share": flow_ms / step_ms,
    "overhead_ms": step_ms - forward_ms - flow_ms,
    "sampler_s": {str(n): s for n, s in sampler_s.items()},
  }
