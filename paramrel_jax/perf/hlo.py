"""Where a step's time went: the compiled HLO module parsed, and a profiler trace summarised by
op kind and by model part."""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import os
import re
from typing import Any

_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\S+)\s.*?\b([a-z][\w\-]*)\(")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\{\s*$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_RESULT_TYPE = re.compile(r"->\s*tensor<([^>]*)>\s*$")
_OPERAND = re.compile(r"%([\w.\-]+)")
# How many producer levels an op without metadata looks through for a scope to inherit.
_MAX_INHERIT_DEPTH = 8


@dataclasses.dataclass(frozen=True)
class HloOp:
  """One HLO instruction of a compiled module: result type, op kind and source scope."""

  dtype: str
  kind: str
  scope: str


def _op_kind(opcode: str, line: str, computations: dict[str, set[str]]) -> str:
  if opcode == "fusion":
    match = _CALLS.search(line)
    inner = computations.get(match.group(1), set()) if match else set()
    for kind in ("convolution", "dot"):
      if kind in inner:
        return kind
    return "reduction fusion" if "reduce" in inner else "elementwise fusion"
  if opcode == "custom-call":
    if "conv" in line.lower():
      return "convolution"
    return "dot" if ("gemm" in line.lower() or "matmul" in line.lower()) else "custom-call"
  if opcode in ("copy", "transpose", "bitcast", "copy-start", "copy-done"):
    return "copy / transpose"
  return opcode


def _op_scope(op_name: str) -> str:
  if not op_name:
    return "unattributed"
  if "ParamReLNet" in op_name:
    part = "encoder" if "ParamReLNet.encode" in op_name else "decoder"
    if "attn" in op_name or "attention" in op_name:
      part += " attention"
    return part + (" (backward)" if "transpose(" in op_name else " (forward)")
  if any(rng in op_name for rng in ("threefry", "_normal", "_uniform", "random_")):
    return "random numbers"
  if "jvp(" in op_name:
    return "flow math + objective"
  return "optimizer + EMA + metrics"


def parse_hlo(text: str) -> dict[str, HloOp]:
  """Instruction name -> HloOp of an optimised HLO module's text (`Compiled.as_text()` of JAX).

  The scope comes from the instruction's `op_name` metadata (the JAX name stack), else from its
  fused computation's, else from the nearest operands that have one, preferring a backward scope
  (XLA-made ops such as weight-gradient convolutions carry no metadata).
  """
  opcodes: dict[str, set[str]] = collections.defaultdict(set)
  comp_op_name: dict[str, str] = {}
  insts: dict[str, tuple[str, str, str, str]] = {}  # name -> (dtype, opcode, line, computation)
  current = ""
  for line in text.splitlines():
    header = _COMPUTATION.match(line)
    if header and not line.startswith(" "):
      current = header.group(1)
      continue
    inst = _INSTRUCTION.match(line)
    if inst:
      name, dtype, opcode = inst.groups()
      opcodes[current].add(opcode)
      op_name = _OP_NAME.search(line)
      if op_name and (current not in comp_op_name or line.lstrip().startswith("ROOT")):
        comp_op_name[current] = op_name.group(1)
      insts[name] = (dtype, opcode, line, current)

  def own_scope(name: str) -> str:
    _, _, line, _ = insts[name]
    op_name = _OP_NAME.search(line)
    calls = _CALLS.search(line)
    if op_name:
      return _op_scope(op_name.group(1))
    return _op_scope(comp_op_name.get(calls.group(1), "") if calls else "")

  scopes = {name: own_scope(name) for name in insts}

  def inherited(name: str) -> str:
    frontier, seen = [name], {name}
    for _ in range(_MAX_INHERIT_DEPTH):
      operands = []
      for op in frontier:
        line = insts[op][2]
        args = line[line.index("(", line.index("=")) :]
        operands += [o for o in _OPERAND.findall(args.split("calls=")[0]) if o in insts]
      frontier = [o for o in dict.fromkeys(operands) if o not in seen]
      seen.update(frontier)
      found = [scopes[o] for o in frontier if scopes[o] != "unattributed"]
      if found:
        return next((f for f in found if "backward" in f), found[0])
      if not frontier:
        break
    return "unattributed"

  ops = {}
  for name, (dtype, opcode, line, _) in insts.items():
    scope = scopes[name] if scopes[name] != "unattributed" else inherited(name)
    ops[name] = HloOp(
      dtype=dtype.split("[")[0].lstrip("("), kind=_op_kind(opcode, line, opcodes), scope=scope
    )
  return ops


def lowered_dtypes(text: str) -> dict[str, dict[str, int]]:
  """Counts of convolutions and dots by result element type in a lowered (StableHLO) module.

  What the program asks for, before the backend rewrites it (XLA:CPU computes bfloat16
  convolutions and dots in float32; compare `hlo_dtypes`).
  """
  counts: dict[str, dict[str, int]] = {"convolution": {}, "dot": {}}
  for line in text.splitlines():
    for kind, op in (("convolution", "stablehlo.convolution"), ("dot", "stablehlo.dot_general")):
      result = _RESULT_TYPE.search(line) if op in line else None
      if result:
        dtype = result.group(1).split("x")[-1]
        counts[kind][dtype] = counts[kind].get(dtype, 0) + 1
  return counts


def hlo_dtypes(ops: dict[str, HloOp]) -> dict[str, dict[str, int]]:
  """Counts of convolution and dot instructions of a compiled module by result element type."""
  counts: dict[str, dict[str, int]] = {"convolution": {}, "dot": {}}
  for op in ops.values():
    if op.kind in counts:
      counts[op.kind][op.dtype] = counts[op.kind].get(op.dtype, 0) + 1
  return counts


def summarize_trace(trace_dir: str, ops: dict[str, HloOp], top: int = 12) -> dict[str, Any]:
  """Time of the traced HLO ops (summed over threads), by op kind, by model part and the top ops.

  Args:
    trace_dir: the directory given to `jax.profiler.trace` (`create_perfetto_trace=True`).
    ops: `parse_hlo` of the traced executable.
    top: how many of the most expensive ops to list.
  """
  files = sorted(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True))
  if not files:
    raise ValueError(f"no perfetto_trace.json.gz under profile_dir={trace_dir!r}.")
  with gzip.open(files[-1]) as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  by_kind: dict[str, float] = collections.Counter()
  by_scope: dict[str, float] = collections.Counter()
  by_op: dict[str, float] = collections.Counter()
  for event in events:
    op = ops.get(event.get("name", "")) if event.get("ph") == "X" else None
    if op is not None:
      ms = event.get("dur", 0) / 1e3
      by_kind[op.kind] += ms
      by_scope[op.scope] += ms
      by_op[f"{event['name']} [{op.kind}; {op.scope}]"] += ms
  total = sum(by_kind.values())
  if total <= 0:
    raise ValueError(f"the trace in {files[-1]} has no events of the executable's HLO ops.")

  def shares(counter: dict[str, float]) -> dict[str, float]:
    return {k: round(v / total, 4) for k, v in sorted(counter.items(), key=lambda kv: -kv[1])}

  return {
    "trace": files[-1],
    "op_time_ms": total,
    "share_by_kind": shares(by_kind),
    "share_by_scope": shares(by_scope),
    "top_ops_ms": dict(sorted(by_op.items(), key=lambda kv: -kv[1])[:top]),
  }
