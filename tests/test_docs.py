"""Docs that cannot rot: what README.md, experiments/README.md and the docstrings name exists.

The docs are README.md, experiments/README.md and the docstrings of every module under
paramrel_jax/, experiments/ and configs/. What they name, and how it is checked:

- Paths: in the READMEs, the tokens with a `/` in inline code, link targets and commands; in
  docstrings, those of usage lines (`python -m ...`) and `--flag=value`s, and inline-code paths
  that start at a top-level entry of the repository (others name a function's arguments, as
  `workdir/checkpoints`). Each must exist relative to the repository root or the doc's folder,
  never outside the repository, and a link's `#anchor` must be a heading of its markdown file.
  Not repository files, so not checked: URLs and the text of links (their targets are checked),
  absolute and `~/` paths, placeholders (`<split>`, `...`, `$b`, or a first folder in capitals
  as `DIR/`), values of the output flags `--workdir`, `--out`, `-o`, paths under a folder that
  git ignores (`runs/`, `.venv/`), and paths in a run directory: a folder named after a `--mode`
  (each mode writes `DIR/<mode>/`) or one of `RUN_DIR_FOLDERS`.
- Python names: `python -m` modules, and dotted names in inline code (`paramrel_jax.study`,
  `methods.registry.make_model`, `interface.Model.encode`). The module is found by importlib's
  finder, one package at a time (nothing is imported); each further name must be bound at the
  top of that module or in the body of the class it names. A name may start at any module of the
  project (`registry.make_model`). Not checked: file names (`metrics.jsonl`), names under another
  package or a usual import alias (`jax.jit`, `tfds.data_source`), other projects' classes
  (`TADMetric.evaluate`), and in a docstring the attributes of its module's own variables and
  arguments (`cfg.loader`).
- Config keys: `--config.<section>.<key>`, `config.<section>.<key>` and, in inline code,
  `<section>.<key>` (unless it names a module's attribute, as `objective.encoder_input` does)
  must be keys of the ConfigDict that configs/base.py builds. `--mode=<mode>` must be a mode of
  `paramrel_jax.main`.
- Commands: every `python -m` command of the READMEs' code blocks and inline code and of the
  docstrings' usage lines, read as the shell reads it (loops and variables expanded by a
  restricted bash in which `python` is a function that prints its words and nothing else can
  run). Its flags must parse with the module's own parser, nothing run: absl flags with the
  config file loaded, every override applied and the config resolved, or argparse. The README's
  commands on generated data then run end to end at `:smoke` size in a temporary workdir, and the
  files the README says they write must be there.
"""

import argparse
import ast
import contextlib
import copy
import dataclasses
import functools
import importlib
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import warnings

import pytest
from conftest import ROOT
from test_main import _cli

DOCS = ("README.md", "experiments/README.md")
PACKAGES = ("paramrel_jax", "experiments", "configs")  # this project's importable code
# What a run directory holds besides one folder per --mode (paramrel_jax.main.MODES).
RUN_DIR_FOLDERS = ("checkpoints", "tensorboard", "latents")
OUTPUT_FLAGS = ("--workdir", "--out", "-o")
FILE_EXTENSIONS = set("py json jsonl npz png md txt yaml ipynb zip lock toml csv".split())
IMPORT_ALIASES = {"np", "jnp", "tf", "tfds", "lax", "nn", "plt"}

_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_PLACEHOLDER = re.compile(r"<|>|\*|\$|\.\.\.|\{|\[")
_PYTHON = re.compile(r"(?:\S*/)?python3?")
_PYTHON_WORD = re.compile(r"(?m)(?<!\S)(?:\S*/)?python3?(?=\s)")  # python as a command word


@dataclasses.dataclass(frozen=True)
class Command:
  """One `python -m <module> <args>` of a doc."""

  doc: str
  module: str
  args: tuple[str, ...]

  def __str__(self) -> str:
    return f"{self.doc}: python -m {self.module} {shlex.join(self.args)}"

  def short(self) -> str:
    """The test id: the doc, the module and the start of the arguments."""
    args = shlex.join(self.args)
    return f"{self.doc}: {self.module} {args[:70]}{'...' if len(args) > 70 else ''}".strip()


# --- what the docs say ------------------------------------------------------------------------


