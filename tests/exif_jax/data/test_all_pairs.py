"""The all-pairs sampler on real shards: couples of photos, k patches each, labels on demand."""

import numpy as np
import pytest

from configs import common
from exif_jax.data import all_pairs
from exif_jax.data import augment
from exif_jax.data import input_pipeline
from exif_jax.data import records
from exif_jax.data import virtual_camera
from exif_jax.data import virtual_pairs
from test_input_pipeline import assert_same_batches
from test_input_pipeline import take

K = 2


def make_config(shards_dir, **overrides):
  config = common.base_config()
  config.data.update({"data_dir": str(shards_dir), "sampler": "all_pairs",
                      "patches_per_photo": K, "pairs_per_attribute": 2, **overrides})
  return config


@pytest.fixture(scope="module")
def sampler_and_batches(shards_dir):
  """The couples' pair sampler and 6 batches of 4 couples (16 patches)."""
  config = make_config(shards_dir)
  sampler = input_pipeline.make_batch_inputs(config, "train", seed=3)[0]
  dataset = all_pairs.create_dataset(config, seed=3, global_batch_size=16)
  return sampler, take(iter(dataset), 6)


def test_batches_hold_k_patches_of_each_photo_of_each_couple(sampler_and_batches):
  sampler, batches = sampler_and_batches
  for n, batch in enumerate(batches):
    assert batch["patches"].shape == (16, 128, 128, 3) and batch["patches"].dtype == np.uint8
    assert batch["post"].shape == (16, augment.NUM_OPS) and batch["post"].dtype == np.int8
    assert batch["image"].dtype == batch["codes"].dtype == np.int32
    assert "virtual" not in batch
    couples = [sampler.sample(c) for c in range(4 * n, 4 * n + 4)]
    photos = [photo for pair in couples for photo in (pair.photo_a, pair.photo_b)]
    np.testing.assert_array_equal(batch["image"], np.repeat(photos, K))
    np.testing.assert_array_equal(batch["codes"], sampler.codes[batch["image"]])


def test_pair_labels_equal_the_photos_exif_labels(sampler_and_batches):
  sampler, batches = sampler_and_batches
  for batch in batches:
    codes, photo = batch["codes"], batch["image"]
    for i, j in zip(*np.triu_indices(len(photo), 1)):
      labels = np.where((codes[i] >= 0) & (codes[j] >= 0), codes[i] == codes[j], -1)
      np.testing.assert_array_equal(labels, sampler.exif_labels(photo[i], photo[j]))


def test_chosen_attributes_get_both_answers_in_each_group(sampler_and_batches):
  """pairs_per_attribute=2: each group of two couples shares an attribute, one couple holds
  one value twice and the other two different values."""
  sampler, batches = sampler_and_batches
  for first in range(0, 4 * len(batches), 2):
    couples = [sampler.sample(c) for c in (first, first + 1)]
    assert couples[0].attribute == couples[1].attribute
    answers = {int(sampler.exif_labels(p.photo_a, p.photo_b)[p.attribute]) for p in couples}
    assert answers == {0, 1}


def test_patches_are_different_crops_with_their_own_post_processing(sampler_and_batches):
  _, batches = sampler_and_batches
  post = np.concatenate([b["post"] for b in batches])
  sizes = augment.Options.from_config(common.data_config()).set_sizes
  assert (post >= 0).all() and (post < sizes).all()
  for op in range(augment.NUM_OPS):
    assert len(np.unique(post[:, op])) > 1
  patches = np.concatenate([b["patches"] for b in batches])
  assert all(not np.array_equal(a, b) for a, b in zip(patches[::K], patches[1::K]))


def test_batches_are_a_pure_function_of_seed_and_index(shards_dir, sampler_and_batches):
  _, batches = sampler_and_batches
  config = make_config(shards_dir)
  dataset = all_pairs.create_dataset(config, seed=3, global_batch_size=16)
  iterator = iter(dataset)
  take(iterator, 2)
  state = iterator.get_state()
  restored = iter(dataset)
  restored.set_state(state)
  assert_same_batches(take(restored, 4), batches[2:])
  hosts = [take(iter(all_pairs.create_dataset(config, seed=3, global_batch_size=16,
                                              process_index=p, process_count=2)), 1)[0]
           for p in range(2)]
  assert_same_batches([{key: np.concatenate([h[key] for h in hosts]) for key in hosts[0]}],
                      batches[:1])
  other = take(iter(all_pairs.create_dataset(config, seed=4, global_batch_size=16)), 1)
  assert not np.array_equal(other[0]["patches"], batches[0]["patches"])


def test_photos_with_fewer_crops_than_k_repeat_them(shards_dir):
  config = make_config(shards_dir, patches_per_photo=6)
  batch = next(iter(all_pairs.create_dataset(config, seed=0, global_batch_size=12)))
  photos, _ = records.photo_index(shards_dir, "train")
  assert max(len(p.patches) for p in photos) < 6  # 4 crops per photo: some repeat.
  assert batch["patches"].shape[0] == 12
  np.testing.assert_array_equal(batch["image"][:6], batch["image"][0])


def test_virtual_couples_render_each_photo_by_one_drawn_camera(shards_dir):
  """Half the couples virtual: their photos' k crops shot by the couple's two cameras, no EXIF
  value known; the real couples are the ones the stream without virtual cameras makes."""
  config = make_config(shards_dir, virtual_camera_fraction=0.5)
  batches = take(iter(all_pairs.create_dataset(config, seed=3, global_batch_size=16)), 3)
  plain = take(iter(all_pairs.create_dataset(make_config(shards_dir), seed=3,
                                             global_batch_size=16)), 3)
  mix = virtual_pairs.VirtualPairs(0.5, 128)
  sampler = input_pipeline.make_batch_inputs(config, "train", seed=3)[0]
  components = []
  for n, (batch, reference) in enumerate(zip(batches, plain)):
    assert batch["virtual"].shape == (16, len(virtual_camera.COMPONENTS))
    for c, couple in enumerate(range(4 * n, 4 * n + 4)):
      rows = slice(2 * K * c, 2 * K * (c + 1))
      members, image = batch["virtual"][rows], batch["image"][rows]
      if not mix.is_virtual(couple):
        assert (members == -1).all()
        for key in ("patches", "image", "codes", "post"):
          np.testing.assert_array_equal(batch[key][rows], reference[key][rows])
        continue
      pair = sampler.sample_virtual(couple)
      assert pair.photo_a != pair.photo_b
      assert (batch["codes"][rows] == -1).all() and (batch["named"][rows] == -1).all()
      for side in range(2):  # One camera and one (negative) image id for each photo's k crops.
        side_rows = slice(K * side, K * (side + 1))
        assert (members[side_rows] >= 0).all() and (members[side_rows] == members[K * side]).all()
        assert (image[side_rows] == image[K * side]).all() and image[K * side] < 0
      assert image[0] != image[K]
      components.append(members[::K])
  drawn = np.concatenate(components)
  assert len(drawn) == 12 and (drawn < virtual_camera.SET_SIZES).all()
  assert len({tuple(m) for m in drawn}) > 1


def test_refused_settings(shards_dir):
  with pytest.raises(ValueError, match="multiple of 2"):
    config = make_config(shards_dir)
    config.train.batch_size = 6
    all_pairs.check_config(config)
  with pytest.raises(ValueError, match="sampler"):
    all_pairs.check_config(make_config(shards_dir, sampler="triplets"))
  with pytest.raises(ValueError, match="divisible"):
    all_pairs.create_dataset(make_config(shards_dir), seed=0, global_batch_size=4,
                             process_count=2)

