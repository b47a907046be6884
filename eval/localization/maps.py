"""Patch consistency matrix -> per-patch response maps -> one consistency map (paper 3.5).

Patch i's response map is, at every pixel, the mean of C[i, j] over the patches j covering that
pixel ("we average the predictions of overlapping patches"). Where the grid stride exceeds the
patch size (large images) some pixels lie in no patch; along each axis they take the nearest
row or column of patches, so the map has no holes.

Patches sit on a grid, so averaging is separable: scatter each row of C onto the grid, then
[h, ny] @ grid @ [nx, w] with 0/1 cover matrices per axis, and divide by the cover count. The
cost is independent of the patch size, and the same code gives small working maps for Mean
Shift and the exact full-resolution map at the end.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from eval.localization import mean_shift
from eval.localization.patch_grid import PATCH_SIZE

# Mean Shift sees response maps at this size whatever the image: one compilation per patch
# count, and 64x64 samples resolve the ~22x22 patch grid of a 500-patch image.
WORKING_SHAPE = (64, 64)


def detection_score(heat: np.ndarray) -> float:
  """The mean of the map, the paper's detection score, for every method.

  Its spread, upper percentiles and the share above 0.5 were measured beside it on splices
  between unseen cameras; none separated spliced from authentic images better on both
  samples (docs/results.md, "The detection score").
  """
  return float(np.mean(heat))


@dataclasses.dataclass(frozen=True)
class ConsistencyMap:
  """map: float32 [H, W] in [0, 1], high = inconsistent with the image's dominant region.

  score: detection_score(map). no_signal: the dominant mode's map was flat, so no region is
  inconsistent with another; map is then all zeros and score 0.
  members: bool [N], the patches Mean Shift put in the dominant mode's cluster.
  """
  map: np.ndarray
  score: float
  no_signal: bool
  members: np.ndarray


def stretched(heat: np.ndarray) -> np.ndarray:
  """The map scaled to its own [min, max], as the original demo displays it: a weak model's
  maps sit in a narrow band around 0.5 whose structure the absolute scale hides. A flat map
  stays flat (all 0)."""
  low, high = float(heat.min()), float(heat.max())
  return (heat - low) / (high - low) if high > low else np.zeros_like(heat)


def patch_average(values: np.ndarray | jax.Array, coords: np.ndarray,
                  image_shape: Sequence[int], out_shape: Sequence[int],
                  patch_size: int = PATCH_SIZE) -> jax.Array:
  """Per-pixel mean over covering patches of K per-patch values [K, N] -> [K, *out_shape].

  out_shape samples the image at pixel centres; out_shape == image_shape[:2] is exact per
  pixel. Raises ValueError when coords leave a pixel with no patch in reach (not a grid).
  """
  coords = np.asarray(coords)
  ys, y_index = np.unique(coords[:, 0], return_inverse=True)
  xs, x_index = np.unique(coords[:, 1], return_inverse=True)
  cover_y = _axis_cover(ys, image_shape[0], out_shape[0], patch_size)
  cover_x = _axis_cover(xs, image_shape[1], out_shape[1], patch_size)
  occupancy = np.zeros((len(ys), len(xs)), np.float32)
  np.add.at(occupancy, (y_index, x_index), 1)
  counts = cover_y @ occupancy @ cover_x.T
  if not counts.all():
    raise ValueError("patch coordinates do not form a grid: some pixels have no patch")
  return _average(jnp.asarray(values, jnp.float32), y_index, x_index, cover_y, cover_x,
                  1 / counts)


def response_maps(consistency: np.ndarray | jax.Array, coords: np.ndarray,
                  image_shape: Sequence[int],
                  out_shape: Sequence[int] = WORKING_SHAPE) -> jax.Array:
  """[N, *out_shape]: map i is patch i's consistency with the patches covering each pixel."""
  check_consistency(consistency, coords)
  return patch_average(consistency, coords, image_shape, out_shape)


def consistency_map(consistency: np.ndarray | jax.Array, coords: np.ndarray,
                    image_shape: Sequence[int], *,
                    working_shape: Sequence[int] = WORKING_SHAPE,
                    bandwidth: float | None = None, quantile: float = 0.3,
                    kernel: str = "flat", flat_tol: float = 1e-4) -> ConsistencyMap:
  """The paper's merged response map at the input's resolution, oriented high = spliced.

  1 - the dominant mode's map (see `dominant_mode`) is high where the image disagrees with its
  largest region. A dominant map whose range is at most `flat_tol` carries no localisation
  signal.
  """
  mode = dominant_mode(consistency, coords, image_shape, working_shape=working_shape,
                       bandwidth=bandwidth, quantile=quantile, kernel=kernel)
  dominant = np.asarray(patch_average(mode.row[None], coords, image_shape, image_shape[:2])[0])
  no_signal = bool(dominant.max() - dominant.min() <= flat_tol)
  heat = np.zeros_like(dominant) if no_signal else np.clip(1 - dominant, 0, 1)
  return ConsistencyMap(map=heat, score=detection_score(heat), no_signal=no_signal,
                        members=mode.members)


class DominantMode(NamedTuple):
  """row: float32 [N], the mode as a weighted mean of C's rows (its map is that row's patch
  average); members: bool [N], the patches Mean Shift put in the mode's cluster."""
  row: jax.Array
  members: np.ndarray


