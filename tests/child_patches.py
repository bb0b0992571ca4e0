"""Patches of a child process (the real command line): a sitecustomize that calls a test helper."""

import pathlib


def sitecustomize_env(site_dir: pathlib.Path, module: str, call: str) -> dict[str, str]:
  """A sitecustomize.py in `site_dir` that runs `<module>.<call>` (a module of tests/) at the start
  of every Python process; returns the environment that puts it first on the path."""
  site_dir.mkdir(parents=True, exist_ok=True)
  tests_dir = str(pathlib.Path(__file__).resolve().parent)
  (site_dir / "sitecustomize.py").write_text(
    f"import sys\nsys.path.insert(0, {tests_dir!r})\nimport {module}\n{module}.{call}\n"
  )
  return {"PYTHONPATH": str(site_dir)}