@dataclasses.dataclass
class Doc:
  """A doc as prose (inline code and links are read from it) and code blocks."""

  name: str  # path relative to the repository root
  folder: str  # the absolute folder that relative paths may also start from
  prose: str
  blocks: list[tuple[str, str]]  # (language, text) of each code block or usage line
  local_names: frozenset[str] = frozenset()  # a module's arguments and variables


def markdown_doc(name: str, text: str, folder: str) -> Doc:
  blocks = []

  def fence(match: re.Match) -> str:
    blocks.append((match.group(1), match.group(2)))
    return "\n"

  text = re.sub(r"(?ms)^```(\w*)\n(.*?)^```[ \t]*$", fence, text)
  prose, lines, block = [], text.split("\n"), []
  for i, line in enumerate(lines):
    indented = line.startswith("    ") and line.strip()
    if indented and (block or not lines[i - 1].strip()):  # an indented block after a blank line
      block.append(line)
      continue
    if block:
      blocks.append(("", "\n".join(block)))
      block = []
    prose.append(line)
  if block:
    blocks.append(("", "\n".join(block)))
  return Doc(name, folder, "\n".join(prose), blocks)


def docstring_doc(path: str) -> Doc:
  """A module's docstrings; its usage lines (`python -m ...`, continued by `\\`) are code."""
  tree = ast.parse(open(path).read())
  docstrings = [
    ast.get_docstring(node)
    for node in ast.walk(tree)
    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
  ]
  text = "\n\n".join(d for d in docstrings if d)
  blocks, lines = [], text.split("\n")
  for i, line in enumerate(lines):
    if re.match(r"\s*(?:\S*/)?python3? -m ", line):
      usage = [line]
      while usage[-1].rstrip().endswith("\\") and i + len(usage) < len(lines):
        usage.append(lines[i + len(usage)])
      blocks.append(("", "\n".join(usage)))
  local_names = {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
  local_names |= {
    n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
  }
  return Doc(
    os.path.relpath(path, ROOT), os.path.dirname(path), text, blocks, frozenset(local_names)
  )


def all_docs() -> list[Doc]:
  docs = [
    markdown_doc(
      name, open(os.path.join(ROOT, name)).read(), os.path.dirname(os.path.join(ROOT, name))
    )
    for name in DOCS
  ]
  for package in PACKAGES:
    for folder, _, names in sorted(os.walk(os.path.join(ROOT, package))):
      docs += [docstring_doc(os.path.join(folder, n)) for n in sorted(names) if n.endswith(".py")]
  return docs


def inline_code(prose: str) -> list[str]:
  """Inline code spans, without the text of links (a link's target is what it names)."""
  return re.findall(r"`([^`]+)`", re.sub(r"\[[^\]]*\]\(", "(", prose))


def link_targets(prose: str) -> list[str]:
  return [t for t in re.findall(r"\]\(([^)\s]+)\)", prose) if "://" not in t]


def shell_commands(block: str) -> list[list[str]]:
  """The simple commands of a shell block, each as its words; bash expands blocks with `$`."""
  block = block.replace("\\\n", " ")
  if "$" in block:
    return _bash_expand(block)
  commands = []
  for line in block.splitlines():
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = [[]]
    for word in lexer:
      if word in ("&&", "||", ";", "|", "&", "(", ")"):
        words.append([])
      else:
        words[-1].append(word)
    commands += [w for w in words if w]
  return commands


def _bash_expand(block: str) -> list[list[str]]:
  """The python commands of a block as bash expands them, with nothing run.

  `python` becomes a function that prints its words; restricted bash (`-r`, no PATH) runs no
  other program: a command with a `/` is refused and any other is not found.
  """
  script = _PYTHON_WORD.sub("_doc_python", block)
  prelude = "set -uf\n_doc_python() { printf '%s\\037' python \"$@\"; printf '\\036'; }\n"
  result = subprocess.run(
    [shutil.which("bash"), "-r", "-c", prelude + script],
    env={"PATH": ""},
    capture_output=True,
    text=True,
    timeout=60,
  )
  return [record.split("\037")[:-1] for record in result.stdout.split("\036")[:-1]]


def python_commands(doc: Doc) -> list[Command]:
  """The `python -m` commands of a doc's code blocks, and of a README's inline code."""
  sources = [text for lang, text in doc.blocks if lang != "python"]
  if doc.name.endswith(".md"):  # a docstring's inline code mentions a command, as `python -m x`
    sources += [s for s in inline_code(doc.prose) if _PYTHON.fullmatch(s.split()[0])]
  commands = []
  for source in sources:
    if re.search(r"<\w+>", source):
      continue  # a synopsis with placeholders: test_readme_modes_table_lists_every_mode
    for words in shell_commands(source):
      while words and re.fullmatch(r"\w+=\S*", words[0]):  # VAR=value before the command
        words = words[1:]
      if len(words) > 2 and _PYTHON.fullmatch(words[0]) and words[1] == "-m":
        commands.append(Command(doc.name, words[2], tuple(words[3:])))
  return commands


def override_blocks(doc: Doc) -> list[list[str]]:
  """Code blocks of bare `--config.<section>.<key>=value` overrides, as words."""
  return [
    shlex.split(text.replace("\\\n", " "))
    for _, text in doc.blocks
    if text.split() and text.split()[0].startswith("--config.")
  ]


# --- what exists ------------------------------------------------------------------------------


@functools.cache
def base_config():
  from paramrel_jax.configs import base

  return base.get_config()


def is_config_key(key: str) -> bool:
  """Whether `key` (`section.name` or a top-level name) is a key of configs/base.py's config."""
  import ml_collections

  node = base_config()
  for part in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False
    node = node[part]
    if isinstance(node, ml_collections.ConfigDict) and not node:
      return True  # a registry such as `evals`: the names below it are the user's
  return True


@functools.cache
def modes() -> tuple[str, ...]:
  """`paramrel_jax.main.MODES`, read without importing the module: its absl flags stay out of
  this process (absl_errors)."""
  tree = ast.parse(open(os.path.join(ROOT, "paramrel_jax", "main.py")).read())
  (value,) = [
    n.value
    for n in tree.body
    if isinstance(n, ast.Assign)
    and any(isinstance(t, ast.Name) and t.id == "MODES" for t in n.targets)
  ]
  return ast.literal_eval(value)


@functools.cache
def find_module(name: str):
  """importlib's spec of a module, found one package at a time without importing any."""
  parts = name.split(".")
  try:
    spec = importlib.util.find_spec(parts[0])  # a top-level name imports nothing
  except (ImportError, ValueError):
    return None
  for part in parts[1:]:
    if spec is None or spec.submodule_search_locations is None:
      return None
    spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
  return spec


def _bound_names(body: list[ast.stmt]) -> dict[str, ast.ClassDef | None]:
  """Names bound by a module's or a class's statements; a class maps to its definition."""
  names = {}
  for node in body:
    if isinstance(node, ast.ClassDef):
      names[node.name] = node
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
      names[node.name] = None
    elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
      targets = node.targets if isinstance(node, ast.Assign) else [node.target]
      names.update((n.id, None) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    elif isinstance(node, ast.Import | ast.ImportFrom):
      names.update(((a.asname or a.name).split(".")[0], None) for a in node.names)
    elif isinstance(node, ast.If | ast.Try | ast.With):
      for inner in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
        names.update(_bound_names(inner))
  return names


@functools.cache
def _module_names(path: str) -> dict[str, ast.ClassDef | None]:
  return _bound_names(ast.parse(open(path).read()).body)


def _resolves(spec, parts: list[str]) -> bool:
  """Whether `parts` name submodules, then attributes, below the module of `spec`."""
  while parts and spec.submodule_search_locations is not None:
    sub = importlib.machinery.PathFinder.find_spec(parts[0], list(spec.submodule_search_locations))
    if sub is None:
      break
    spec, parts = sub, parts[1:]
  if not parts:
    return True
  if not (spec.origin or "").endswith(".py"):
    return False
  return _in_scope(_module_names(spec.origin), parts)


def _in_scope(names: dict[str, ast.ClassDef | None], parts: list[str]) -> bool:
  for part in parts:
    if part not in names:
      return False
    if names[part] is None:
      return True  # a function or a value: what it holds is not checked
    names = _bound_names(names[part].body)
  return True


@functools.cache
def project_modules() -> dict[str, tuple[str, ...]]:
  """Last name -> the project's modules of that name (`study` -> paramrel_jax.study)."""
  modules = {}
  for package in PACKAGES:
    for folder, _, names in os.walk(os.path.join(ROOT, package)):
      dotted = os.path.relpath(folder, ROOT).replace(os.sep, ".")
      modules.setdefault(dotted.split(".")[-1], []).append(dotted)
      for name in names:
        if name.endswith(".py") and name != "__init__.py":
          modules.setdefault(name[:-3], []).append(f"{dotted}.{name[:-3]}")
  return {name: tuple(sorted(found)) for name, found in modules.items()}


@functools.cache
def project_classes() -> dict[str, list[ast.ClassDef]]:
  classes = {}
  for modules in project_modules().values():
    for module in modules:
      spec = find_module(module)
      if spec is not None and (spec.origin or "").endswith(".py"):
        for name, node in _module_names(spec.origin).items():
          if node is not None:
            classes.setdefault(name, []).append(node)
  return classes


def dotted_name_problem(name: str, local_names: frozenset[str] = frozenset()) -> str | None:
  """Why a dotted name of inline code names nothing (None: it exists or is not this project's)."""
  name = name.split("=")[0].removesuffix("()")
  parts = name.split(".")
  first = parts[0]
  if parts[-1] in FILE_EXTENSIONS or first in local_names:
    return None  # a file name such as metrics.jsonl; an argument's or a variable's attribute
  if first == "config":  # config.<section>.<key>, or a module of paramrel_jax.config
    if is_config_key(".".join(parts[1:])) or _resolves(
      find_module("paramrel_jax.config"), parts[1:]
    ):
      return None
    return f"`{name}`: no such key in configs/base.py's config, nor name in paramrel_jax.config"
  if is_config_key(name):
    return None
  modules = project_modules().get(first, ())
  if modules:
    if any(_resolves(find_module(m), parts[1:]) for m in modules):
      return None
    where = f"name in {', '.join(modules)}"
    if first in base_config():
      return f"`{name}`: no such key in configs/base.py's config, nor {where}"
    return f"`{name}`: no such {where}"
  if first in base_config():
    return f"`{name}`: no such key in configs/base.py's config"
  if first.lstrip("_")[:1].isupper():  # a class
    classes = project_classes().get(first, [])
    if classes and not any(_in_scope(_bound_names(c.body), parts[1:]) for c in classes):
      return f"`{name}`: class {first} has no `{parts[1]}`"
    return None
  if first in IMPORT_ALIASES or find_module(first) is not None:
    return None  # another package's name
  return f"`{name}`: no module or config section `{first}`"


@functools.cache
def git_ignored_folders() -> tuple[str, ...]:
  lines = open(os.path.join(ROOT, ".gitignore")).read().split()
  return tuple(line.strip("/") for line in lines if "*" not in line)


def _heading_anchors(path: str) -> set[str]:
  """GitHub's anchors of a markdown file's headings."""
  headings = re.findall(r"(?m)^#+ (.*)$", open(path).read())
  return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def path_problem(path: str, folder: str) -> str | None:
  """Why a path a doc names is no file of the repository (None: it is, or it is an output)."""
  path, _, anchor = path.strip("'\"").partition("#")
  path = re.sub(r"(\.py):\w+$", r"\1", re.sub(r"(?<!\.)[.,;:]+$", "", path))  # x.py:smoke
  first = path.split("/")[0]
  if (
    "://" in path
    or path.startswith(("/", "~"))
    or _PLACEHOLDER.search(path)
    or (first.isupper() and len(first) > 1)
    or first in git_ignored_folders()
    or first in (*modes(), *RUN_DIR_FOLDERS)
  ):
    return None
  for start in dict.fromkeys((ROOT, folder)):
    full = os.path.normpath(os.path.join(start, path))
    if not (full + os.sep).startswith(ROOT + os.sep):
      return f"{path}: outside the repository"
    if os.path.exists(full):
      if anchor and full.endswith(".md") and anchor not in _heading_anchors(full):
        return f"{path}#{anchor}: no such heading"
      return None
  return f"{path}: no such file"


def command_paths(args: tuple[str, ...]) -> list[str]:
  """The paths among a command's arguments, without the values of output flags."""
  paths, output = [], False
  for arg in args:
    if arg.startswith("-"):
      flag, _, value = arg.partition("=")
      output = flag in OUTPUT_FLAGS and not value
      if value and flag not in OUTPUT_FLAGS and "/" in value:
        paths.append(value)
    elif "/" in arg and not output:
      paths.append(arg)
  return paths


def problems(doc: Doc) -> list[str]:
  """Everything a doc names that does not exist: files, modules, config keys, modes."""
  own = os.path.basename(doc.name)  # a link to `#anchor` is to a heading of the doc itself
  found = [
    path_problem(own + p if p.startswith("#") else p, doc.folder) for p in link_targets(doc.prose)
  ]
  top_level = set(os.listdir(ROOT)) | {".."}
  for token in (t for span in inline_code(doc.prose) for t in span.split()):
    if "/" in token and not token.startswith("-"):
      if doc.name.endswith(".md") or token.split("/")[0] in top_level:
        found.append(path_problem(token, doc.folder))
    elif _DOTTED.fullmatch(token.split("=")[0].removesuffix("()")):
      found.append(dotted_name_problem(token, doc.local_names))
  for command in python_commands(doc):
    if find_module(command.module) is None:
      found.append(f"python -m {command.module}: no such module")
    found += [path_problem(p, doc.folder) for p in command_paths(command.args)]
  everything = "\n".join([doc.prose, *(text for _, text in doc.blocks)])
  for flag, value in re.findall(r"(?<![\w-])(--[\w.]+)=([^\s`]+)", everything):
    if "/" in value and flag not in OUTPUT_FLAGS:
      found.append(path_problem(value, doc.folder))
  for key in re.findall(r"--config\.([\w.]+)", everything):
    if not is_config_key(key):
      found.append(f"--config.{key}: no such key in configs/base.py's config")
  for mode in re.findall(r"--mode=([a-z_]+)\b", everything):
    if mode not in modes():
      found.append(f"--mode={mode}: not a mode of paramrel_jax.main")
  return sorted({p for p in found if p})


def all_commands() -> list[Command]:
  """The docs' python commands; a block of bare overrides (the paper-literal settings) is
  checked as overrides of `paramrel_jax.main --config=configs/default.py`."""
  commands = []
  for doc in all_docs():
    commands += python_commands(doc)
    commands += [
      Command(
        doc.name, "paramrel_jax.main", ("--config=configs/default.py", "--workdir=DIR", *words)
      )
      for words in override_blocks(doc)
    ]
  return commands


# --- parsing a command's flags without running it ---------------------------------------------


class _Parsed(Exception):
  """Raised by argparse's parse_args once the arguments parsed, so that nothing runs."""


def parse_absl(module: str, args: tuple[str, ...]) -> None:
  """Parses a command's flags with the absl flags its module defines, into fresh FlagValues.

  A config-file flag loads its file and applies every `--config.<key>=value`; the config is then
  resolved into its typed sections (`paramrel_jax.config.configuration.resolve`), which checks
  the values. Required flags stay required.
  """
  from absl import flags
  from ml_collections import config_flags
  from ml_collections.config_flags.config_flags import is_config_flag

  from paramrel_jax.config import configuration

  importlib.import_module(module)
  argv = [module, *args]
  values, configs = flags.FlagValues(), []
  for flag in flags.FLAGS.get_flags_for_module(module):
    if is_config_flag(flag):
      configs.append(
        config_flags.DEFINE_config_file(
          flag.name, None, flag.help, flag_values=values, lock_config=True, sys_argv=argv
        )
      )
    else:
      values[flag.name] = copy.deepcopy(flag)
  rest = values(argv)
  assert rest == [module], f"unexpected arguments {rest[1:]}"
  for config in configs:
    if config.value is not None:
      configuration.resolve(config.value)


def parse_argparse(module: str, args: tuple[str, ...], monkeypatch) -> argparse.Namespace:
  """Runs a module as `__main__` up to argparse's parse_args, which raises once parsed."""
  parse_args = argparse.ArgumentParser.parse_args

  def parse_only(self, args=None, namespace=None):
    raise _Parsed(parse_args(self, args, namespace))

  monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
  monkeypatch.setattr(sys, "argv", [module, *args])
  stderr = io.StringIO()
  with contextlib.redirect_stderr(stderr), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module was imported before
    try:
      runpy.run_module(module, run_name="__main__")
    except _Parsed as parsed:
      return parsed.args[0]
    except SystemExit:
      pytest.fail(f"python -m {module} {shlex.join(args)}:\n{stderr.getvalue()}")
  pytest.fail(f"python -m {module} ran without calling argparse's parse_args")


def parser_kind(module: str) -> str | None:
  """'absl' or 'argparse' for this project's modules with a command line, else None."""
  spec = find_module(module)
  if not module.startswith(PACKAGES) or spec is None or not spec.origin:
    return None
  source = open(spec.origin).read()
  if re.search(r"^from absl import .*\bflags\b", source, re.M):
    return "absl"
  return "argparse" if "parse_args(" in source else None


# --- the tests ----------------------------------------------------------------------------------


def test_extractor_reports_what_does_not_exist():
  text = """
Train with `python -m paramrel_jax.main --config=configs/default.py --workdir=runs/x`, see
`configs/base.py`, [the results](experiments/README.md#bmnists-beta1) and `configs/nope.py`;
[a bad anchor](experiments/README.md#no-such-heading). The digits in `../shared/data/x.npz`.
Outputs are not files: `runs/default/metrics.jsonl`, `DIR/checkpoints`, `latents/<split>.npz`,
`sample/samples.png`, `/tmp/out/a.json`; nor are other projects' files:
[`configs/mnist_discrete.yaml`](https://github.com/o/r/blob/main/configs/mnist_discrete.yaml).
Names: `paramrel_jax.study`, `methods.registry.make_model`, `interface.Model.encode`,
`evaluation.latents.fit_prior`, `jax.sharding.Mesh`, `metrics.jsonl`, `TADMetric.evaluate`,
`model.encoder_input`, `objective.encoder_input`, `config.evals`, `config.baselines.MODEL_KINDS`
and the stale `modes.run_export_latents`, `models.SelfEncoder`, `registry.make_modell`,
`interface.Model.decode_all`, `config.model.encoder_inputs`, `sampling.z_prior_kind`.

    .venv/bin/python -m experiments.latent_study --rows paramrel --out /tmp/o \\
        --merge experiments/results/latent_study.json experiments/results/gone.json
    .venv/bin/python -m experiments.no_such_script --config.model.size=small

```bash
python -m paramrel_jax.main --config=configs/default.py:smoke --workdir=DIR \\
    --config.training.num_step=4 --mode=sample --mode=sampel
```
"""
  doc = markdown_doc("made_up.md", text, ROOT)
  assert problems(doc) == sorted(
    [
      "../shared/data/x.npz: outside the repository",
      "--config.training.num_step: no such key in configs/base.py's config",
      "--mode=sampel: not a mode of paramrel_jax.main",
      "`config.model.encoder_inputs`: no such key in configs/base.py's config, nor name in "
      "paramrel_jax.config",
      "`interface.Model.decode_all`: no such name in paramrel_jax.methods.interface",
      "`models.SelfEncoder`: no module or config section `models`",
      "`modes.run_export_latents`: no module or config section `modes`",
      "`registry.make_modell`: no such name in paramrel_jax.methods.registry",
      "`sampling.z_prior_kind`: no such key in configs/base.py's config, nor name in "
      "paramrel_jax.methods.paramrel.sampling",
      "configs/nope.py: no such file",
      "experiments/README.md#no-such-heading: no such heading",
      "experiments/results/gone.json: no such file",
      "python -m experiments.no_such_script: no such module",
    ]
  )
  assert [(c.module, c.args[:2]) for c in python_commands(doc)] == [
    ("paramrel_jax.main", ("--config=configs/default.py:smoke", "--workdir=DIR")),
    ("experiments.latent_study", ("--rows", "paramrel")),
    ("experiments.no_such_script", ("--config.model.size=small",)),
    ("paramrel_jax.main", ("--config=configs/default.py", "--workdir=runs/x")),
  ]
  # In a docstring, a module's own arguments and variables are not module names.
  doc = dataclasses.replace(doc, name="x.py", local_names=frozenset({"models", "modes"}))
  assert not any("`mode" in p for p in problems(doc))


def test_shell_blocks_are_read_as_the_shell_reads_them():
  block = """for b in 9 3; do
  args="--config=configs/bmnist.py --workdir=runs/b$b
    --config.flow.beta1=$b"
  .venv/bin/python -m paramrel_jax.main $args --mode=eval   # a comment
  cp a b && /bin/rm -rf c
done"""
  expanded = "python -m paramrel_jax.main --config=configs/bmnist.py --workdir=runs/b{0} "
  expanded += "--config.flow.beta1={0} --mode=eval"
  assert shell_commands(block) == [expanded.format(b).split() for b in (9, 3)]
  assert shell_commands(
    "python3 -m venv .venv && .venv/bin/pip install -q -e . && "
    "X=1 .venv/bin/python -m pytest -q  # tests"
  ) == [
    ["python3", "-m", "venv", ".venv"],
    [".venv/bin/pip", "install", "-q", "-e", "."],
    ["X=1", ".venv/bin/python", "-m", "pytest", "-q"],
  ]


@pytest.mark.parametrize("name", [*DOCS, "docstrings"])
def test_everything_the_docs_name_exists(name):
  docs = [d for d in all_docs() if d.name == name or (name == "docstrings" and d.name not in DOCS)]
  found = [f"{doc.name}: {problem}" for doc in docs for problem in problems(doc)]
  assert found == [], "\n".join(found)


def test_readme_modes_table_lists_every_mode():
  readme = open(os.path.join(ROOT, "README.md")).read()
  table = readme.split("| mode | what it does | writes |")[1].split("\n\n")[0]
  assert tuple(re.findall(r"(?m)^\| `(\w+)`", table)) == modes()


def test_readme_layout_shows_every_package():
  readme = open(os.path.join(ROOT, "README.md")).read()
  layout = readme.split("## Layout")[1].split("\n## ")[0]
  shown = set(re.findall(r"(?<![\w/])(\w+)/(?=\s)", layout))
  packages = {
    n
    for n in os.listdir(os.path.join(ROOT, "paramrel_jax"))
    if os.path.exists(os.path.join(ROOT, "paramrel_jax", n, "__init__.py"))
  }
  assert packages <= shown, f"missing from the Layout: {sorted(packages - shown)}"
  for name in shown:
    assert any(
      os.path.isdir(os.path.join(ROOT, *where, name))
      for where in [(), ("paramrel_jax",), ("paramrel_jax", "methods")]
    ), name


def test_readme_python_api_names_exist():
  """The README's Python block calls only what `paramrel_jax.load` and its model have."""
  (code,) = [text for text in _readme_python_blocks() if "paramrel_jax.load(" in text]
  used = {
    (n.value.id, n.attr)
    for n in ast.walk(ast.parse(code))
    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
  }
  assert used
  methods = _bound_names(project_classes()["LoadedModel"][0].body)
  for owner, attr in sorted(used):
    if owner == "paramrel_jax":
      assert _resolves(find_module("paramrel_jax"), [attr]), attr
    else:
      assert owner == "model" and attr in methods, (owner, attr)


def _readme_python_blocks() -> list[str]:
  readme = open(os.path.join(ROOT, "README.md")).read()
  return [text for lang, text in markdown_doc("README.md", readme, ROOT).blocks if lang == "python"]


def test_readme_records_block_runs(tmp_path, monkeypatch):
  """The README's block on records runs as written on a small CSV, with the parameters of an
  untrained model where it says to train."""
  import jax
  import numpy as np
  import pandas as pd

  (code,) = [text for text in _readme_python_blocks() if "RecordNet" in text]
  before, sep, after = code.partition("# train")
  assert sep, "the block no longer marks where training goes"
  after = after.split("\n", 1)[1]
  rng = np.random.default_rng(0)
  pd.DataFrame(
    {
      "species": rng.choice(["Adelie", "Gentoo"], 30),
      "year": rng.choice([2007, 2008, 2009], 30),
      "mass": rng.uniform(3.0, 6.0, 30),
      "island": rng.choice(["Biscoe", "Dream"], 30),
    }
  ).to_csv(tmp_path / "records.csv", index=False)
  monkeypatch.chdir(tmp_path)
  names = {}
  exec(before, names)
  names["params"] = names["model"].init(jax.random.key(0), (8, len(names["flow"].columns)))
  names["key"] = jax.random.key(1)
  exec(after, names)
  assert set(names["samples"]) == set(names["filled"]) == {"year", "mass", "island"}
  assert list(names["schema"].decode(names["samples"]).columns) == ["year", "mass", "island"]


COMMANDS = all_commands()
# (made-up command, what its error names; None: it parses) for the parsers' own test.
BAD_COMMANDS = [
  (Command("made up", "paramrel_jax.main", tuple(args.split())), needle)
  for args, needle in [
    ("--config=configs/default.py:smoke --workdir=DIR --config.training.num_step=4", "num_step"),
    ("--config=configs/default.py --workdir=DIR --config.training.ema_decay=2", "ema_decay"),
    ("--config=configs/default.py --mode=sample", "--workdir"),
    ("--config=configs/default.py --workdir=DIR --mode=sampel", "sampel"),
    ("--config=configs/nope.py --workdir=DIR", "nope.py"),
    ("--config=configs/default.py --workdir=DIR --config.flow.beta1=3", None),
  ]
]

# Each absl module parses its commands in a process of its own: two modules that define the same
# flag (`--config`) cannot be imported into one process, and this one imports neither.
_PARSE_IN_CHILD = """
import json, sys
sys.path[:0] = sys.argv[3:]
from test_docs import parse_absl
errors = []
for args in json.loads(sys.argv[2]):
  try:
    parse_absl(sys.argv[1], tuple(args))
    errors.append(None)
  except Exception as error:  # what the flags, the config file and resolve raise
    errors.append(f"{type(error).__name__}: {error}")
print(json.dumps(errors))
"""


@pytest.fixture(scope="module")
def absl_errors() -> dict[Command, str | None]:
  """Command -> the error its flags raise (None: they parse), for the absl modules' commands."""
  commands, errors = [*COMMANDS, *(c for c, _ in BAD_COMMANDS)], {}
  for module in sorted({c.module for c in commands if parser_kind(c.module) == "absl"}):
    mine = [c for c in commands if c.module == module]
    result = subprocess.run(
      [
        sys.executable,
        "-c",
        _PARSE_IN_CHILD,
        module,
        json.dumps([c.args for c in mine]),
        os.path.dirname(os.path.abspath(__file__)),
        ROOT,
      ],
      cwd=ROOT,
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert result.returncode == 0, result.stderr
    errors.update(zip(mine, json.loads(result.stdout.splitlines()[-1]), strict=True))
  return errors


@pytest.mark.parametrize("command", COMMANDS, ids=Command.short)
def test_command_flags_parse(command, absl_errors, monkeypatch):
  kind = parser_kind(command.module)
  if kind == "absl":
    assert absl_errors[command] is None, absl_errors[command]
  elif kind == "argparse":
    parse_argparse(command.module, command.args, monkeypatch)
  else:
    assert find_module(command.module) is not None, command.module


def test_parsers_reject_unknown_keys_values_flags_and_files(absl_errors, monkeypatch):
  for command, needle in BAD_COMMANDS:
    error = absl_errors[command]
    assert error is None if needle is None else needle in (error or ""), (command, error)
  with pytest.raises(pytest.fail.Exception, match="invalid choice"):
    parse_argparse("experiments.latent_study", ("--rows", "no_such_row"), monkeypatch)


def _offline_readme_runs() -> list[Command]:
  """The README's `paramrel_jax.main` training commands on generated data, on one host.

  Commands on TFDS or npz data are parsed only (test_command_flags_parse), and the multi-host
  command is run by tests/test_multihost.py (two processes of 4 CPU devices each).
  """
  readme = markdown_doc("README.md", open(os.path.join(ROOT, "README.md")).read(), ROOT)
  runs = []
  for command in python_commands(readme):
    if command.module != "paramrel_jax.main":
      continue
    args = dict(a.partition("=")[::2] for a in command.args)
    config = args["--config"].split(":")[0].removesuffix(".py").replace("/", ".")
    source = args.get(
      "--config.data.source", importlib.import_module(config).get_config().data.source
    )
    if (
      source == "generated"
      and args.get("--mode", "train") == "train"
      and not any(a.startswith("--config.distributed.") for a in command.args)
    ):
      runs.append(command)
  return runs


@pytest.mark.parametrize("command", _offline_readme_runs(), ids=Command.short)
def test_readme_command_runs_at_smoke_size(command, tmp_path):
  args = dict(a.partition("=")[::2] for a in command.args)
  workdir = str(tmp_path / "run")
  smoke = [f"--config={args['--config'].split(':')[0]}:smoke", f"--workdir={workdir}"]
  rest = [a for a in command.args if not a.startswith(("--config=", "--workdir="))]
  result = _cli(*smoke, *rest)
  assert result.returncode == 0, result.stderr
  # What the README says the command writes, e.g. runs/default/sample/samples.png.
  readme = open(os.path.join(ROOT, "README.md")).read()
  written = set(re.findall(re.escape(args["--workdir"].rstrip("/")) + r"/([\w./]+\w)", readme))
  assert written
  for path in sorted(written):
    assert os.path.exists(os.path.join(workdir, path)), path
