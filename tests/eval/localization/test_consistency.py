"""Per-attribute means over a region, computed tile by tile, equal the whole-tensor computation."""

import dataclasses

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import CHART_SPLICES
from eval.localization import consistency
from eval.localization import localizer as localizer_lib
from eval.localization import maps
from eval.localization import patch_grid
from exif_jax.training import checkpointing

SPLICED = CHART_SPLICES / "images" / "spliced_00000.png"


@pytest.fixture(scope="module")
def bundled():
  model = checkpointing.restore(checkpointing.BUNDLED_MODEL)
  model.eval()
  return model


@pytest.fixture(scope="module")
def image():
  return np.asarray(Image.open(SPLICED).convert("RGB"))


def whole_tensor_means(model, image, coords, members):
  """The direct way: all pairs' [N, N, 83] P(same value), symmetrised, mean over member rows."""
  a, b = model.project(model.features(patch_grid.cut_patches(image, coords)))
  p = np.asarray(jax.nn.sigmoid(model.pair_logits(a[:, None], b[None])))
  return ((p + p.transpose(1, 0, 2)) / 2)[members].mean(axis=0)


def test_tiled_attribute_means_equal_the_whole_tensor(bundled, image):
  whole = consistency.ConsistencyModel(bundled)
  per_pair = 4 * (bundled.head[0].out_features + 83)
  tiled = consistency.ConsistencyModel(bundled, pair_memory_bytes=25 * per_pair,
                                       devices=jax.devices()[:1])
  # On 4 devices the tiles' rows split 4 ways: their side is a multiple of 4.
  sharded = consistency.ConsistencyModel(bundled, pair_memory_bytes=25 * per_pair)
  result = whole(image, num_patches=64)
  n = len(result.coords)
  assert sharded.mesh.size == 4
  assert whole.tile_side(n) == n and tiled.tile_side(n) == 5 and sharded.tile_side(n) == 4
  region = maps.consistency_map(result.matrix, result.coords, image.shape[:2]).members
  # Rows and member columns end in a padded tile, a tile of rows holds both kinds.
  assert 5 < region.sum() < n - 5 and n % 5 and region.sum() % 5
  one = np.arange(n) == n // 2
  for members in (region, ~region, one, np.ones(n, bool)):
    expected = whole_tensor_means(bundled, image, result.coords, members)
    for model in (whole, tiled, sharded):
      np.testing.assert_allclose(model.attribute_means(result.projections, members), expected,
                                 rtol=1e-5, atol=1e-6)
  assert np.abs(whole_tensor_means(bundled, image, result.coords, region) -
                whole_tensor_means(bundled, image, result.coords, ~region)).max() > 0.05
  with pytest.raises(ValueError, match="at least one of the"):
    whole.attribute_means(result.projections, np.zeros(n, bool))


def test_attribute_maps_do_not_depend_on_the_memory_budget(bundled, image):
  options = localizer_lib.Options(num_patches=64, attribute_maps=True)
  default = localizer_lib.Localizer(bundled, options)(image)
  small = localizer_lib.Localizer(
      bundled, dataclasses.replace(options, pair_memory_bytes=2**16))(image)
  assert default.attribute_maps.shape == (83, 128, 128)
  np.testing.assert_allclose(small.attribute_maps, default.attribute_maps, atol=1e-5)
  np.testing.assert_allclose(small.map, default.map, atol=1e-5)
  assert small.separating == default.separating


def test_a_grid_whose_matrices_cannot_fit_is_refused_before_any_patch_is_cut():
  image = np.zeros((512, 512, 3), np.uint8)
  # --num_patches 100000 on 512x512: stride 1, 148225 patches, N x N float32 matrices of
  # hundreds of GiB; refused with the number before the 7 GB of patches are cut.
  with pytest.raises(ValueError, match=r"148225 patches need about \d+ GiB .* more than this "
                                       r"machine's \d+ GiB: give fewer --num_patches"):
    consistency.cut_grid(image, num_patches=100_000)
  assert len(consistency.cut_grid(image, num_patches=500).coords) == 484
