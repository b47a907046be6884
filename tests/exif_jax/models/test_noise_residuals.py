"""The fixed high-pass residuals: they drop smooth content and show re-JPEG's block grid, and
the backbone takes them beside the colours."""

import jax.numpy as jnp
import numpy as np
from PIL import Image

from exif_jax.data import augment
from exif_jax.models import scale_patches
from exif_jax.models.noise_residuals import noise_residuals
from test_models import make_model, random_patches, small_config

ROW_RESIDUAL = 2  # [1, -2, 1] along x: a step between two columns shows in both.


def photo_patch(photos_dir, size=128, offset=4) -> np.ndarray:
  """A patch of a real camera JPEG whose own 8x8 grid falls `offset` columns off the patch's."""
  image = np.asarray(Image.open(photos_dir / "Pentax__ist_DL_IMGP6672.JPG").convert("RGB"))
  y, x = 8 * (image.shape[0] // 16), 8 * (image.shape[1] // 16) + offset
  return np.ascontiguousarray(image[y:y + size, x:x + size])


def residuals_of(patch: np.ndarray) -> np.ndarray:
  return np.asarray(noise_residuals(scale_patches(jnp.asarray(patch[None]))))[0]


def boundary_ratio(residual: np.ndarray) -> float:
  """Mean |residual| on the columns either side of the patch's 8x8 block edges over the
  columns mid-block."""
  column = np.abs(residual).mean(axis=0)
  edge = column[np.isin(np.arange(len(column)) % 8, (7, 0))].mean()
  middle = column[np.isin(np.arange(len(column)) % 8, (3, 4))].mean()
  return float(edge / middle)


def test_smooth_content_leaves_no_residual():
  yy, xx = np.mgrid[0:64, 0:64]
  ramp = np.stack([yy + xx, 2 * xx, 100 + yy], axis=-1).astype(np.float32)  # Planes.
  residual = residuals_of(ramp)
  assert residual.shape == (64, 64, 3)
  # Second-order kernels vanish on planes; the 2-pixel border sees the reflection.
  np.testing.assert_allclose(residual[2:-2, 2:-2], 0.0, atol=1e-5)


def test_rejpeg_grid_shows_in_the_residual(photos_dir):
  patch = photo_patch(photos_dir)
  residual = residuals_of(patch)
  assert residual.min() >= -1.0 and residual.max() <= 1.0
  assert 0.0 < np.abs(residual).mean() < 0.9  # Clipped traces, not saturated content.
  # The camera's own grid sits 4 columns off the patch's, so mid-block columns are its edges.
  assert boundary_ratio(residual[..., ROW_RESIDUAL]) < 0.8
  # Re-JPEG as training does: the patch's own grid now dominates.
  recompressed = residuals_of(augment.rejpeg(patch, 70))
  assert boundary_ratio(recompressed[..., ROW_RESIDUAL]) > 2.0


def test_backbone_takes_residuals_beside_rgb():
  config = small_config(18)
  assert make_model(config).backbone.conv1.kernel.shape[2] == 3  # The paper's RGB stem.
  config.noise_residuals = True
  model = make_model(config)
  assert model.backbone.conv1.kernel.shape[2] == 6
  features = model.features(random_patches(2))
  assert features.shape == (2, 16) and bool(jnp.isfinite(features).all())