def dominant_mode(consistency: np.ndarray | jax.Array, coords: np.ndarray,
                  image_shape: Sequence[int], *,
                  working_shape: Sequence[int] = WORKING_SHAPE,
                  bandwidth: float | None = None, quantile: float = 0.3,
                  kernel: str = "flat") -> DominantMode:
  """Mean Shift over the N working-size response maps: the map shared by the most patches,
  i.e. the consistency with the largest region.

  Mean Shift needs only distances between maps and means of maps. Maps are linear in C's
  rows, so it runs on `map_coordinates`, N numbers per patch with the maps' distances, instead
  of the maps' 4096 pixels; and the same kernel weights on C's rows give the mode's map at any
  resolution, with no resizing.
  """
  check_consistency(consistency, coords)
  consistency = jnp.asarray(consistency, jnp.float32)
  points = map_coordinates(consistency, coords, image_shape, working_shape)
  result = mean_shift.mean_shift(points, bandwidth, quantile=quantile, kernel=kernel)
  d2 = jnp.sum((points - result.modes[0])**2, -1)
  weights = mean_shift.kernel_weights(d2, result.bandwidth, kernel)
  weights = weights / jnp.maximum(jnp.sum(weights), 1e-30)
  return DominantMode(row=weights @ consistency, members=np.asarray(result.labels) == 0)


def unit_maps(coords: np.ndarray, image_shape: Sequence[int],
              out_shape: Sequence[int] = WORKING_SHAPE) -> jax.Array:
  """[N, H * W]: row j is the map of a matrix row that is 1 at patch j and 0 elsewhere, so the
  response maps are C @ unit_maps."""
  unit = np.eye(len(coords), dtype=np.float32)
  return patch_average(unit, coords, image_shape, out_shape).reshape(len(coords), -1)


def map_coordinates(consistency: jax.Array, coords: np.ndarray, image_shape: Sequence[int],
                    working_shape: Sequence[int] = WORKING_SHAPE) -> jax.Array:
  """[N, N] rows with the Euclidean distances of the response maps C @ unit_maps.

  |(c_i - c_j) @ units|^2 is the quadratic form of the Gram matrix G = units @ units.T, so the
  rows of C @ L with G = L L.T have those distances (see `map_factor`).
  """
  factor = map_factor(coords, image_shape, working_shape)
  return jnp.matmul(jnp.asarray(consistency, jnp.float32), factor,
                    precision=jax.lax.Precision.HIGHEST)


def map_factor(coords: np.ndarray, image_shape: Sequence[int],
               working_shape: Sequence[int] = WORKING_SHAPE) -> jax.Array:
  """[N, N] L with L L.T the Gram matrix of the unit maps: G's Cholesky factor, or where G is
  singular (patches at one position) its eigenvectors scaled by the roots of the eigenvalues.

  It depends on the patch grid alone, and every image of one size has the same grid: it is
  made once per grid (a Gram matmul and a factorisation, a third of Mean Shift's time).
  """
  coords = np.ascontiguousarray(coords)
  return _grid_factor(coords.tobytes(), coords.dtype.str, coords.shape,
                      tuple(image_shape[:2]), tuple(working_shape))


@functools.lru_cache(maxsize=16)
def _grid_factor(coords_bytes, dtype, shape, image_shape, working_shape) -> jax.Array:
  coords = np.frombuffer(coords_bytes, dtype).reshape(shape)
  gram, factor = _gram_and_cholesky(unit_maps(coords, image_shape, working_shape))
  if not np.isfinite(np.asarray(factor)).all():
    factor = _eigen_factor(gram)
  return factor


@jax.jit
def _gram_and_cholesky(units):
  gram = jnp.matmul(units, units.T, precision=jax.lax.Precision.HIGHEST)
  return gram, jnp.linalg.cholesky(gram)


@jax.jit
def _eigen_factor(gram):
  values, vectors = jnp.linalg.eigh(gram)
  return vectors * jnp.sqrt(jnp.maximum(values, 0))


def check_consistency(consistency, coords) -> None:
  """Raises ValueError unless the matrix is finite and N x N for the N patches."""
  shape = np.shape(consistency)
  if shape != (len(coords), len(coords)):
    raise ValueError(f"consistency matrix is {shape}; expected N x N for N={len(coords)} patches")
  if not np.isfinite(np.asarray(consistency)).all():
    raise ValueError("consistency matrix has non-finite values")


@jax.jit
def _average(values, y_index, x_index, cover_y, cover_x, inverse_counts):
  grid = jnp.zeros((values.shape[0], cover_y.shape[1], cover_x.shape[1]), values.dtype)
  grid = grid.at[:, y_index, x_index].add(values)
  return jnp.einsum("hy,kyx,wx->khw", cover_y, grid, cover_x,
                    precision=jax.lax.Precision.HIGHEST) * inverse_counts


def _axis_cover(starts: np.ndarray, length: int, out_length: int,
                patch_size: int) -> np.ndarray:
  """[out_length, len(starts)] 0/1: which patch starts reach each output pixel along one axis.

  A pixel centre inside patches is reached by exactly those; one in a gap between patches by
  the nearest.
  """
  centres = (np.arange(out_length) + 0.5) * (length / out_length)
  gap = np.maximum(np.maximum(starts[None] - centres[:, None],
                              centres[:, None] - (starts[None] + patch_size)), 0)
  return (gap == gap.min(1, keepdims=True)).astype(np.float32)
