"""Response maps by hand, against brute force, consistency map orientation, no signal, NCuts."""

import numpy as np
import pytest

from eval.localization import maps
from eval.localization import ncuts
from eval.localization import patch_grid

P = patch_grid.PATCH_SIZE


def brute_force_maps(consistency, coords, image_shape):
  """Per pixel, the mean of C[i, j] over the patches j covering it (full grid coverage)."""
  total = np.zeros((len(coords),) + tuple(image_shape))
  count = np.zeros(image_shape)
  for j, (y, x) in enumerate(coords):
    total[:, y:y + P, x:x + P] += consistency[:, j, None, None]
    count[y:y + P, x:x + P] += 1
  return total / count


def splice_case(image_shape=(720, 960), box=(100, 400, 500, 800), noise=0.05, seed=0):
  """C for a splice: patches inside `box` agree with each other and disagree with the rest."""
  coords = patch_grid.grid_coords(image_shape)
  top, bottom, left, right = box
  inside = ((coords[:, 0] >= top) & (coords[:, 0] + P <= bottom)
            & (coords[:, 1] >= left) & (coords[:, 1] + P <= right))
  consistency = np.where(inside[:, None] == inside[None, :], 0.9, 0.1)
  consistency += np.random.RandomState(seed).uniform(-noise, noise, consistency.shape)
  return (consistency + consistency.T) / 2, coords, inside


def test_two_overlapping_patches_by_hand():
  coords = np.array([[0, 0], [0, 64]])
  consistency = np.array([[1.0, 0.2], [0.2, 0.6]])
  full = np.asarray(maps.response_maps(consistency, coords, (P, 192), (P, 192)))
  np.testing.assert_allclose(full[0, :, :64], 1.0)
  np.testing.assert_allclose(full[0, :, 64:128], 0.6)  # (1.0 + 0.2) / 2
  np.testing.assert_allclose(full[0, :, 128:], 0.2)
  np.testing.assert_allclose(full[1, :, 64:128], 0.4)  # (0.2 + 0.6) / 2
  small = np.asarray(maps.response_maps(consistency, coords, (P, 192), (1, 3)))
  np.testing.assert_allclose(small[0], [[1.0, 0.6, 0.2]], rtol=1e-6)


def test_gap_between_patches_takes_the_nearest():
  coords = np.array([[0, 0], [0, 192]])  # Columns 128..191 lie in no patch.
  consistency = np.array([[1.0, 0.0], [0.0, 1.0]])
  full = np.asarray(maps.response_maps(consistency, coords, (P, 320), (P, 320)))
  np.testing.assert_allclose(full[0, :, :160], 1.0)
  np.testing.assert_allclose(full[0, :, 160:], 0.0)


@pytest.mark.parametrize("image_shape, stride", [((300, 400), 50), ((256, 300), 37)])
def test_matches_brute_force_averaging(image_shape, stride):
  coords = patch_grid.grid_coords(image_shape, stride=stride)
  consistency = np.random.RandomState(0).rand(len(coords), len(coords))
  got = np.asarray(maps.response_maps(consistency, coords, image_shape, image_shape))
  np.testing.assert_allclose(got, brute_force_maps(consistency, coords, image_shape),
                             rtol=1e-5, atol=1e-6)


def test_coordinates_off_a_grid_are_refused():
  with pytest.raises(ValueError, match="grid"):
    maps.response_maps(np.eye(2), np.array([[0, 0], [128, 128]]), (256, 256))


@pytest.mark.parametrize("consistency, match", [(np.eye(3), "N x N"),
                                                (np.full((2, 2), np.nan), "non-finite")])
def test_bad_consistency_matrix(consistency, match):
  with pytest.raises(ValueError, match=match):
    maps.consistency_map(consistency, np.array([[0, 0], [0, 64]]), (P, 192))


def test_consistency_map_is_high_on_the_minority_region():
  consistency, coords, inside = splice_case()
  result = maps.consistency_map(consistency, coords, (720, 960, 3))
  heat = result.map
  assert heat.shape == (720, 960) and heat.dtype == np.float32
  assert not result.no_signal
  assert heat[100 + P:400 - P, 500 + P:800 - P].min() > 0.8  # Only minority patches here.
  assert heat[:, :300].max() < 0.2 and heat[550:].max() < 0.2
  assert result.score == pytest.approx(float(heat.mean()))
  np.testing.assert_array_equal(result.members, ~inside)


def test_consistency_map_on_a_large_image_with_gaps():
  consistency, coords, inside = splice_case((3000, 4000), (500, 1700, 2000, 3400))
  result = maps.consistency_map(consistency, coords, (3000, 4000))
  assert result.map.shape == (3000, 4000)
  assert result.map[800:1400, 2300:3100].min() > 0.8
  assert result.map[2000:].max() < 0.2
  assert result.members.sum() == (~inside).sum()


@pytest.mark.parametrize("value", [0.0, 0.7, 1.0])
def test_no_signal_is_a_defined_result(value):
  coords = patch_grid.grid_coords((300, 400))
  result = maps.consistency_map(np.full((len(coords),) * 2, value), coords, (300, 400))
  assert result.no_signal and result.score == 0.0
  assert np.isfinite(result.map).all() and not result.map.any()


def test_single_patch_image_has_no_signal():
  result = maps.consistency_map(np.array([[0.3]]), np.array([[0, 0]]), (P, P))
  assert result.no_signal and result.map.shape == (P, P) and result.score == 0.0


def test_ncuts_labels_the_minority_segment():
  consistency, coords, inside = splice_case(noise=0.02)
  segmentation = ncuts.normalized_cuts(consistency, coords, (720, 960))
  np.testing.assert_array_equal(segmentation.labels, inside)
  heat = segmentation.map
  assert heat.shape == (720, 960) and heat.dtype == np.float32
  assert (heat[100 + P:400 - P, 500 + P:800 - P] == 1).all()
  assert (heat[:, :300] == 0).all()


def test_ncuts_on_a_constant_matrix_cuts_nothing():
  coords = patch_grid.grid_coords((300, 400))
  segmentation = ncuts.normalized_cuts(np.full((len(coords),) * 2, 0.5), coords, (300, 400))
  assert not segmentation.labels.any() and not segmentation.map.any()


def test_stretched_map_spans_zero_to_one_and_a_flat_map_stays_flat():
  heat = np.array([[0.42, 0.45], [0.48, 0.51]], np.float32)
  np.testing.assert_allclose(maps.stretched(heat), [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)
  np.testing.assert_array_equal(maps.stretched(np.full((3, 3), 0.5)), 0)
