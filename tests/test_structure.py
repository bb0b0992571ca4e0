"""The flow stays inside methods/ (issue 31): no module outside `paramrel_jax/methods/` reads a
model's `.flow` or `.net`; callers use the model's methods (`interface.Model`,
`interface.FlowModel`). The benchmark's probes of a sampling step, which time the flow math and
the networks apart, are ParamReL's own (`methods.paramrel.sampler_cost`)."""

import ast
import os

from conftest import ROOT

ALLOWED = ("paramrel_jax/methods/",)


def _model_attribute_reads(tree: ast.AST) -> list[tuple[int, str]]:
  """(line, source) of every `<...model>.flow` / `<...model>.net` in a module."""
  reads = []
  for node in ast.walk(tree):
    if not isinstance(node, ast.Attribute) or node.attr not in ("flow", "net"):
      continue
    base = node.value
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
    if "model" in name.lower():
      reads.append((node.lineno, ast.unparse(node)))
  return reads


def test_the_checker_finds_a_read_of_a_models_flow():
  code = "def f(model, loaded):\n  return model.flow, loaded.trained.model.net, config.flow\n"
  assert [src for _, src in _model_attribute_reads(ast.parse(code))] == [
    "model.flow",
    "loaded.trained.model.net",
  ]


def test_no_module_outside_methods_reads_a_models_flow_or_net():
  offenders = []
  for folder, _, names in os.walk(os.path.join(ROOT, "paramrel_jax")):
    for name in sorted(n for n in names if n.endswith(".py")):
      path = os.path.join(folder, name)
      relative = os.path.relpath(path, ROOT).replace(os.sep, "/")
      if relative.startswith(ALLOWED):
        continue
      with open(path) as f:
        reads = _model_attribute_reads(ast.parse(f.read()))
      offenders += [f"{relative}:{line}: {source}" for line, source in reads]
  assert not offenders, offenders
