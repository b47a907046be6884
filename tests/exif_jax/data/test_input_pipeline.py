"""Pair sampling on the real EXIF of the corpus photos, and the Grain pipeline on real shards."""

import csv

from absl import flags
import grain
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import common
from conftest import FIXTURES
from exif_jax.data import augment
from exif_jax.data import exif_attrs
from exif_jax.data import input_pipeline
from exif_jax.data import records
from test_augment import is_window

NUM_SAMPLES = 30_000


@pytest.fixture(scope="module")
def photos() -> list[records.PhotoIndex]:
  """Every camera photo of the corpus with its real EXIF; 1 to 4 patch indices each."""
  rows = [row for row in csv.DictReader((FIXTURES / "MANIFEST.csv").open())
          if row["file"].split("/")[0] in ("photos", "camera")]
  index, start = [], 0
  for i, row in enumerate(rows):
    count = 1 + i % 4
    exif = exif_attrs.read_exif((FIXTURES / row["file"]).read_bytes())
    index.append(records.PhotoIndex(
        sha256=row["sha256"], source=row["file"], camera=exif_attrs.camera_id(exif),
        split="train", exif=exif, patches=range(start, start + count)))
    start += count
  return index


@pytest.fixture(scope="module")
def pairs(photos) -> tuple[input_pipeline.PairSampler, list[input_pipeline.Pair]]:
  sampler = input_pipeline.PairSampler(photos, seed=0)
  return sampler, [sampler.sample(i) for i in range(NUM_SAMPLES)]


def test_pool_holds_the_attributes_with_two_values(photos, pairs):
  sampler, sampled = pairs
  for attribute, tag in enumerate(exif_attrs.EXIF_TAGS):
    values = {p.exif[tag] for p in photos if tag in p.exif}
    assert (attribute in sampler.pool) == (len(values) >= 2), tag
  assert {pair.attribute for pair in sampled} == set(sampler.pool.tolist())


def test_unary_rebalancing_makes_values_uniform(pairs):
  """Chi-square over all (attribute, value) cells against the uniform choice of a value."""
  sampler, sampled = pairs
  chi2 = dof = 0.0
  for attribute in sampler.pool:
    values = [pair.value for pair in sampled if pair.attribute == attribute]
    k = len(sampler.values[attribute])
    expected = len(values) / k
    chi2 += ((np.bincount(values, minlength=k) - expected) ** 2 / expected).sum()
    dof += k - 1
  assert abs(chi2 - dof) < 5 * np.sqrt(2 * dof), (chi2, dof)
  # Photo-weighted sampling would favour each attribute's most common value by far.
  sizes = {a: np.array([m.size for m in sampler.members[a]]) for a in sampler.pool}
  hits = np.mean([pair.value == np.argmax(sizes[pair.attribute]) for pair in sampled])
  uniform = np.mean([1 / sizes[pair.attribute].size for pair in sampled])
  photo_weighted = np.mean([sizes[a].max() / sizes[a].sum() for a in sampler.pool])
  assert abs(hits - uniform) < 0.01 and photo_weighted > 1.5 * uniform, (hits, uniform)


def test_patch_a_carries_the_chosen_value(photos, pairs):
  sampler, sampled = pairs
  for pair in sampled[:2000]:
    tag = exif_attrs.ATTRIBUTES[pair.attribute]
    assert photos[pair.photo_a].exif[tag] == sampler.values[pair.attribute][pair.value]
    assert pair.patch_a in photos[pair.photo_a].patches
    assert pair.patch_b in photos[pair.photo_b].patches


def test_pairwise_rebalancing_half_share_the_value(photos, pairs):
  sampler, sampled = pairs
  same = np.array([pair.same_value for pair in sampled])
  assert abs(same.mean() - 0.5) < 0.015
  for pair in sampled[:2000]:
    tag = exif_attrs.ATTRIBUTES[pair.attribute]
    value_b = photos[pair.photo_b].exif.get(tag)
    assert value_b is not None  # "Different" means another value, never a missing one.
    assert (value_b == sampler.values[pair.attribute][pair.value]) == pair.same_value


