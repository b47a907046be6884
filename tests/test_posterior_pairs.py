"""Post-processing pair logits from the auxiliary head's per-patch posteriors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import cpu_named_make, cpu_two_stream, tiny
from exif_jax import exif_attrs, train
from test_models import make_model, small_config
from test_noise_residuals import photo_patch

CLASSES = (7, 6, 5)


def posterior_config():
  config = small_config(18)
  config.noise_stream_width = 4
  config.post_processing_classes = CLASSES
  config.post_processing_from_posteriors = True
  return config


def real_patches(photos_dir) -> np.ndarray:
  """Four patches of one camera photo: untouched, darkened, flipped, and a blurred copy."""
  patch = photo_patch(photos_dir)
  blurred = (patch[:-2, :-2] / 4 + patch[1:-1, 1:-1] / 2 + patch[2:, 2:] / 4).astype(np.uint8)
  blurred = np.pad(blurred, ((1, 1), (1, 1), (0, 0)), mode="edge")
  return np.stack([patch, patch // 2, patch[:, ::-1], blurred])


def post_processing_pair_batch(config, size: int) -> dict[str, np.ndarray]:
  """A random batch whose only pair labels are the post-processing ones (all "same")."""
  batch = train.random_batch(config, size)
  batch["labels"][:, :exif_attrs.NUM_EXIF] = -1
  batch["labels"][:, exif_attrs.NUM_EXIF:] = 1
  return batch


def gradients(model, batch, config):
  """The gradients of the training loss (with config.train as it is now), shaped as model."""
  return nnx.grad(lambda m: train.loss_and_outputs(m, batch, config)[0])(model)


def all_zero(tree) -> bool:
  """Is every gradient in this part of the model exactly zero?"""
  return all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(nnx.state(tree)))


def test_post_processing_logits_are_the_chance_of_the_same_member(photos_dir):
  model = make_model(posterior_config())
  assert model.head[-1].out_features == exif_attrs.NUM_EXIF  # The head names EXIF only.
  features = model.features(real_patches(photos_dir))
  f_a, f_b = features[:2], features[2:]
  logits = np.asarray(model.head_logits(f_a, f_b))
  assert logits.shape == (2, exif_attrs.NUM_ATTRIBUTES)
  p_a = [np.asarray(jax.nn.softmax(x)) for x in model.post_processing_logits(f_a)]
  p_b = [np.asarray(jax.nn.softmax(x)) for x in model.post_processing_logits(f_b)]
  for op, n in enumerate(CLASSES):
    same = (p_a[op] * p_b[op]).sum(-1)
    expected = np.log(same / (1 - same)) + np.log(n - 1)  # Even odds at the 1/n chance.
    np.testing.assert_allclose(logits[:, exif_attrs.NUM_EXIF + op], expected, rtol=1e-4, atol=1e-4)
  # The split form used for all pairs of an image gives the same logits.
  a, b = model.project(features)
  split = np.asarray(model.pair_logits(a[:, None], b[None, :]))
  np.testing.assert_allclose(split[0, 2], logits[0], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(split[1, 3], logits[1], rtol=1e-4, atol=1e-4)


def test_pair_labels_train_the_auxiliary_head():
  """The post-processing pair labels now reach the auxiliary head; the pair head gets only
  the EXIF ones."""
  config = tiny.get_config()
  config.model.noise_stream_width = 4
  config.model.post_processing_from_posteriors = True
  model = train.create_model(config)
  batch = post_processing_pair_batch(config, 4)
  config.train.post_processing_weight = 0.0  # Leave out the per-patch naming loss.
  grads = gradients(model, batch, config)
  assert float(jnp.abs(grads.post_processing.kernel[...]).max()) > 0.0
  assert all_zero(grads.head)


def test_without_pair_gradient_only_naming_trains_the_auxiliary_head():
  """post_processing_pair_gradient=False: the same logits, but the pair labels train nothing
  through the posteriors, while the naming loss still reaches the auxiliary head."""
  config = tiny.get_config()
  config.model.noise_stream_width = 4
  config.model.post_processing_from_posteriors = True
  model = train.create_model(config)
  batch = post_processing_pair_batch(config, 4)
  config.model.post_processing_pair_gradient = False
  detached = train.create_model(config)
  nnx.update(detached, nnx.state(model))
  np.testing.assert_allclose(detached(batch["patch_a"], batch["patch_b"]),
                             model(batch["patch_a"], batch["patch_b"]), rtol=1e-5, atol=1e-5)
  config.train.post_processing_weight = 0.0
  assert all_zero(gradients(detached, batch, config))
  config.train.post_processing_weight = 1.0
  grads = gradients(detached, batch, config)
  assert float(jnp.abs(grads.post_processing.kernel[...]).max()) > 0.0


def test_two_stream_config_leaves_post_processing_to_the_noise_stream():
  """configs/cpu_two_stream.py: post-processing pair labels train nothing, and naming the
  members trains the noise stream but not the colour stream."""
  config = cpu_two_stream.get_config()
  model = train.create_model(config)
  assert model.head[-1].out_features == exif_attrs.NUM_EXIF
  batch = post_processing_pair_batch(config, 2)
  grads = gradients(model, batch, config)
  assert all_zero(grads.backbone)
  assert not all_zero(grads.noise_stream)
  config.train.post_processing_weight = 0.0
  assert all_zero(gradients(model, batch, config))


def test_posteriors_need_the_auxiliary_head():
  config = small_config(18)
  config.post_processing_from_posteriors = True
  with pytest.raises(ValueError, match="needs post_processing_classes"):
    make_model(config)


def test_stopping_the_pair_gradient_needs_posterior_pairs():
  config = small_config(18)
  config.post_processing_classes = CLASSES
  config.post_processing_pair_gradient = False
  with pytest.raises(ValueError, match="needs post_processing_from_posteriors"):
    make_model(config)


def test_named_make_config_names_makes_from_the_colour_stream_only():
  """configs/cpu_named_make.py: naming the make trains the colour stream, never the noise one."""
  config = cpu_named_make.get_config()
  model = train.create_model(config)
  batch = train.random_batch(config, 2)
  batch["labels"][:] = -1  # No pair loss.
  batch["named_a"][:], batch["named_b"][:] = 3, 5
  config.train.post_processing_weight = 0.0
  grads = gradients(model, batch, config)
  assert not all_zero(grads.backbone) and not all_zero(grads.exif_naming)
  assert all_zero(grads.noise_stream)
  config.train.named_exif_weight = 0.0
  assert all_zero(gradients(model, batch, config))
