"""Offline generated image datasets with known ground-truth factors of variation.

Two families stand in for the disentanglement benchmarks when no download is possible:

* ``shapes2d`` (in the manner of dSprites): a binary white shape on black. Factors: shape
  (square, ellipse, heart), scale, orientation, x position, y position.
* ``scenes3d`` (in the manner of 3DShapes): an RGB room corner (wall and floor) with a shaded
  object in the middle. Factors: floor hue, wall hue, object hue, scale, shape (cube, cylinder,
  sphere, capsule), orientation (the camera turns around the object: the room corner moves
  sideways and the cube and capsule turn).

Both are rendered with vectorised numpy at the requested resolution (2x2 supersampling per pixel)
and are deterministic: the factors of example i are drawn independently and uniformly with
``numpy.random.default_rng(seed)`` and the image is a pure function of the factors. Angles enter
only through cosine/sine tables computed with ``math`` and the per-pixel work uses only
arithmetic, comparisons and square roots, so the bytes do not depend on numpy's vectorised
transcendental functions.
"""

import colorsys
import dataclasses
import math
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class FactorSpec:
  """Names and numbers of values of the ground-truth factors of a generated dataset.

  Attributes:
    names: factor names, in the column order of the ``factors`` arrays.
    sizes: number of values of each factor; factor i takes the indices ``0 .. sizes[i] - 1``.
  """

  names: tuple[str, ...]
  sizes: tuple[int, ...]

  def __post_init__(self):
    if len(self.names) != len(self.sizes):
      raise ValueError(f"names and sizes differ in length: {self.names} vs {self.sizes}")
    if any(size < 1 for size in self.sizes):
      raise ValueError(f"sizes must be >= 1, got {self.sizes}")

  @property
  def num_factors(self) -> int:
    return len(self.names)


SHAPES2D_FACTORS = FactorSpec(
  names=("shape", "scale", "orientation", "pos_x", "pos_y"),
  sizes=(3, 6, 10, 16, 16),
)
SCENES3D_FACTORS = FactorSpec(
  names=("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
  sizes=(10, 10, 10, 8, 4, 15),
)

MIN_IMAGE_SIZE = 16
# Each output pixel averages _SUPERSAMPLE x _SUPERSAMPLE samples (anti-aliasing; the binary set
# thresholds the coverage at one half).
_SUPERSAMPLE = 2
# Supersamples rendered at once: bounds each float32 work array to 16 MB.
_CHUNK_SAMPLES = 2**22

# shapes2d geometry, in units of the image side. A shape at scale 1 fits in a disk of radius
# _SHAPES2D_MAX_RADIUS at any orientation, and the centres keep every shape inside the image.
_SHAPES2D_MAX_RADIUS = 0.24
_SHAPES2D_SCALES = np.linspace(0.6, 1.0, SHAPES2D_FACTORS.sizes[1])
_SHAPES2D_POSITIONS = np.linspace(
  _SHAPES2D_MAX_RADIUS, 1.0 - _SHAPES2D_MAX_RADIUS, SHAPES2D_FACTORS.sizes[3]
)
# Orientation index k means the angle k * period / num_orientations, where period is the shape's
# rotational symmetry, so that all orientations of one shape look different.
_SHAPES2D_ANGLES = [
  [k * period / SHAPES2D_FACTORS.sizes[2] for k in range(SHAPES2D_FACTORS.sizes[2])]
  for period in (math.pi / 2, math.pi, 2 * math.pi)
]
_SHAPES2D_COS = np.array([[math.cos(a) for a in row] for row in _SHAPES2D_ANGLES])
_SHAPES2D_SIN = np.array([[math.sin(a) for a in row] for row in _SHAPES2D_ANGLES])
_SQUARE_HALF_SIDE = 0.7  # corners on the unit circle
_ELLIPSE_AXES = (1.0, 0.55)
# The heart curve (u^2 + v^2 - 1)^3 <= u^2 v^3 spans u in [-1.14, 1.14], v in [-1, 1.236];
# these map its bounding-box centre to the origin and its farthest point to radius 1.
_HEART_SCALE = 1.336
_HEART_SHIFT = 0.118

# scenes3d geometry, in units of the image side; y grows downwards. The camera looks at the room
# corner from an elevation of _ELEVATION with an orthographic projection: a world point at
# horizontal offset X, height h and depth D (away from the viewer) from the object's base
# centre lands at (0.5 + X, _BASE_Y - h cos(E) - D sin(E)).
_HUES = np.linspace(0.0, 1.0, 10, endpoint=False)
_HUE_RGB = np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in _HUES], np.float32)
_SCENES3D_SCALES = np.linspace(0.75, 1.25, SCENES3D_FACTORS.sizes[3])
_SCENES3D_ANGLES = np.deg2rad(np.linspace(-30.0, 30.0, SCENES3D_FACTORS.sizes[5]))
_ELEVATION = math.radians(25.0)
_BASE_Y = 0.82
_HORIZON_Y = 0.52  # height of the floor line at the room corner
_HORIZON_SLOPE = 0.3  # the floor line drops by this much per unit of x away from the corner
_CORNER_SWING = 0.55  # corner x = 0.5 + _CORNER_SWING * sin(orientation)
_YAW_OFFSET = math.radians(30.0)  # object yaw = orientation + offset, so +-angles differ
_CORNER_X = np.array([0.5 + _CORNER_SWING * math.sin(a) for a in _SCENES3D_ANGLES])
_YAW_COS = np.array([math.cos(a + _YAW_OFFSET) for a in _SCENES3D_ANGLES])
_YAW_SIN = np.array([math.sin(a + _YAW_OFFSET) for a in _SCENES3D_ANGLES])
_CUBE_HALF_SIDE = 0.13
_CYLINDER_RADIUS = 0.13
_CYLINDER_HEIGHT = 0.28
_SPHERE_RADIUS = 0.15
_CAPSULE_RADIUS = 0.1
_CAPSULE_HALF_LENGTH = 0.14
_AMBIENT = 0.3  # brightness of an object surface facing away from the light
# Unit light direction in world coordinates (X right, up, D away from the viewer): from the
# upper left, in front of the object.
_LIGHT = tuple(c / math.hypot(-0.5, 0.75, -0.45) for c in (-0.5, 0.75, -0.45))
# The same light in camera coordinates (right, screen up, towards the viewer).
_LIGHT_CAM = (
  _LIGHT[0],
  _LIGHT[1] * math.cos(_ELEVATION) + _LIGHT[2] * math.sin(_ELEVATION),
  _LIGHT[1] * math.sin(_ELEVATION) - _LIGHT[2] * math.cos(_ELEVATION),
)