def test_groups_share_an_attribute_and_split_exactly_in_half(photos):
  sampler = input_pipeline.PairSampler(photos, seed=3, pairs_per_attribute=8)
  sampled = [sampler.sample(i) for i in range(800)]
  for group in range(100):
    members = sampled[group * 8:(group + 1) * 8]
    assert len({pair.attribute for pair in members}) == 1
    assert sum(pair.same_value for pair in members) == 4
  assert len({pair.attribute for pair in sampled}) > 20


def test_same_value_pairs_take_another_photo_when_there_is_one(pairs):
  sampler, sampled = pairs
  several = 0
  for pair in sampled:
    if pair.same_value and sampler.members[pair.attribute][pair.value].size >= 2:
      several += 1
      assert pair.photo_b != pair.photo_a
  assert several > NUM_SAMPLES / 4


def test_rare_values_count_as_unknown(photos):
  sampler = input_pipeline.PairSampler(photos, seed=5, min_photos_per_value=3)
  for attribute, tag in enumerate(exif_attrs.EXIF_TAGS):
    for p, photo in enumerate(photos):
      value = photo.exif.get(tag)
      held = sum(other.exif.get(tag) == value for other in photos) if value is not None else 0
      code = sampler.codes[p, attribute]
      assert (code >= 0) == (held >= 3)
      if code >= 0:
        assert sampler.values[attribute][code] == value
  for pair in map(sampler.sample, range(2000)):
    assert not pair.same_value or pair.photo_b != pair.photo_a  # Every value has 3 photos.


def test_same_image_fraction(photos):
  fraction = 0.3
  sampler = input_pipeline.PairSampler(photos, seed=4, same_image_fraction=fraction)
  sampled = [sampler.sample(i) for i in range(8000)]
  # Where the value has several photos, only the same-image draw puts both patches in one.
  several = [pair.same_image for pair in sampled
             if sampler.members[pair.attribute][pair.value].size >= 2]
  assert abs(np.mean(several) - fraction) < 0.03
  for pair in sampled:
    if pair.same_image and sampler.patch_count[pair.photo_a] >= 2:
      assert pair.patch_a != pair.patch_b  # Two different crops of the photo.


def test_exif_labels_compare_the_two_photos(photos, pairs):
  sampler, sampled = pairs
  for pair in sampled[:500]:
    exif_a, exif_b = photos[pair.photo_a].exif, photos[pair.photo_b].exif
    expected = [-1 if tag not in exif_a or tag not in exif_b else int(exif_a[tag] == exif_b[tag])
                for tag in exif_attrs.EXIF_TAGS]
    labels = sampler.exif_labels(pair.photo_a, pair.photo_b)
    assert labels.dtype == np.int8
    assert labels.tolist() == expected


def test_pairs_are_a_pure_function_of_seed_and_index(photos, pairs):
  sampler, sampled = pairs
  other = input_pipeline.PairSampler(photos, seed=0)
  for index in (12_345, 17, 0, 10**15):  # Any order, any index.
    assert other.sample(index) == sampler.sample(index)
  assert [other.sample(i) for i in range(50)] == sampled[:50]
  reseeded = input_pipeline.PairSampler(photos, seed=1)
  assert [reseeded.sample(i) for i in range(50)] != sampled[:50]


def test_sampler_rejects_unusable_photos(photos):
  with pytest.raises(ValueError, match="two values"):
    input_pipeline.PairSampler(photos[:1], seed=0)
  with pytest.raises(ValueError, match="pairs_per_attribute"):
    input_pipeline.PairSampler(photos, seed=0, pairs_per_attribute=0)


# The Grain pipeline on real shards.

def make_config(shards_dir, **overrides) -> ml_collections.ConfigDict:
  config = common.base_config()
  config.data.data_dir = str(shards_dir)
  config.data.update(overrides)
  return config


def take(iterator, count: int) -> list[dict[str, np.ndarray]]:
  return [next(iterator) for _ in range(count)]


