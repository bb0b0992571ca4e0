r"""TFDS datasets prepared on first use: downloaded, written as array_record, moved into place.

  python -m paramrel_jax.data.prepare cifar10 --data_dir=DIR

prepares one dataset without training (on a machine that is online; copy DIR to an offline one).
The training run does the same on first use when `data.download` is true (the default).

A preparation writes into a temporary directory inside `data_dir` and renames the finished
`<name>/<version>` directory into place, so an interrupted preparation is never read as complete;
the downloaded archives stay in `<data_dir>/downloads` and are reused by the next try. Before
downloading, every host of the dataset's URLs is probed with a short TCP connect, so an offline
machine gets one clear error within seconds instead of TFDS's retry loop (minutes).

No TensorFlow is needed: TFDS 4.9 writes array_record with its own protos, but still opens the
downloaded archives through `tf.io.gfile` and `tf.compat.as_text` (its extractor, the CIFAR and
MNIST readers) and encodes array images with `tf.image.encode_png`. Where TensorFlow is not
installed, TFDS's lazy `tensorflow` module is given those three for the length of the preparation
only (`_tensorflow_stand_in`: files through etils.epath, which TFDS itself uses, and lossless PNG
through Pillow); any other use of TensorFlow fails as it would without the stand-in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import socket
import sys
import tempfile
import time
import types
import urllib.parse
import urllib.request

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core.utils import lazy_imports_utils

# Seconds that a host may take to accept a TCP connection before it counts as unreachable.
PROBE_TIMEOUT = 10.0
PREPARING_PREFIX = ".preparing-"
MANUAL_DIR = os.path.join("downloads", "manual")
# Files TFDS cannot download by itself (Google Drive quotas): placed by hand in MANUAL_DIR.
MANUAL_FILES = {
  "celeb_a": (
    "img_align_celeba.zip",
    "list_attr_celeba.txt",
    "list_eval_partition.txt",
    "list_landmarks_align_celeba.txt",
    "identity_CelebA.txt",
  ),
}


def _log(line: str) -> None:
  print(line, file=sys.stderr)


class PrepareError(ValueError):
  """A dataset is not prepared and cannot be prepared here; the message says what to do."""


def resolve_data_dir(data_dir: str) -> str:
  """The TFDS data directory: `data_dir`, or TFDS's default ($TFDS_DATA_DIR or ~); absolute
  where it is a local path (URLs such as gs://... are kept)."""
  data_dir = data_dir or tfds.core.constants.DATA_DIR
  return data_dir if _is_url(data_dir) else os.path.abspath(os.path.expanduser(data_dir))


def _is_url(path: str) -> bool:
  return "://" in path


def _builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  return tfds.builder(name, data_dir=data_dir, file_format="array_record")


def is_prepared(name: str, data_dir: str) -> bool:
  """Whether `name` is prepared (any version TFDS would read) under `data_dir`."""
  data_dir = resolve_data_dir(data_dir)
  # Without the dataset's directory TFDS would still look, with a warning per call.
  if not _is_url(data_dir) and not os.path.isdir(os.path.join(data_dir, name)):
    return False
  return _builder(name, data_dir).is_prepared()


def _ways_out(name: str, data_dir: str) -> str:
  return (
    f"either prepare it on a machine that is online (python -m paramrel_jax.data.prepare {name} "
    f"--data_dir={data_dir}) and copy {data_dir} here, or use data.source=npz with "
    "data.path=FILE.npz"
  )


def not_prepared_error(name: str, data_dir: str, reason: str) -> PrepareError:
  """The one-line error of a dataset that is missing and will not be prepared."""
  data_dir = resolve_data_dir(data_dir)
  if name in MANUAL_FILES:
    manual = os.path.join(data_dir, MANUAL_DIR)
    return PrepareError(
      f"TFDS dataset {name!r} is not prepared under {data_dir} and {reason}; TFDS cannot "
      f"download it by itself: place {', '.join(MANUAL_FILES[name])} (from the dataset's site) "
      f"in {manual} and run again, or use data.source=npz with data.path=FILE.npz"
    )
  return PrepareError(
    f"TFDS dataset {name!r} is not prepared under {data_dir} and {reason}; "
    + _ways_out(name, data_dir)
  )


def _probe_address(url: str) -> tuple[str, int]:
  """(host, port) a download of `url` connects to first: the scheme's proxy where one is set."""
  parts = urllib.parse.urlsplit(url)
  proxy = urllib.request.getproxies().get(parts.scheme)
  if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
  default_port = 443 if parts.scheme == "https" else 80
  return parts.hostname or "", parts.port or default_port


def unreachable_host(urls: list[str], timeout: float = PROBE_TIMEOUT) -> tuple[str, str] | None:
  """The first (host, reason) among the URLs' hosts that refuses a TCP connection, or None."""
  for host, port in sorted({_probe_address(url) for url in urls}):
    try:
      socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
      return host, f"{type(error).__name__}: {error}"
  return None


def _remove_abandoned(data_dir: str, name: str) -> None:
  """Removes temporary directories of this host's earlier preparations whose process is gone."""
  prefix = f"{PREPARING_PREFIX}{name}-{socket.gethostname()}-"
  for entry in os.listdir(data_dir):
    if not entry.startswith(prefix):
      continue
    pid = entry[len(prefix) :].split("-")[0]
    if pid.isdigit() and not _process_exists(int(pid)):
      shutil.rmtree(os.path.join(data_dir, entry), ignore_errors=True)


def _process_exists(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _needs_network(builder: tfds.core.DatasetBuilder, manual_dir: str) -> list[str]:
  """The URLs of the builder whose files are not already placed in `manual_dir`."""
  infos = builder.url_infos or {}
  return [
    url
    for url, info in infos.items()
    if not (info.filename and os.path.isfile(os.path.join(manual_dir, info.filename)))
  ]


def _no_tensorflow(name: str):
  raise ModuleNotFoundError(
    f"tensorflow.{name} is needed to prepare this dataset, and TensorFlow is not installed"
  )


class _Encoded:
  """What TFDS's eager graph runner expects back from an encoder: `.numpy()`."""

  def __init__(self, data: bytes):
    self._data = data

  def numpy(self) -> bytes:
    return self._data


def _encode_png(image: np.ndarray) -> _Encoded:
  """uint8 (H, W, C), C in {1, 3, 4}, as lossless PNG bytes (what tf.image.encode_png returns)."""
  buffer = io.BytesIO()
  PIL.Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "PNG")
  return _Encoded(buffer.getvalue())


@contextlib.contextmanager
def _tensorflow_stand_in():
  """TFDS's lazy `tensorflow`, where TensorFlow is absent, is the stand-in until exit."""
  lazy = lazy_imports_utils.tensorflow
  if importlib.util.find_spec("tensorflow") is not None or "_module" in vars(lazy):
    yield
    return
  stand_in = types.ModuleType("tensorflow_stand_in")
  stand_in.io = types.SimpleNamespace(
    gfile=types.SimpleNamespace(GFile=lambda path, mode="r": epath.Path(path).open(mode))
  )
  stand_in.compat = types.SimpleNamespace(
    as_text=lambda text: text.decode() if isinstance(text, bytes) else text
  )
  stand_in.executing_eagerly = lambda: True
  stand_in.image = types.SimpleNamespace(encode_png=_encode_png)
  stand_in.__getattr__ = _no_tensorflow
  vars(lazy)["_module"] = stand_in  # what functools.cached_property reads
  try:
    yield
  finally:
    vars(lazy).pop("_module", None)


def prepare(name: str, data_dir: str, *, log=_log) -> str:
  """Downloads and prepares `name` as array_record under `data_dir`; returns its directory.

  Args:
    name: a TFDS dataset name.
    data_dir: TFDS data directory ('' = TFDS default).
    log: receives the progress lines (TFDS draws its own download and generation bars).

  Returns:
    The prepared `<data_dir>/<name>/<version>` directory.

  Raises:
    PrepareError: a host cannot be reached, a manual file is missing or the download failed.
  """
  data_dir = resolve_data_dir(data_dir)
  if _is_url(data_dir):
    raise not_prepared_error(name, data_dir, "data.download prepares only on a local disk")
  manual_dir = os.path.join(data_dir, MANUAL_DIR)
  if name in MANUAL_FILES:
    missing = [f for f in MANUAL_FILES[name] if not os.path.isfile(os.path.join(manual_dir, f))]
    if missing:
      raise not_prepared_error(name, data_dir, f"{', '.join(missing)} missing in {manual_dir}")
  urls = _needs_network(_builder(name, data_dir), manual_dir)
  if (unreachable := unreachable_host(urls)) is not None:
    host, reason = unreachable
    raise not_prepared_error(name, data_dir, f"{host} cannot be reached ({reason})")
  os.makedirs(data_dir, exist_ok=True)
  _remove_abandoned(data_dir, name)
  temporary = tempfile.mkdtemp(
    prefix=f"{PREPARING_PREFIX}{name}-{socket.gethostname()}-{os.getpid()}-", dir=data_dir
  )
  start = time.perf_counter()
  try:
    builder = _builder(name, temporary)
    size = sum(info.size for info in (builder.url_infos or {}).values())
    log(
      f"preparing TFDS {name!r} {builder.version} as array_record under {data_dir} "
      f"(first use: {size / 2**20:.0f} MiB to download or read from {manual_dir})"
    )
    try:
      with _tensorflow_stand_in():
        builder.download_and_prepare(
          download_dir=os.path.join(data_dir, "downloads"),
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir),
        )
    # TFDS reports network and checksum failures with many types (requests, its own).
    except Exception as error:  # noqa: BLE001
      raise PrepareError(
        f"preparing TFDS dataset {name!r} under {data_dir} failed "
        f"({type(error).__name__}: {' '.join(str(error).split())[:300]}); "
        + _ways_out(name, data_dir)
      ) from error
    relative = os.path.relpath(builder.data_dir, temporary)
    target = os.path.join(data_dir, relative)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
      os.rename(builder.data_dir, target)
    except OSError:
      if not os.path.isdir(target):  # another process moved its copy in first
        raise
  finally:
    shutil.rmtree(temporary, ignore_errors=True)
  log(f"prepared {name!r} in {time.perf_counter() - start:.0f} s: {target}")
  return target


def ensure(name: str, data_dir: str, download: bool, *, log=_log) -> None:
  """Prepares `name` unless it is prepared already; without `download` a missing one is an error.

  Raises:
    PrepareError: as `prepare`, or `name` is missing and `download` is false.
  """
  if is_prepared(name, data_dir):
    return
  if not download:
    raise not_prepared_error(name, data_dir, "data.download=false")
  prepare(name, data_dir, log=log)


def _main(argv: list[str]) -> int:
  import argparse

  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("name", help="TFDS dataset name, e.g. cifar10")
  parser.add_argument("--data_dir", default="", help="TFDS data directory (default: TFDS's)")
  args = parser.parse_args(argv)
  try:
    ensure(args.name, args.data_dir, download=True)
  except (PrepareError, tfds.core.registered.DatasetNotFoundError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(resolve_data_dir(args.data_dir))
  return 0


if __name__ == "__main__":
  sys.exit(_main(sys.argv[1:]))
