"""Mean Shift on N map coordinates finds what it finds on the 4096-pixel response maps, on the
bundled model's consistency matrices of the chart splices."""

import numpy as np
import pytest
from PIL import Image

from conftest import CHART_SPLICES
from eval.localization import consistency
from eval.localization import maps
from eval.localization import mean_shift
from eval.localization import patch_grid
from exif_jax.training import checkpointing


@pytest.fixture(scope="module")
def scorer():
  model = checkpointing.restore(checkpointing.BUNDLED_MODEL)
  model.eval()
  return consistency.ConsistencyModel(model)


@pytest.mark.parametrize("name", ["spliced_00000", "authentic_00000"])
def test_map_coordinates_match_the_response_maps(scorer, name):
  image = np.asarray(Image.open(CHART_SPLICES / "images" / f"{name}.png").convert("RGB"))
  result = scorer(image, num_patches=500)
  matrix, coords, shape = np.asarray(result.matrix), result.coords, image.shape[:2]
  responses = maps.response_maps(matrix, coords, shape).reshape(len(coords), -1)
  points = maps.map_coordinates(matrix, coords, shape)
  assert points.shape == (len(coords), len(coords))
  on_maps = mean_shift.squared_distances(responses, responses)
  np.testing.assert_allclose(mean_shift.squared_distances(points, points), on_maps,
                             atol=1e-4 * float(on_maps.max()))

  # The definition: Mean Shift over the response maps, the dominant mode's map at full size.
  expected = mean_shift.mean_shift(responses)
  inside = mean_shift.kernel_weights(
      np.sum((np.asarray(responses) - np.asarray(expected.modes[0]))**2, -1),
      float(expected.bandwidth))
  mode_map = maps.patch_average(((inside / inside.sum()) @ matrix)[None], coords, shape, shape)[0]

  merged = maps.consistency_map(matrix, coords, shape)
  assert 0 < merged.members.sum() < len(coords)
  np.testing.assert_array_equal(merged.members, np.asarray(expected.labels) == 0)
  np.testing.assert_allclose(merged.map, np.clip(1 - np.asarray(mode_map), 0, 1), atol=1e-5)


def test_patches_at_one_position_keep_the_distances():
  """Two patches at one position make the Gram matrix singular: the Cholesky factor exists
  only through rounding, the eigenvector factor always."""
  shape = (300, 400)
  coords = patch_grid.grid_coords(shape)
  coords = np.concatenate([coords, coords[:1]])
  matrix = np.random.RandomState(0).uniform(0, 1, (len(coords), len(coords)))
  units = maps.unit_maps(coords, shape)
  responses = maps.response_maps(matrix, coords, shape).reshape(len(coords), -1)
  on_maps = mean_shift.squared_distances(responses, responses)
  for points in (maps.map_coordinates(matrix, coords, shape),
                 matrix @ maps._eigen_factor(units @ units.T)):  # pylint: disable=protected-access
    np.testing.assert_allclose(mean_shift.squared_distances(points, points), on_maps,
                               atol=1e-4 * float(on_maps.max()))


def test_images_of_one_size_share_one_map_factor():
  """The factor depends on the grid alone: made once, not once per image."""
  shape = (300, 400)
  coords = patch_grid.grid_coords(shape)
  first = maps.map_factor(coords, shape)
  assert maps.map_factor(coords.copy(), shape) is first
  other = maps.map_factor(coords, (310, 400))
  assert other is not first and not np.allclose(other, first)
