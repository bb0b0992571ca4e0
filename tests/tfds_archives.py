"""Archives in the real formats of TFDS downloads, and a network that serves them from disk.

`install(archive_dir, name)` replaces only TFDS's network call (`_Downloader._sync_download`) and
the reachability probe: the archive is written where the download would land and reported with
the registered checksum, so TFDS's own builder extracts, parses and writes it exactly as it would
a real download. `child_patches.sitecustomize_env` runs it in a child process (the real command
line).
"""

import gzip
import io
import pathlib
import socket
import tarfile
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import downloader

from paramrel_jax.data import prepare

CIFAR10_CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


def _tar_gz(files: dict[str, bytes]) -> bytes:
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
    for name, content in files.items():
      info = tarfile.TarInfo(name)
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))
  return buffer.getvalue()


def cifar10_archive(images: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> bytes:
  """cifar-10-binary.tar.gz: per batch file, records of 1 label byte + 3072 bytes (R, G, B planes).

  Args:
    images: batch file name (data_batch_1.bin ... data_batch_5.bin, test_batch.bin) -> uint8
      (N, 32, 32, 3).
    labels: the same names -> int (N,) in 0..9.
  """
  files = {"cifar-10-batches-bin/batches.meta.txt": "\n".join(CIFAR10_CLASSES).encode() + b"\n"}
  for name, batch in images.items():
    planes = batch.transpose(0, 3, 1, 2).reshape(len(batch), 3072)
    records = np.concatenate([labels[name].astype(np.uint8)[:, None], planes], axis=1)
    files[f"cifar-10-batches-bin/{name}"] = records.tobytes()
  return _tar_gz(files)


def idx_images(images: np.ndarray) -> bytes:
  """A gzipped idx3-ubyte file (MNIST's format): magic 2051, N, 28, 28, then the pixels."""
  header = np.array([2051, *images.shape[:3]], ">i4").tobytes()
  return gzip.compress(header + images.astype(np.uint8).tobytes(), compresslevel=1)


def idx_labels(labels: np.ndarray) -> bytes:
  """A gzipped idx1-ubyte file: magic 2049, N, then one byte per label."""
  return gzip.compress(
    np.array([2049, len(labels)], ">i4").tobytes() + labels.astype(np.uint8).tobytes()
  )


def mnist_files(num_train: int, num_test: int, seed: int) -> tuple[dict[str, bytes], dict]:
  """The four idx files of MNIST / Fashion-MNIST, keyed by file name, and the arrays they hold."""
  rng = np.random.default_rng(seed)
  arrays = {}
  files = {}
  for split, size in (("train", num_train), ("t10k", num_test)):
    # Blocks of one value compress well, so the full-size archives stay small.
    images = np.repeat(rng.integers(0, 256, (size, 1, 1, 1)), 28, axis=1).repeat(28, axis=2)
    labels = rng.integers(0, 10, size)
    arrays[split] = (images, labels)
    files[f"{split}-images-idx3-ubyte.gz"] = idx_images(images)
    files[f"{split}-labels-idx1-ubyte.gz"] = idx_labels(labels)
  return files, arrays


def _serve(by_filename: dict[str, bytes], url_infos: dict):
  """A stand-in for `_Downloader._sync_download` that writes `by_filename[<url's file name>]`."""

  def sync_download(self, url, destination_path, verify=True):
    del self, verify
    filename = url.rstrip("/").split("/")[-1]
    path = destination_path / filename
    path.write_bytes(by_filename[filename])
    return downloader.DownloadResult(path=path, url_info=url_infos[url])

  return sync_download


def install(archive_dir: str, name: str) -> None:
  """In this process, TFDS downloads of `name` come from the files of `archive_dir` (by name).

  Only the network is replaced: the reachability probe reports every host reachable, and each
  download writes the local archive and reports the registered checksum.
  """
  by_filename = {path.name: path.read_bytes() for path in pathlib.Path(archive_dir).iterdir()}
  url_infos = tfds.builder(name).url_infos
  mock.patch.object(
    downloader._Downloader, "_sync_download", _serve(by_filename, url_infos)
  ).start()
  mock.patch.object(prepare, "unreachable_host", return_value=None).start()


def install_offline(attempts: str) -> None:
  """In this process, every outgoing connection fails as on a machine without a network: the
  probe's `socket.create_connection` and the name lookup (`socket.getaddrinfo`) that every other
  client (urllib3, so TFDS's downloader) starts with. Each attempt appends 'host:port' to the file
  `attempts`."""

  def no_network(host, port):
    with open(attempts, "a") as log:
      log.write(f"{host}:{port}\n")
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

  mock.patch.object(
    socket, "create_connection", lambda address, *_, **__: no_network(*address)
  ).start()
  mock.patch.object(
    socket, "getaddrinfo", lambda host, port, *_, **__: no_network(host, port)
  ).start()
