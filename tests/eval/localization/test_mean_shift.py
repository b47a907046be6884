"""JAX Mean Shift against sklearn.cluster.MeanShift on separated blobs, and edge cases."""

import numpy as np
import pytest
from sklearn.cluster import MeanShift, estimate_bandwidth
from sklearn.datasets import make_blobs

from eval.localization import mean_shift


def blobs(seed: int, dim: int = 3) -> np.ndarray:
  """Three separated blobs of different sizes, so the dominant one is unambiguous."""
  centers = np.random.RandomState(100 + seed).uniform(-8, 8, (3, dim))
  centers[1] = centers[0] + 9  # Far apart whatever the draw.
  centers[2] = centers[0] - 9
  points, _ = make_blobs(n_samples=[150, 80, 40], centers=centers, cluster_std=0.8,
                         random_state=seed)
  return points


@pytest.mark.parametrize("seed, dim", [(0, 2), (1, 3), (2, 3), (3, 16)])
def test_agrees_with_sklearn(seed, dim):
  points = blobs(seed, dim)
  expected = MeanShift().fit(points)
  result = mean_shift.mean_shift(points)
  assert float(result.bandwidth) == pytest.approx(estimate_bandwidth(points), rel=1e-5)
  num_modes = int(result.num_modes)
  assert num_modes == len(expected.cluster_centers_)
  np.testing.assert_allclose(result.modes[:num_modes], expected.cluster_centers_, atol=1e-4)
  np.testing.assert_array_equal(result.labels, expected.labels_)
  np.testing.assert_array_equal(np.asarray(result.labels) == 0, expected.labels_ == 0)
  assert np.all(np.asarray(result.modes[num_modes:]) == 0)
  assert int(result.intensity[0]) > int(result.intensity[1])


def test_given_bandwidth_agrees_with_sklearn():
  points = blobs(4)
  expected = MeanShift(bandwidth=2.0).fit(points)
  result = mean_shift.mean_shift(points, 2.0)
  assert float(result.bandwidth) == 2.0
  np.testing.assert_allclose(result.modes[0], expected.cluster_centers_[0], atol=1e-4)
  np.testing.assert_array_equal(np.asarray(result.labels) == 0, expected.labels_ == 0)


def test_gaussian_kernel_finds_the_dominant_blob():
  points = blobs(5)
  result = mean_shift.mean_shift(points, 1.5, kernel="gaussian")
  expected = MeanShift().fit(points)
  np.testing.assert_array_equal(np.asarray(result.labels) == 0, expected.labels_ == 0)
  np.testing.assert_allclose(result.modes[0], expected.cluster_centers_[0], atol=0.2)


def test_unknown_kernel():
  with pytest.raises(ValueError, match="kernel"):
    mean_shift.mean_shift(blobs(0), kernel="box")


@pytest.mark.parametrize("points", [np.ones((10, 5)), np.zeros((1, 4)), np.full((6, 3), 1e6)])
def test_identical_points_form_one_finite_mode(points):
  result = mean_shift.mean_shift(points)
  assert int(result.num_modes) == 1
  np.testing.assert_allclose(result.modes[0], points[0], rtol=1e-6)
  np.testing.assert_array_equal(result.labels, 0)
  assert np.isfinite(float(result.bandwidth)) and float(result.bandwidth) > 0


def test_compiles_once_per_shape_and_seed_count():
  sets = [blobs(seed) for seed in (6, 7)]
  earlier = mean_shift._climb._cache_size()
  for points in sets:
    mean_shift.mean_shift(points)
  compiled = [step._cache_size() for step in (mean_shift._centre, mean_shift._climb,
                                               mean_shift._modes)]
  for points in sets:
    mean_shift.mean_shift(points + 1.0)
  assert [step._cache_size() for step in (mean_shift._centre, mean_shift._climb,
                                          mean_shift._modes)] == compiled
  # Seeds still climbing are padded to powers of two: a few programs per number of points.
  assert compiled[1] - earlier <= 1 + int(np.log2(len(sets[0])))