def _check_image_size(image_size: int) -> None:
  if (
    not isinstance(image_size, (int, np.integer))
    or isinstance(image_size, bool)
    or image_size < MIN_IMAGE_SIZE
  ):
    raise ValueError(f"image_size must be an integer >= {MIN_IMAGE_SIZE}, got {image_size!r}")


def _check_factors(factors: np.ndarray, spec: FactorSpec) -> np.ndarray:
  """Returns ``factors`` as int64 after checking shape (N, num_factors), dtype and ranges."""
  factors = np.asarray(factors)
  if factors.ndim != 2 or factors.shape[1] != spec.num_factors or factors.shape[0] < 1:
    raise ValueError(
      f"factors must have shape (N >= 1, {spec.num_factors}) for {spec.names}, got {factors.shape}"
    )
  if not np.issubdtype(factors.dtype, np.integer):
    raise ValueError(f"factors must be integer indices, got dtype {factors.dtype}")
  for column, (name, size) in enumerate(zip(spec.names, spec.sizes, strict=True)):
    values = factors[:, column]
    if values.min() < 0 or values.max() >= size:
      raise ValueError(
        f"factors[:, {column}] ({name}) must lie in [0, {size}), "
        f"got values in [{values.min()}, {values.max()}]"
      )
  return factors.astype(np.int64)


def sample_factors(spec: FactorSpec, num_examples: int, seed: int) -> np.ndarray:
  """Draws every factor of every example independently and uniformly.

  Args:
    spec: the factors to draw.
    num_examples: number of examples N >= 1.
    seed: non-negative seed of ``numpy.random.default_rng``.

  Returns:
    int32 array (N, spec.num_factors) of factor indices; column i lies in [0, spec.sizes[i]).
  """
  if (
    not isinstance(num_examples, (int, np.integer))
    or isinstance(num_examples, bool)
    or num_examples < 1
  ):
    raise ValueError(f"num_examples must be an integer >= 1, got {num_examples!r}")
  if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
    raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
  rng = np.random.default_rng(seed)
  return rng.integers(0, spec.sizes, size=(num_examples, spec.num_factors)).astype(np.int32)


