"""The persistent XLA compilation cache (config key `compile_cache`).

Every CLI mode compiles its steps afresh: the train step alone takes 10-40 s on a CPU, and it is
paid again by each resume, each `--mode=sample` and each new run of the same shapes. With the cache
on, XLA's compiled executables are stored on disk, keyed by the lowered program, the compile
options, the backend and the JAX version, and a later process with the same program loads them
instead of compiling. A changed program gets a new key, so a stale entry is never used.

Settings of `compile_cache`:
  'user'     $XDG_CACHE_HOME/paramrel_jax/xla (~/.cache/... without it): shared by all runs of
             this user, so fresh runs of known shapes also skip the compile (the default);
  'workdir'  WORKDIR/compile_cache: private to the run;
  'off'      no persistent cache;
  a path     that directory (absolute, or relative to the working directory; `~` expands).

JAX trusts the cache's contents: point it only at a directory no one else can write to.
"""

import os

import jax
from jax.experimental.compilation_cache import compilation_cache

NAMED = ("user", "workdir", "off")
# Compiles shorter than this are not written (the many small jitted helpers would cost more disk
# reads than they save).
MIN_COMPILE_TIME_S = 0.5


def cache_dir(setting: str, workdir: str) -> str | None:
  """The directory `setting` names for a run in `workdir`, or None for 'off'.

  Raises:
    ValueError: an empty setting.
  """
  if not setting:
    raise ValueError(f"compile_cache must be one of {NAMED} or a directory, got ''.")
  if setting == "off":
    return None
  if setting == "user":
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "paramrel_jax", "xla")
  if setting == "workdir":
    return os.path.join(os.path.abspath(workdir), "compile_cache")
  return os.path.abspath(os.path.expanduser(setting))


def configure(setting: str, workdir: str) -> str | None:
  """Points JAX's persistent compilation cache at `cache_dir(setting, workdir)` (None: off).

  Takes effect for the compiles that follow, also when an earlier call in this process chose
  another directory. Returns the directory used.
  """
  path = cache_dir(setting, workdir)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
  compilation_cache.reset_cache()  # forget the directory an earlier call may have opened
  return path