def assert_same_batches(first, second):
  assert len(first) == len(second)
  for a, b in zip(first, second):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_batches_have_the_contracted_shapes_and_labels(shards_dir):
  config = make_config(shards_dir, same_image_fraction=0.25)
  batches = take(iter(input_pipeline.create_dataset(
      config, "train", seed=0, global_batch_size=16)), 4)
  for batch in batches:
    assert batch["patch_a"].shape == batch["patch_b"].shape == (16, 128, 128, 3)
    assert batch["patch_a"].dtype == batch["patch_b"].dtype == np.uint8
    assert batch["labels"].shape == (16, exif_attrs.NUM_ATTRIBUTES)
    assert batch["labels"].dtype == np.int8 and batch["same_image"].dtype == np.int8
    assert set(np.unique(batch["labels"])) <= {-1, 0, 1}
  labels = np.concatenate([b["labels"] for b in batches])
  same_image = np.concatenate([b["same_image"] for b in batches])
  post = labels[:, exif_attrs.NUM_EXIF:]
  assert (post >= 0).all() and 0.2 < post.mean() < 0.8
  assert 0 < same_image.mean() < 1
  # Patches of one photo agree on every EXIF tag they have.
  assert (labels[same_image == 1, :exif_attrs.NUM_EXIF] != 0).all()
  # Each patch's own post-processing members, and the labels they imply.
  post_a = np.concatenate([b["post_a"] for b in batches])
  post_b = np.concatenate([b["post_b"] for b in batches])
  assert post_a.shape == post_b.shape == (64, augment.NUM_OPS)
  np.testing.assert_array_equal(post, post_a == post_b)
  sizes = augment.Options.from_config(config.data).set_sizes
  assert (post_a >= 0).all() and (post_a < sizes).all() and (post_b < sizes).all()
  assert all(len(np.unique(post_a[:, op])) > 1 for op in range(augment.NUM_OPS))


def test_examples_hold_the_sampled_patches_and_labels(shards_dir):
  config = make_config(shards_dir, jpeg_qualities=(0,), blur_sigmas=(0.0,), resize_factors=(1.0,))
  photos, patch_files = records.photo_index(shards_dir, "train")
  sampler = input_pipeline.PairSampler(photos, seed=5)
  make_batch = input_pipeline.MakeBatch(
      sampler, patch_files, augment.Options.from_config(config.data))
  source = grain.sources.ArrayRecordDataSource(patch_files)
  indices = np.arange(100, 120)
  batch = make_batch(indices)
  for row, index in enumerate(indices):
    pair = sampler.sample(int(index))
    for side, patch in (("a", pair.patch_a), ("b", pair.patch_b)):
      crop = records.patch_pixels(records.decode(source[patch]))
      assert is_window(crop, batch[f"patch_{side}"][row])
    np.testing.assert_array_equal(batch["labels"][row, :exif_attrs.NUM_EXIF],
                                  sampler.exif_labels(pair.photo_a, pair.photo_b))
    assert batch["labels"][row, exif_attrs.NUM_EXIF:].tolist() == [1, 1, 1]  # Sets of one.
    assert batch["same_image"][row] == pair.same_image


def test_a_pair_does_not_depend_on_its_batch(shards_dir):
  config = make_config(shards_dir)
  photos, patch_files = records.photo_index(shards_dir, "train")
  make_batch = input_pipeline.MakeBatch(input_pipeline.PairSampler(photos, seed=6), patch_files,
                                        augment.Options.from_config(config.data))
  indices = np.arange(40, 56)
  batch = make_batch(indices)
  assert (batch["labels"][:, exif_attrs.NUM_EXIF:] == 0).any()  # Augmented, not identities.
  for row in (0, 7, 15):
    alone = make_batch(indices[row:row + 1])
    for key in batch:
      np.testing.assert_array_equal(alone[key][0], batch[key][row], err_msg=key)


def test_identical_seeds_give_identical_batches(shards_dir):
  config = make_config(shards_dir)
  make = lambda seed: take(iter(input_pipeline.create_dataset(
      config, "train", seed=seed, global_batch_size=8)), 3)
  first = make(7)
  assert_same_batches(first, make(7))
  assert not np.array_equal(first[0]["patch_a"], make(8)[0]["patch_a"])


def test_restored_iterator_continues_exactly(shards_dir):
  dataset = input_pipeline.create_dataset(
      make_config(shards_dir), "train", seed=1, global_batch_size=8)
  iterator = iter(dataset)
  take(iterator, 2)
  state = iterator.get_state()
  expected = take(iterator, 3)
  restored = iter(dataset)
  restored.set_state(state)
  assert_same_batches(take(restored, 3), expected)


