"""Per-example preprocessing: uint8 images in, model-ready images out (grain transformations).

Every source yields examples `{'image': uint8 (H, W, C) in 0..255, ...}`. The functions here turn
the image into the model input of the shared conventions, leaving the other keys untouched:

  * geometry: an optional centre crop, then a resize to `image_size` x `image_size` (PIL bicubic,
    which low-pass filters when shrinking);
  * binarised data (discrete flow, K = 2): int32 {0, 1} of shape (S, S, C), from a fixed
    threshold (pixel > threshold) or a Bernoulli(pixel / 255) draw ("dynamic binarisation");
  * continuous data: float32 x = v / 127.5 - 1 in [-1, 1];
  * discretised data: x moved to the nearest of the K bin centres (2k + 1) / K - 1, k = 0..K-1
    (the bins of BFN Sec. 5, arXiv 2308.07037), by the flow's own `discretised.quantize`.
"""

import dataclasses
import functools
from typing import Any

import grain
import numpy as np
from PIL import Image

from paramrel_jax.bfn import discretised

Example = dict[str, Any]


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Crops the central `size` x `size` window.

  Args:
    image: (H, W, C) array with H, W >= size.
    size: side of the crop.

  Returns:
    (size, size, C) view of `image`.
  """
  height, width = image.shape[:2]
  if size > min(height, width):
    raise ValueError(f"center_crop size {size} exceeds the image shape {image.shape[:2]}.")
  top, left = (height - size) // 2, (width - size) // 2
  return image[top : top + size, left : left + size]


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes a uint8 image to `size` x `size` with PIL bicubic interpolation.

  Args:
    image: uint8 (H, W, C) with C in {1, 3}.
    size: output side.

  Returns:
    uint8 (size, size, C); `image` itself when it already has that size.
  """
  if image.shape[:2] == (size, size):
    return image
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  out = np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC))
  return out.reshape(size, size, image.shape[-1])


def binarize_threshold(image: np.ndarray, threshold: int) -> np.ndarray:
  """Fixed binarisation: int32 1 where the uint8 pixel exceeds `threshold`, else 0."""
  return (image > threshold).astype(np.int32)


