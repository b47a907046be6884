"""Patch grid: ~500 patches, borders reached, exact stride override, cutting and batching."""

import numpy as np
import pytest

from eval.localization import patch_grid

P = patch_grid.PATCH_SIZE


@pytest.mark.parametrize("height, width", [(720, 960), (3000, 4000), (960, 720)])
def test_about_500_patches_reaching_every_border(height, width):
  coords = patch_grid.grid_coords((height, width, 3))
  assert 450 <= len(coords) <= 550
  ys, xs = np.unique(coords[:, 0]), np.unique(coords[:, 1])
  assert len(coords) == len(ys) * len(xs)
  assert ys[0] == 0 and xs[0] == 0
  assert ys[-1] == height - P and xs[-1] == width - P
  stride = patch_grid.choose_stride((height, width))
  assert np.diff(ys).max() <= stride and np.diff(xs).max() <= stride


def test_small_stride_covers_every_pixel():
  coords = patch_grid.grid_coords((720, 960))
  covered = np.zeros((720, 960), bool)
  for y, x in coords:
    covered[y:y + P, x:x + P] = True
  assert covered.all()


def test_choose_stride_is_the_nearest_count():
  shape = (500, 700)
  stride = patch_grid.choose_stride(shape, num_patches=100)
  count = len(patch_grid.grid_coords(shape, stride=stride))
  for other in range(1, 600):
    assert abs(len(patch_grid.grid_coords(shape, stride=other)) - 100) >= abs(count - 100)
  assert len(patch_grid.grid_coords(shape, num_patches=100)) == count


def test_stride_override():
  coords = patch_grid.grid_coords((300, 400), stride=100)
  np.testing.assert_array_equal(np.unique(coords[:, 0]), [0, 100, 172])
  np.testing.assert_array_equal(np.unique(coords[:, 1]), [0, 100, 200, 272])
  np.testing.assert_array_equal(coords[:4], [[0, 0], [0, 100], [0, 200], [0, 272]])


def test_one_patch_image():
  np.testing.assert_array_equal(patch_grid.grid_coords((P, P)), [[0, 0]])


@pytest.mark.parametrize("shape", [(127, 500), (500, 100), (64, 64, 3)])
def test_image_smaller_than_a_patch_is_refused(shape):
  with pytest.raises(ValueError, match="smaller than one 128 px patch"):
    patch_grid.grid_coords(shape)


def test_cut_patches():
  image = np.random.RandomState(0).randint(0, 256, (300, 400, 3)).astype(np.uint8)
  coords = patch_grid.grid_coords(image.shape, stride=100)
  patches = patch_grid.cut_patches(image, coords)
  assert patches.shape == (len(coords), P, P, 3) and patches.dtype == np.uint8
  for patch, (y, x) in zip(patches, coords):
    np.testing.assert_array_equal(patch, image[y:y + P, x:x + P])
  with pytest.raises(ValueError, match="outside"):
    patch_grid.cut_patches(image, np.array([[173, 0]]))


def test_batches_pad_to_a_fixed_size():
  array = np.arange(10)
  out = list(patch_grid.batches(array, 4))
  assert [count for _, count in out] == [4, 4, 2]
  assert all(batch.shape == (4,) for batch, _ in out)
  np.testing.assert_array_equal(out[-1][0], [8, 9, 0, 0])


def test_patch_batches_match_cut_patches():
  image = np.random.RandomState(1).randint(0, 256, (300, 400, 3)).astype(np.uint8)
  coords = patch_grid.grid_coords(image.shape, stride=100)
  out = list(patch_grid.patch_batches(image, coords, 5))
  assert all(batch.shape == (5, P, P, 3) for batch, _ in out)
  joined = np.concatenate([batch[:count] for batch, count in out])
  np.testing.assert_array_equal(joined, patch_grid.cut_patches(image, coords))
