"""Virtual-camera pairs mixed into the Grain pipeline on real shards."""

from absl import flags
import cv2
import numpy as np
import pytest

from exif_jax.data import augment
from exif_jax.data import exif_attrs
from exif_jax.data import input_pipeline
from exif_jax.data import records
from exif_jax.data import virtual_camera
from exif_jax.data import virtual_pairs
from exif_jax.training import train
from test_input_pipeline import assert_same_batches
from test_input_pipeline import make_config
from test_input_pipeline import take

NUM_COMPONENTS = len(virtual_camera.COMPONENTS)


def virtual_rows(batch) -> np.ndarray:
  return (batch["labels"][:, exif_attrs.NUM_ATTRIBUTES:] >= 0).all(axis=1)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 1 / 3, 1.0])
def test_every_run_of_pairs_holds_its_share_of_virtual_pairs(fraction):
  mix = virtual_pairs.VirtualPairs(fraction, 128)
  virtual = np.array([mix.is_virtual(i) for i in range(3000)])
  for start, length in ((0, 16), (5, 32), (777, 64), (2**40, 50)):
    count = sum(mix.is_virtual(i) for i in range(start, start + length))
    assert np.floor(length * fraction) <= count <= np.ceil(length * fraction), (start, length)
  assert abs(virtual.mean() - fraction) < 1e-3


def test_batches_mix_virtual_and_real_pairs_at_the_configured_share(shards_dir):
  config = make_config(shards_dir, virtual_camera_fraction=0.25)
  config.model.named_exif_tags = ("Image Make",)
  batches = take(iter(input_pipeline.create_dataset(
      config, "train", seed=0, global_batch_size=16)), 6)
  for batch in batches:
    assert batch["labels"].shape == (16, exif_attrs.NUM_ATTRIBUTES + NUM_COMPONENTS)
    assert virtual_rows(batch).sum() == 4
  labels = np.concatenate([b["labels"] for b in batches])
  virtual = np.concatenate([virtual_rows(b) for b in batches])
  # Each kind of pair labels only its own columns; both get post-processing labels.
  assert (labels[virtual, :exif_attrs.NUM_EXIF] == -1).all()
  assert (labels[~virtual, exif_attrs.NUM_ATTRIBUTES:] == -1).all()
  assert (labels[~virtual, :exif_attrs.NUM_EXIF] >= 0).any()
  assert (labels[:, exif_attrs.NUM_EXIF:exif_attrs.NUM_ATTRIBUTES] >= 0).all()
  components = labels[virtual, exif_attrs.NUM_ATTRIBUTES:]
  assert 0 < components.mean() < 1
  # A re-rendered patch is no longer its photo's camera: it is not named.
  for side in ("a", "b"):
    named = np.concatenate([b[f"named_{side}"] for b in batches])
    assert (named[virtual] == -1).all() and (named[~virtual] >= 0).any()
  assert not np.concatenate([b["same_image"] for b in batches])[virtual].any()


def test_identical_seeds_give_identical_virtual_batches_in_any_process(shards_dir):
  flags.FLAGS.mark_as_parsed()  # Grain's worker processes read its absl flags, as under app.run.
  make = lambda seed, **data: take(iter(input_pipeline.create_dataset(
      make_config(shards_dir, virtual_camera_fraction=0.5, **data), "train", seed=seed,
      global_batch_size=4)), 3)
  first = make(7)
  assert all(virtual_rows(batch).sum() == 2 for batch in first)
  assert_same_batches(first, make(7))
  assert_same_batches(first, make(7, num_workers=2))
  other = make(8)
  virtual = virtual_rows(first[0]) & virtual_rows(other[0])
  assert not np.array_equal(first[0]["patch_a"][virtual], other[0]["patch_a"][virtual])


def test_virtual_pairs_show_two_photos_rendered_afresh(shards_dir):
  """Each patch is its own photo's crop, downscaled and re-rendered: close to that crop's
  area-downscaled pixels, far from the other photo's, and never a copy of either."""
  config = make_config(shards_dir, virtual_camera_fraction=1.0, jpeg_qualities=(0,),
                       blur_sigmas=(0.0,), resize_factors=(1.0,))
  photos, patch_files = records.photo_index(shards_dir, "train")
  sampler = input_pipeline.PairSampler(photos, seed=3)
  make_batch = input_pipeline.MakeBatch(sampler, patch_files,
                                        augment.Options.from_config(config.data),
                                        virtual_camera_fraction=1.0)
  indices = np.arange(50, 70)
  batch = make_batch(indices)
  reader = make_batch.source
  for row, index in enumerate(indices):
    pair = sampler.sample_virtual(int(index))
    assert pair.photo_a != pair.photo_b
    scenes = [cv2.resize(records.patch_pixels(records.decode(reader[patch])), (128, 128),
                         interpolation=cv2.INTER_AREA).astype(np.int16)
              for patch in (pair.patch_a, pair.patch_b)]
    for side, own in (("a", 0), ("b", 1)):
      patch = batch[f"patch_{side}"][row].astype(np.int16)
      own_error = np.abs(patch - scenes[own]).mean()
      other_error = np.abs(patch - scenes[1 - own]).mean()
      assert 0 < own_error < other_error, (index, side, own_error, other_error)


def test_virtual_pairs_spread_over_the_photos(shards_dir):
  photos, _ = records.photo_index(shards_dir, "train")
  sampler = input_pipeline.PairSampler(photos, seed=0)
  pairs = [sampler.sample_virtual(i) for i in range(2000)]
  assert all(pair.photo_a != pair.photo_b for pair in pairs)
  assert {pair.photo_a for pair in pairs} == set(range(len(photos)))
  assert all(pair.patch_a in photos[pair.photo_a].patches for pair in pairs)
  assert all(pair.patch_b in photos[pair.photo_b].patches for pair in pairs)


def test_the_component_columns_follow_the_configured_fraction(shards_dir):
  config = make_config(shards_dir)
  config.model.virtual_camera_components = ()
  assert input_pipeline.virtual_camera_components(config) == ()
  assert input_pipeline.num_labels(config) == exif_attrs.NUM_ATTRIBUTES
  config.data.virtual_camera_fraction = 0.2
  assert input_pipeline.virtual_camera_components(config) == virtual_camera.COMPONENTS
  assert input_pipeline.num_labels(config) == exif_attrs.NUM_ATTRIBUTES + NUM_COMPONENTS
  config.model.virtual_camera_components = ("virtual_cfa",)
  with pytest.raises(ValueError, match=r"virtual_camera_components=\('virtual_cfa',\): derived"):
    train.with_derived_fields(config)
  config.data.virtual_camera_fraction = 1.5
  with pytest.raises(ValueError, match=r"virtual_camera_fraction=1.5: must be in \[0, 1\]"):
    input_pipeline.virtual_camera_components(config)