def binarize_bernoulli(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Dynamic binarisation: each pixel is an independent Bernoulli(v / 255) draw, int32 {0, 1}."""
  return (rng.random(image.shape) * 255.0 < image).astype(np.int32)


def scale(image: np.ndarray) -> np.ndarray:
  """Maps uint8 pixels v to float32 v / 127.5 - 1 in [-1, 1]."""
  return (image.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


def preprocess_images(
  images: np.ndarray,
  *,
  binarize: str,
  threshold: int,
  num_bins: int,
  rng: np.random.Generator | None = None,
) -> np.ndarray:
  """The elementwise preprocessing of uint8 images of any shape, all at once.

  What the per-example transformations below do after the geometry, vectorised: the in-memory
  loader applies it to whole batches and the Python API to the images it is given.

  Args:
    images: uint8 array, e.g. (B, S, S, C).
    binarize: 'threshold' | 'bernoulli' | 'none'.
    threshold: threshold of 'threshold' binarisation.
    num_bins: K for discretised data (binarize == 'none'); 0 keeps floats continuous.
    rng: the generator of 'bernoulli' draws (needed only there).

  Returns:
    int32 {0, 1} when binarising, else float32 in [-1, 1], of `images`' shape.
  """
  if binarize == "threshold":
    return binarize_threshold(images, threshold)
  if binarize == "bernoulli":
    if rng is None:
      raise ValueError("binarize='bernoulli' needs a random generator.")
    return binarize_bernoulli(images, rng)
  if binarize != "none":
    raise ValueError(f"binarize must be 'threshold', 'bernoulli' or 'none', got {binarize!r}.")
  return quantised_pixels(num_bins)[images] if num_bins else scale(images)


@functools.lru_cache(maxsize=8)
def quantised_pixels(num_bins: int) -> np.ndarray:
  """`discretised.quantize(scale(v), num_bins)` of each of the 256 uint8 values v: float32 (256,).

  A function of one uint8 pixel is a lookup: a batch is one gather (6x faster than computing
  it). The values are the flow's own bin centres, computed once per K on the host that builds
  the pipeline (grain's workers receive them with `ScaleImage` and never run JAX).
  """
  pixels = scale(np.arange(256, dtype=np.uint8))
  return np.asarray(discretised.quantize(pixels, num_bins), np.float32)


@dataclasses.dataclass(frozen=True)
class CropResize(grain.transforms.Map):
  """Centre crop to `crop` (0: no crop), then resize 'image' to `size` x `size`."""

  crop: int
  size: int

  def map(self, element: Example) -> Example:
    image = element["image"]
    if self.crop:
      image = center_crop(image, self.crop)
    return {**element, "image": resize(image, self.size)}


@dataclasses.dataclass(frozen=True)
class ThresholdBinarize(grain.transforms.Map):
  """'image' uint8 -> int32 {0, 1} by `binarize_threshold`."""

  threshold: int

  def map(self, element: Example) -> Example:
    return {**element, "image": binarize_threshold(element["image"], self.threshold)}


class BernoulliBinarize(grain.transforms.RandomMap):
  """'image' uint8 -> int32 {0, 1} by `binarize_bernoulli`.

  grain seeds `rng` from the loader seed and the example's position in the (repeated, shuffled)
  stream, so the draws are reproducible for a given seed and differ from epoch to epoch.
  """

  def random_map(self, element: Example, rng: np.random.Generator) -> Example:
    return {**element, "image": binarize_bernoulli(element["image"], rng)}


@dataclasses.dataclass(frozen=True)
class ScaleImage(grain.transforms.Map):
  """'image' uint8 -> float32 in [-1, 1]: `scale`, or the value of each pixel in `pixel_values`.

  pixel_values: the 256 float32 values of the uint8 pixels, `quantised_pixels(K)` for
    discretised data; empty for continuous data.
  """

  pixel_values: tuple[float, ...] = ()

  @functools.cached_property
  def _table(self) -> np.ndarray:
    """pixel_values as a float32 lookup table, built once per transform (not per example)."""
    return np.asarray(self.pixel_values, np.float32)

  def map(self, element: Example) -> Example:
    image = element["image"]
    if not self.pixel_values:
      return {**element, "image": scale(image)}
    return {**element, "image": self._table[image]}


def geometry_op(
  *, image_size: int, native_shape: tuple[int, int, int], crop: int = 0
) -> CropResize | None:
  """The crop and resize from `native_shape` to `image_size`, or None when there is none."""
  if crop or native_shape[:2] != (image_size, image_size):
    return CropResize(crop=crop, size=image_size)
  return None


def preprocess_ops(
  *,
  binarize: str,
  threshold: int,
  num_bins: int,
  image_size: int,
  native_shape: tuple[int, int, int],
  crop: int = 0,
) -> list[grain.transforms.Map | grain.transforms.RandomMap]:
  """The per-example transformations from a source example to a model input.

  Args:
    binarize: 'threshold' | 'bernoulli' | 'none'.
    threshold: threshold of 'threshold' binarisation (pixel > threshold -> 1).
    num_bins: K for discretised data (binarize == 'none'); 0 keeps floats continuous.
    image_size: output side S.
    native_shape: (H, W, C) of the source images.
    crop: centre crop applied before resizing (0: none).

  Returns:
    grain transformations; the last one yields 'image' int32 {0, 1} (S, S, C) when binarising,
    else float32 in [-1, 1] (S, S, C).
  """
  geometry = geometry_op(image_size=image_size, native_shape=native_shape, crop=crop)
  ops: list[grain.transforms.Map | grain.transforms.RandomMap] = [geometry] if geometry else []
  if binarize == "threshold":
    ops.append(ThresholdBinarize(threshold=threshold))
  elif binarize == "bernoulli":
    ops.append(BernoulliBinarize())
  elif binarize == "none":
    values = tuple(quantised_pixels(num_bins).tolist()) if num_bins else ()
    ops.append(ScaleImage(pixel_values=values))
  else:
    raise ValueError(f"binarize must be 'threshold', 'bernoulli' or 'none', got {binarize!r}.")
  return ops
