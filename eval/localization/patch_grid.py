"""Where the test-time patches of an image sit, and how to cut them.

The paper samples "approximately 500 patches in a grid, selecting a stride dependent on the size
of the image". The grid spans the whole image: its last row and column are flush with the bottom
and right borders, so no strip of the image is left unseen. On large images the stride exceeds
the patch size and the patches leave gaps between them; `eval.localization.maps` fills those gaps.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

PATCH_SIZE = 128
NUM_PATCHES = 500


def axis_positions(length: int, stride: int, patch_size: int = PATCH_SIZE) -> np.ndarray:
  """Patch starts along one axis: every `stride` pixels, plus one flush with the far border."""
  last = length - patch_size
  return np.unique(np.append(np.arange(0, last, stride), last))


def _num_positions(length: int, strides: np.ndarray, patch_size: int) -> np.ndarray:
  """len(axis_positions(length, s)) for every stride s at once."""
  return -(-(length - patch_size) // strides) + 1


def choose_stride(image_shape: Sequence[int], num_patches: int = NUM_PATCHES,
                  patch_size: int = PATCH_SIZE) -> int:
  """The stride whose grid holds the patch count nearest `num_patches` (ties: fewer patches)."""
  height, width = _check_shape(image_shape, patch_size)
  if num_patches < 1:
    raise ValueError(f"num_patches must be positive, got {num_patches}")
  strides = np.arange(1, max(height, width) - patch_size + 2)
  counts = (_num_positions(height, strides, patch_size)
            * _num_positions(width, strides, patch_size))
  # Counts fall as strides grow, so the last stride of the smallest miss has the fewest patches.
  miss = np.abs(counts - num_patches)
  return int(strides[np.flatnonzero(miss == miss.min())[-1]])


def grid_coords(image_shape: Sequence[int], *, num_patches: int = NUM_PATCHES,
                stride: int | None = None, patch_size: int = PATCH_SIZE) -> np.ndarray:
  """Top-left (y, x) of every grid patch, int32 [N, 2], row-major.

  The stride comes from `choose_stride` unless given. Raises ValueError when the image is
  smaller than one patch on a side.
  """
  height, width = _check_shape(image_shape, patch_size)
  if stride is None:
    stride = choose_stride(image_shape, num_patches, patch_size)
  if stride < 1:
    raise ValueError(f"stride must be positive, got {stride}")
  ys = axis_positions(height, stride, patch_size)
  xs = axis_positions(width, stride, patch_size)
  return np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2).astype(np.int32)


def cut_patches(image: np.ndarray, coords: np.ndarray,
                patch_size: int = PATCH_SIZE) -> np.ndarray:
  """The patches at `coords` from an HxWxC image, [N, P, P, C] in the image's dtype."""
  coords = np.asarray(coords)
  height, width = image.shape[:2]
  if (coords.min() < 0 or coords[:, 0].max() > height - patch_size
      or coords[:, 1].max() > width - patch_size):
    raise ValueError(f"patch coordinates fall outside the {height}x{width} image")
  return np.stack([image[y:y + patch_size, x:x + patch_size] for y, x in coords])


def batches(array: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
  """(batch, count) over the first axis; every batch has `batch_size` rows.

  The last batch is zero-padded so a jitted consumer compiles once; `count` says how many rows
  are real.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  for start in range(0, len(array), batch_size):
    batch = array[start:start + batch_size]
    count = len(batch)
    if count < batch_size:
      pad = np.zeros((batch_size - count,) + batch.shape[1:], batch.dtype)
      batch = np.concatenate([batch, pad])
    yield batch, count


def patch_batches(image: np.ndarray, coords: np.ndarray, batch_size: int,
                  patch_size: int = PATCH_SIZE) -> Iterator[tuple[np.ndarray, int]]:
  """Like `batches(cut_patches(image, coords), batch_size)`, cutting one batch at a time.

  Memory stays at one batch of patches whatever the image size. Padding rows are the patch at
  (0, 0), which is always inside the image.
  """
  for coord_batch, count in batches(np.asarray(coords), batch_size):
    yield cut_patches(image, coord_batch, patch_size), count


def _check_shape(image_shape: Sequence[int], patch_size: int) -> tuple[int, int]:
  height, width = int(image_shape[0]), int(image_shape[1])
  if height < patch_size or width < patch_size:
    raise ValueError(
        f"image is {width}x{height} px, smaller than one {patch_size} px patch on a side")
  return height, width