def _sample_grid(image_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Sample positions (x, y), each (1, S', S') with S' = _SUPERSAMPLE * S, in image units."""
  side = _SUPERSAMPLE * image_size
  coords = ((np.arange(side) + 0.5) / side).astype(np.float32)
  return coords[None, None, :], coords[None, :, None]


def _pool(samples: np.ndarray, image_size: int) -> np.ndarray:
  """Averages (N, S', S', ...) supersamples into (N, S, S, ...) pixels."""
  n = samples.shape[0]
  pooled = samples.reshape(
    n, image_size, _SUPERSAMPLE, image_size, _SUPERSAMPLE, *samples.shape[3:]
  )
  return pooled.mean(axis=(2, 4))


def _chunks(num_examples: int, image_size: int) -> list[slice]:
  """Example ranges that keep each supersample work array within _CHUNK_SAMPLES elements."""
  step = max(1, _CHUNK_SAMPLES // (_SUPERSAMPLE * image_size) ** 2)
  return [slice(start, start + step) for start in range(0, num_examples, step)]


def _column(values: np.ndarray) -> np.ndarray:
  """(N,) per-example values as float32 (N, 1, 1), to broadcast against a sample grid."""
  return np.asarray(values, np.float32)[:, None, None]


def _shape2d_inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Whether points (u, v) of the shape's frame (unit circumradius, v up) are inside it."""
  if shape == 0:
    return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF_SIDE
  if shape == 1:
    return (u / _ELLIPSE_AXES[0]) ** 2 + (v / _ELLIPSE_AXES[1]) ** 2 <= 1.0
  hu = _HEART_SCALE * u
  hv = _HEART_SCALE * v + _HEART_SHIFT
  w = hu * hu + hv * hv - 1.0
  return w * w * w <= hu * hu * hv * hv * hv


def render_shapes2d(factors: np.ndarray, image_size: int = 64) -> np.ndarray:
  """Renders binary shapes from factor indices.

  Args:
    factors: integer array (N, 5) of indices of ``SHAPES2D_FACTORS`` (shape, scale, orientation,
      pos_x, pos_y); pos_x 0 is the left, pos_y 0 the top of the image.
    image_size: side S >= 16 of the square images.

  Returns:
    uint8 array (N, S, S, 1) with 255 where at least half of a pixel is covered by the shape and
    0 elsewhere.
  """
  factors = _check_factors(factors, SHAPES2D_FACTORS)
  _check_image_size(image_size)
  shape, scale, orientation, pos_x, pos_y = factors.T
  radius = _SHAPES2D_MAX_RADIUS * _SHAPES2D_SCALES[scale]
  cos_all, sin_all = _SHAPES2D_COS[shape, orientation], _SHAPES2D_SIN[shape, orientation]
  grid_x, grid_y = _sample_grid(image_size)
  images = np.empty((len(factors), image_size, image_size, 1), np.uint8)
  for rows in _chunks(len(factors), image_size):
    dx = (grid_x - _column(_SHAPES2D_POSITIONS[pos_x[rows]])) / _column(radius[rows])
    dy = (_column(_SHAPES2D_POSITIONS[pos_y[rows]]) - grid_y) / _column(radius[rows])
    cos, sin = _column(cos_all[rows]), _column(sin_all[rows])
    # Rotating the sample points by -angle turns the shape by +angle (counter-clockwise).
    u = cos * dx + sin * dy
    v = cos * dy - sin * dx
    inside = np.zeros(u.shape, bool)
    for k in range(SHAPES2D_FACTORS.sizes[0]):
      members = np.flatnonzero(shape[rows] == k)
      inside[members] = _shape2d_inside(k, u[members], v[members])
    coverage = _pool(inside.astype(np.float32), image_size)
    images[rows, :, :, 0] = np.where(coverage >= 0.5, 255, 0)
  return images


def _lambert(normal_dot_light: np.ndarray) -> np.ndarray:
  return _AMBIENT + (1.0 - _AMBIENT) * np.clip(normal_dot_light, 0.0, 1.0)


# An object renderer maps sample positions x, y (1, S', S') and per-example scale, cos(yaw),
# sin(yaw) (n, 1, 1) to the object's mask (n, S', S') and its brightness there (n, S', S').
_ObjectRenderer = Callable[
  [np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]
]


def _cube(
  x: np.ndarray, y: np.ndarray, scale: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """A cube of half side _CUBE_HALF_SIDE * scale standing on the floor, turned by yaw."""
  half = _CUBE_HALF_SIDE * scale
  sin_e, cos_e = math.sin(_ELEVATION), math.cos(_ELEVATION)
  px = x - 0.5
  # Top face: lift the sample back onto the plane at height 2 * half, turn it into the cube frame.
  depth = (_BASE_Y - 2 * half * cos_e - y) / sin_e
  mask = (
    np.maximum(np.abs(cos_yaw * px + sin_yaw * depth), np.abs(cos_yaw * depth - sin_yaw * px))
    <= half
  )
  brightness = np.where(mask, _lambert(np.float32(_LIGHT[1])), np.float32(0.0))
  # Side faces have outward normals (cos a, sin a) in the (X, D) plane, a = yaw + k * 90 degrees;
  # those facing the viewer have sin a < 0.
  for cos_a, sin_a in (
    (cos_yaw, sin_yaw),
    (-sin_yaw, cos_yaw),
    (-cos_yaw, -sin_yaw),
    (sin_yaw, -cos_yaw),
  ):
    facing = sin_a < -1e-3
    face_depth = (half - px * cos_a) / np.where(facing, sin_a, -1.0)  # on X cos a + D sin a = half
    along = face_depth * cos_a - px * sin_a
    height = (_BASE_Y - face_depth * sin_e - y) / cos_e
    face = facing & (np.abs(along) <= half) & (height >= 0.0) & (height <= 2 * half) & ~mask
    mask = mask | face
    brightness = np.where(face, _lambert(cos_a * _LIGHT[0] + sin_a * _LIGHT[2]), brightness)
  return mask, brightness


def _cylinder(
  x: np.ndarray, y: np.ndarray, scale: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """An upright cylinder standing on the floor (its look does not depend on yaw)."""
  del cos_yaw, sin_yaw
  radius = _CYLINDER_RADIUS * scale
  height = _CYLINDER_HEIGHT * scale
  sin_e, cos_e = math.sin(_ELEVATION), math.cos(_ELEVATION)
  px = x - 0.5
  top_depth = (_BASE_Y - height * cos_e - y) / sin_e
  top = px * px + top_depth * top_depth <= radius * radius
  # The front of the side wall at horizontal offset px has depth -sqrt(r^2 - px^2).
  front_depth = -np.sqrt(np.maximum(radius * radius - px * px, 0.0))
  side_height = (_BASE_Y - front_depth * sin_e - y) / cos_e
  side = (np.abs(px) <= radius) & (side_height >= 0.0) & (side_height <= height) & ~top
  side_shade = _lambert((px * _LIGHT[0] + front_depth * _LIGHT[2]) / radius)
  brightness = np.where(top, _lambert(np.float32(_LIGHT[1])), side_shade)
  return top | side, brightness


def _shaded_disk(
  dx: np.ndarray, dy: np.ndarray, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """Mask and brightness of a ball of given radius seen at screen offsets dx, dy (y down)."""
  r2 = (dx * dx + dy * dy) / (radius * radius)
  normal_z = np.sqrt(np.maximum(1.0 - r2, 0.0))
  shade = (dx * _LIGHT_CAM[0] - dy * _LIGHT_CAM[1]) / radius + normal_z * _LIGHT_CAM[2]
  return r2 <= 1.0, _lambert(shade)


def _sphere(
  x: np.ndarray, y: np.ndarray, scale: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """A sphere resting on the floor (its look does not depend on yaw)."""
  del cos_yaw, sin_yaw
  radius = _SPHERE_RADIUS * scale
  return _shaded_disk(x - 0.5, y - (_BASE_Y - radius * math.cos(_ELEVATION)), radius)


def _capsule(
  x: np.ndarray, y: np.ndarray, scale: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """A capsule lying on the floor with its axis turned by yaw."""
  radius = _CAPSULE_RADIUS * scale
  half_length = _CAPSULE_HALF_LENGTH * scale
  # The orthographic view of a capsule is the union of disks around its projected axis.
  axis_x = half_length * cos_yaw
  axis_y = -half_length * sin_yaw * math.sin(_ELEVATION)
  dx = x - 0.5
  dy = y - (_BASE_Y - radius * math.cos(_ELEVATION))
  t = np.clip((dx * axis_x + dy * axis_y) / (axis_x * axis_x + axis_y * axis_y), -1.0, 1.0)
  return _shaded_disk(dx - t * axis_x, dy - t * axis_y, radius)


_SCENE_OBJECTS: tuple[_ObjectRenderer, ...] = (_cube, _cylinder, _sphere, _capsule)


def render_scenes3d(factors: np.ndarray, image_size: int = 64) -> np.ndarray:
  """Renders RGB room-corner scenes from factor indices.

  Args:
    factors: integer array (N, 6) of indices of ``SCENES3D_FACTORS`` (floor_hue, wall_hue,
      object_hue, scale, shape, orientation); shape 0..3 is cube, cylinder, sphere, capsule.
    image_size: side S >= 16 of the square images.

  Returns:
    uint8 array (N, S, S, 3) of RGB images.
  """
  factors = _check_factors(factors, SCENES3D_FACTORS)
  _check_image_size(image_size)
  floor_hue, wall_hue, object_hue, scale, shape, orientation = factors.T
  grid_x, grid_y = _sample_grid(image_size)
  # The floor darkens towards the back (it does not depend on the example).
  floor_shade = (np.float32(0.55) + np.float32(0.45) * grid_y)[..., None]
  images = np.empty((len(factors), image_size, image_size, 3), np.uint8)
  for rows in _chunks(len(factors), image_size):
    corner_x = _column(_CORNER_X[orientation[rows]])
    floor = grid_y >= _HORIZON_Y + _HORIZON_SLOPE * np.abs(grid_x - corner_x)
    # The wall left of the corner is in shadow.
    wall_shade = np.where(grid_x < corner_x, np.float32(0.7), np.float32(1.0))[..., None]
    colour = np.where(
      floor[..., None],
      floor_shade * _HUE_RGB[floor_hue[rows]][:, None, None],
      wall_shade * _HUE_RGB[wall_hue[rows]][:, None, None],
    )
    for k, draw in enumerate(_SCENE_OBJECTS):
      members = np.flatnonzero(shape[rows] == k)
      chosen = rows.start + members
      mask, brightness = draw(
        grid_x,
        grid_y,
        _column(_SCENES3D_SCALES[scale[chosen]]),
        _column(_YAW_COS[orientation[chosen]]),
        _column(_YAW_SIN[orientation[chosen]]),
      )
      obj = brightness[..., None] * _HUE_RGB[object_hue[chosen]][:, None, None]
      colour[members] = np.where(mask[..., None], obj, colour[members])
    images[rows] = np.round(255 * _pool(colour, image_size)).astype(np.uint8)
  return images


def make_shapes2d(num_examples: int, image_size: int = 64, seed: int = 0) -> dict:
  """Draws a binary shapes dataset (in the manner of dSprites).

  Args:
    num_examples: number of examples N >= 1.
    image_size: side S >= 16 of the images (28, 32 and 64 are the usual choices).
    seed: non-negative seed; the same seed gives identical arrays.

  Returns:
    {'image': uint8 (N, S, S, 1) with values 0 or 255, 'factors': int32 (N, 5) indices of
    ``SHAPES2D_FACTORS``}.
  """
  _check_image_size(image_size)
  factors = sample_factors(SHAPES2D_FACTORS, num_examples, seed)
  return {"image": render_shapes2d(factors, image_size), "factors": factors}


def make_scenes3d(num_examples: int, image_size: int = 64, seed: int = 0) -> dict:
  """Draws an RGB scenes dataset (in the manner of 3DShapes).

  Args:
    num_examples: number of examples N >= 1.
    image_size: side S >= 16 of the images (32 and 64 are the usual choices).
    seed: non-negative seed; the same seed gives identical arrays.

  Returns:
    {'image': uint8 (N, S, S, 3), 'factors': int32 (N, 6) indices of ``SCENES3D_FACTORS``}.
  """
  _check_image_size(image_size)
  factors = sample_factors(SCENES3D_FACTORS, num_examples, seed)
  return {"image": render_scenes3d(factors, image_size), "factors": factors}


GENERATED: dict[str, tuple[Callable[..., dict], FactorSpec]] = {
  "shapes2d": (make_shapes2d, SHAPES2D_FACTORS),
  "scenes3d": (make_scenes3d, SCENES3D_FACTORS),
}
