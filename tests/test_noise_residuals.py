"""The fixed high-pass residuals: they drop smooth content and show re-JPEG's block grid;
the noise stream that sees only them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from configs import tiny
from exif_jax import augment, train
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
  recompressed = residuals_of(augment._rejpeg(patch, 70))  # pylint: disable=protected-access
  assert boundary_ratio(recompressed[..., ROW_RESIDUAL]) > 2.0


def test_backbone_takes_residuals_beside_rgb():
  config = small_config(18)
  assert make_model(config).backbone.conv1.kernel.shape[2] == 3  # The paper's RGB stem.
  config.noise_residuals = True
  model = make_model(config)
  assert model.backbone.conv1.kernel.shape[2] == 6
  features = model.features(random_patches(2))
  assert features.shape == (2, 16) and bool(jnp.isfinite(features).all())


def test_noise_stream_sees_residuals_not_colours(photos_dir):
  """Half the feature comes from the residuals alone: a uniform brightness shift (which the
  zero-sum kernels cancel) leaves that half unchanged and moves the colour half."""
  config = small_config(18)
  config.noise_stream_width = 4
  model = make_model(config)
  assert model.noise_stream.conv1.kernel.shape[2] == 3  # The three residuals, no colours.
  patch = photo_patch(photos_dir)
  patch = np.clip(patch, 0, 215)  # Room to brighten without saturating.
  features = np.asarray(model.features(np.stack([patch, patch + 40])))
  colour, noise = features[:, :8], features[:, 8:]
  np.testing.assert_allclose(noise[0], noise[1], rtol=1e-4, atol=1e-5)
  assert np.abs(colour[0] - colour[1]).max() > 1e-2
  # The split head still equals the plain one on the joined feature.
  a, b = model.project(features)
  np.testing.assert_allclose(model.pair_logits(a[0], b[1]),
                             model.head_logits(features[:1], features[1:])[0],
                             rtol=1e-5, atol=1e-5)


def test_post_processing_head_trains_only_the_noise_stream():
  """Naming each patch's post-processing reshapes the noise stream, never the colour stream;
  the attribute head trains both."""
  config = tiny.get_config()
  config.model.noise_stream_width = 4
  model = train.create_model(config)
  batch = train.random_batch(config, 4)

  def largest_gradient(loss_fn, part):
    grads = nnx.grad(loss_fn)(model)
    return max(float(jnp.abs(g).max()) for g in jax.tree.leaves(nnx.state(getattr(grads, part))))

  def post_processing(model):
    return train.post_processing_loss(model, *model.pair_features(batch["patch_a"],
                                                                  batch["patch_b"]), batch)

  def attributes(model):
    logits = model(batch["patch_a"], batch["patch_b"])
    return jnp.mean(jnp.abs(logits))

  assert largest_gradient(post_processing, "backbone") == 0.0
  assert largest_gradient(post_processing, "feature") == 0.0
  assert largest_gradient(post_processing, "noise_stream") > 0.0
  assert largest_gradient(attributes, "backbone") > 0.0
  assert largest_gradient(attributes, "noise_stream") > 0.0


def test_noise_stream_may_see_colours_beside_residuals(photos_dir):
  config = small_config(18)
  config.noise_stream_width = 4
  config.noise_stream_inputs = "colour_and_residuals"
  model = make_model(config)
  assert model.noise_stream.conv1.kernel.shape[2] == 6
  patch = np.clip(photo_patch(photos_dir), 0, 215)
  features = np.asarray(model.features(np.stack([patch, patch + 40])))
  assert np.abs(features[0, 8:] - features[1, 8:]).max() > 1e-2  # Brightness now shows.
  config.noise_stream_inputs = "rgb"
  with pytest.raises(ValueError, match="inputs must be one of .* got 'rgb'"):
    make_model(config)