def test_orbax_checkpoint_holds_the_iterator(shards_dir, tmp_path):
  dataset = input_pipeline.create_dataset(
      make_config(shards_dir), "train", seed=2, global_batch_size=8)
  iterator = iter(dataset)
  take(iterator, 2)
  with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
    manager.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
  expected = take(iterator, 2)
  restored = iter(dataset)
  with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
    manager.restore(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
  assert_same_batches(take(restored, 2), expected)


def test_hosts_read_disjoint_slices_of_the_global_batch(shards_dir):
  config = make_config(shards_dir)
  single = take(iter(input_pipeline.create_dataset(
      config, "train", seed=3, global_batch_size=8)), 2)
  hosts = [take(iter(input_pipeline.create_dataset(
      config, "train", seed=3, global_batch_size=8, process_index=p, process_count=2)), 2)
           for p in range(2)]
  joined = [{key: np.concatenate([h[step][key] for h in hosts]) for key in single[step]}
            for step in range(2)]
  assert_same_batches(joined, single)
  with pytest.raises(ValueError, match="divisible"):
    input_pipeline.create_dataset(config, "train", seed=3, global_batch_size=9, process_count=2)


def test_worker_processes_match_in_process_reading_and_restore(shards_dir):
  flags.FLAGS.mark_as_parsed()  # Grain's worker processes read its absl flags, as under app.run.
  in_process = take(iter(input_pipeline.create_dataset(
      make_config(shards_dir), "train", seed=4, global_batch_size=4)), 5)
  dataset = input_pipeline.create_dataset(
      make_config(shards_dir, num_workers=2), "train", seed=4, global_batch_size=4)
  iterator = iter(dataset)
  assert_same_batches(take(iterator, 2), in_process[:2])
  state = iterator.get_state()
  restored = iter(dataset)
  restored.set_state(state)
  assert_same_batches(take(restored, 3), in_process[2:])


def test_val_split_reads_only_val_photos(shards_dir):
  val_photos, _ = records.photo_index(shards_dir, "val")
  train_photos, _ = records.photo_index(shards_dir, "train")
  assert val_photos and not {p.camera for p in val_photos} & {p.camera for p in train_photos}
  batch = next(iter(input_pipeline.create_dataset(
      make_config(shards_dir), "val", seed=0, global_batch_size=8)))
  assert batch["patch_a"].shape == (8, 128, 128, 3)


def test_batches_name_each_patch_by_the_training_photos_values(shards_dir):
  """Both splits code a tag by the values of >= min_photos_per_value training photos."""
  config = make_config(shards_dir, min_photos_per_value=2)
  config.model.named_exif_tags = ("Image Make", "Image Model")
  train_photos, _ = records.photo_index(shards_dir, "train")
  values = input_pipeline.common_values(train_photos, config.model.named_exif_tags, 2)
  for tag, tag_values in zip(config.model.named_exif_tags, values):
    held = [p.exif[tag] for p in train_photos if tag in p.exif]
    assert tag_values == sorted({v for v in held if held.count(v) >= 2}), tag
  for split in "train", "val":
    photos, _ = records.photo_index(shards_dir, split)
    codes = input_pipeline.value_codes(photos, config.model.named_exif_tags, values)
    for photo, photo_codes in zip(photos, codes):
      for tag, tag_values, code in zip(config.model.named_exif_tags, values, photo_codes):
        assert code == (tag_values.index(photo.exif[tag])
                        if photo.exif.get(tag) in tag_values else -1), (split, tag)
    batch = next(iter(input_pipeline.create_dataset(config, split, seed=0, global_batch_size=16)))
    for side in "ab":
      named = batch[f"named_{side}"]
      assert named.shape == (16, 2) and named.dtype == np.int32
      # Rows are codes of photos of this split: every row occurs among them.
      assert {tuple(row) for row in named} <= {tuple(row) for row in codes}, (split, side)
  # The training photos share makes across their cameras; a held-out camera's make can
  # still be named, its model never (held out whole).
  val_photos, _ = records.photo_index(shards_dir, "val")
  val_codes = input_pipeline.value_codes(val_photos, config.model.named_exif_tags, values)
  assert (val_codes[:, 0] >= 0).any() and (val_codes[:, 1] == -1).all()
  config.model.named_exif_classes = len(values[0]) - 1
  with pytest.raises(ValueError, match="'Image Make' has .* more than "
                     "config.model.named_exif_classes"):
    input_pipeline.create_dataset(config, "train", seed=0, global_batch_size=16)
