"""Virtual camera pipelines rendered from real camera photos."""

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from exif_jax.data import virtual_camera as vc

PATCH = 128
# Identity tone, the gentlest noise, no denoising or sharpening, a fine JPEG without chroma
# subsampling: what is left to change the colours is the mosaic and its demosaicing.
FAITHFUL = np.array([0, 0, 0, 0, 0, vc.GAMMAS.index(2.2), 0, vc.JPEG_QUALITIES.index(95),
                     list(vc.CHROMA_SUBSAMPLINGS).index("4:4:4")])


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
  """A 256-px crop of the centre of each real camera photo (the stored crop size)."""
  result = []
  for path in sorted((FIXTURES / "camera").glob("*.jpg")):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
    y, x = (image.shape[0] - 256) // 2, (image.shape[1] - 256) // 2
    result.append(image[y:y + 256, x:x + 256])
  return result


def _render(crop: np.ndarray, camera: np.ndarray, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return vc.render(vc.scene(crop, PATCH, rng), camera, rng)


def test_same_generator_state_renders_identical_bytes(crops):
  rng = np.random.default_rng(7)
  camera, _, _ = vc.draw_pair(rng)
  first = _render(crops[0], camera, seed=3)
  assert first.shape == (PATCH, PATCH, 3) and first.dtype == np.uint8
  assert first.tobytes() == _render(crops[0], camera, seed=3).tobytes()
  # The noise is drawn: another generator state renders other pixels.
  assert first.tobytes() != _render(crops[0], camera, seed=4).tobytes()


@pytest.mark.parametrize("component", range(len(vc.COMPONENTS)))
def test_every_member_of_every_component_changes_the_pixels(crops, component):
  """With the same noise, swapping one component's member changes the patch visibly."""
  base = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1]) % np.array(vc.SET_SIZES)
  for crop in crops[:4]:
    reference = _render(crop, base).astype(np.int16)
    for member in range(vc.SET_SIZES[component]):
      if member == base[component]:
        continue
      camera = base.copy()
      camera[component] = member
      difference = np.abs(_render(crop, camera).astype(np.int16) - reference).mean()
      assert difference > 0.2, (vc.COMPONENTS[component], member, difference)


def test_colours_survive_every_pattern_and_demosaicing(crops):
  """Each CFA pattern is demosaiced with its own OpenCV code: a swapped pattern would
  exchange red and blue (tens of levels) instead of leaving small demosaicing errors."""
  for crop in crops:
    rng = np.random.default_rng(0)
    scene = vc.scene(crop, PATCH, rng)
    smooth = cv2.GaussianBlur(scene, (0, 0), 2.0)  # Demosaicing errors live at edges.
    swapped = np.abs(smooth[..., ::-1].astype(np.int16) - smooth).mean(axis=(0, 1)).max()
    for pattern in range(len(vc.CFA_PATTERNS)):
      for demosaic in range(len(vc.DEMOSAICS)):
        camera = FAITHFUL.copy()
        camera[vc.CFA], camera[vc.DEMOSAIC] = pattern, demosaic
        rendered = vc.render(smooth, camera, np.random.default_rng(0)).astype(np.int16)
        error = np.abs(rendered - smooth)[4:-4, 4:-4].mean(axis=(0, 1))
        assert error.max() < min(6, swapped / 2), (pattern, demosaic, error, swapped)


def test_one_camera_gives_same_labels_and_half_the_labels_are_same():
  rng = np.random.default_rng(0)
  draws = [vc.draw_pair(rng) for _ in range(4000)]
  labels = np.array([labels for _, _, labels in draws])
  for camera_a, camera_b, pair_labels in draws:
    np.testing.assert_array_equal(pair_labels, camera_a == camera_b)
    assert all(0 <= m < size for m, size in zip([*camera_a, *camera_b], vc.SET_SIZES * 2))
  one_camera = labels.all(axis=1)
  assert abs(one_camera.mean() - vc.SAME_CAMERA_SHARE) < 0.03
  assert abs(labels.mean() - 0.5) < 0.02
  # Outside one-camera pairs each component agrees independently, at the same rate.
  np.testing.assert_allclose(labels[~one_camera].mean(axis=0), vc.SAME_COMPONENT, atol=0.04)
  # Every member of every component is drawn, for A and for B.
  for component, size in enumerate(vc.SET_SIZES):
    for side in (0, 1):
      members = {int(draw[side][component]) for draw in draws}
      assert members == set(range(size)), (vc.COMPONENTS[component], side)


def test_scene_downscales_the_crop_by_area_and_refuses_small_crops(crops):
  rng = np.random.default_rng(0)
  scene = vc.scene(crops[0], PATCH, rng)
  np.testing.assert_array_equal(
      scene, cv2.resize(crops[0], (PATCH, PATCH), interpolation=cv2.INTER_AREA))
  # A crop between one and two patches wide is downscaled by what it allows.
  assert vc.scene(crops[0][:150, :200], PATCH, rng).shape == (PATCH, PATCH, 3)
  with pytest.raises(ValueError, match=r"crop 100x256 is smaller than one 128-px patch"):
    vc.scene(crops[0][:100], PATCH, rng)
