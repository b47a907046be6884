"""Training pairs as a Grain dataset (paper 3.1-3.3), deterministic from (seed, pair index).

The global stream is an endless sequence of pairs; pair i is a pure function of (seed, i), so
any host, worker process or restored iterator computes exactly the same pairs. Sampling follows
the paper: choose an EXIF attribute (one per `pairs_per_attribute` consecutive pairs), for each
pair choose one of its values uniformly (unary rebalancing) and a photo with that value for
patch A, then give half of the pairs a photo of the same value for patch B and half a photo of
another value (pairwise rebalancing). A share `same_image_fraction` of pairs instead takes both
patches from one photo (stage 2's positives). Labels cover all 83 attributes: 1 same,
0 different, -1 unknown (either photo lacks the tag); augment.py adds the post-processing.
With `virtual_camera_fraction` > 0, that share of pairs are virtual-camera pairs instead
(virtual_pairs.py), labelled in columns after the 83.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Sequence

import grain
import ml_collections
import numpy as np

from exif_jax.data import augment
from exif_jax.data import camera_labels
from exif_jax.data import exif_attrs
from exif_jax.data import records
from exif_jax.data import virtual_camera
from exif_jax.data import virtual_pairs

# The stream is endless in practice: a MapDataset needs a length, training never reaches it.
NUM_PAIRS = 2**62
# Independent random streams per pair index, so changing one decision moves no other.
# ALL_PAIRS_STREAM: the crops and post-processing of an all-pairs couple (all_pairs.py).
(_ATTRIBUTE_STREAM, _PAIR_STREAM, _AUGMENT_STREAM, _VIRTUAL_PAIR_STREAM,
 _VIRTUAL_RENDER_STREAM, ALL_PAIRS_STREAM) = _STREAMS = range(6)


@dataclasses.dataclass(frozen=True)
class Pair:
  """Which two patches pair i takes and why; `value` codes index `PairSampler.values`."""
  attribute: int  # Index into exif_attrs.ATTRIBUTES of the attribute chosen for this pair.
  value: int      # Patch A's value of that attribute.
  same_value: bool  # Does photo B share `value` (the pairwise-rebalancing side)?
  same_image: bool  # Do both patches come from one photo?
  photo_a: int
  photo_b: int
  patch_a: int    # Global patch indices into the dataset's ArrayRecordDataSource.
  patch_b: int


class _Generators(threading.local):
  """One Philox generator per stream in each thread, repositioned by `stream_rng`."""

  def __init__(self):
    super().__init__()
    self.by_stream = [np.random.Generator(np.random.Philox(key=0)) for _ in _STREAMS]


_GENERATORS = _Generators()


def stream_rng(seed: int, stream: int, index: int) -> np.random.Generator:
  """The random stream `stream` of pair (or group) `index`: a pure function of the arguments.

  Philox is counter based: key `seed` and counter (0, 0, stream, index) start an independent
  stream, 10x cheaper than hashing a seed per pair as default_rng does (25 us, three times a
  pair). Draws advance the low counter words, so streams never overlap. The generator is
  reused by this thread's next call for the same stream.
  """
  generator = _GENERATORS.by_stream[stream]
  generator.bit_generator.state = {
      "bit_generator": "Philox",
      "state": {"counter": np.array([0, 0, stream, index], np.uint64),
                "key": np.array([seed % 2**64, 0], np.uint64)},
      "buffer": np.zeros(4, np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
  return generator


def _pick(u: float, count: int) -> int:
  """Uniform over range(count) from u uniform in [0, 1): a Generator call per draw costs more."""
  return int(u * count)


def _pick_other(u: float, count: int, excluded: int) -> int:
  """Uniform over range(count) without `excluded` (count >= 2)."""
  drawn = _pick(u, count - 1)
  return drawn + (drawn >= excluded)


def common_values(photos: Sequence[records.PhotoIndex], tags: Sequence[str],
                  min_photos_per_value: int) -> list[list[str]]:
  """Per tag, the sorted values held by at least min_photos_per_value of `photos`."""
  values = []
  for tag in tags:
    counts = collections.Counter(photo.exif[tag] for photo in photos if tag in photo.exif)
    values.append(sorted(value for value, n in counts.items() if n >= min_photos_per_value))
  return values


def value_codes(photos: Sequence[records.PhotoIndex], tags: Sequence[str],
                values: Sequence[Sequence[str]]) -> np.ndarray:
  """int32 [photos, tags]: the index of each photo's value in values[tag], -1 if it has none
  there (no such tag, or a value not listed)."""
  codes = np.full((len(photos), len(tags)), -1, np.int32)
  for column, (tag, tag_values) in enumerate(zip(tags, values)):
    code = {value: i for i, value in enumerate(tag_values)}
    codes[:, column] = [code.get(photo.exif.get(tag), -1) for photo in photos]
  return codes


class PairSampler:
  """Chooses the photos and patches of every pair index, without reading any pixels.

  Only attributes with two or more values among the photos are chosen: a single value cannot
  make a "different" pair. Values held by fewer than `min_photos_per_value` photos count as
  unknown (label -1). A "same" pair takes two different photos whenever the value has several,
  so that matching content cannot stand in for matching camera traces.
  """

  def __init__(self, photos: Sequence[records.PhotoIndex], *, seed: int,
               pairs_per_attribute: int = 1, same_image_fraction: float = 0.0,
               min_photos_per_value: int = 1):
    if not photos:
      raise ValueError("no photos to sample pairs from")
    if pairs_per_attribute < 1:
      raise ValueError(f"pairs_per_attribute={pairs_per_attribute}: must be >= 1")
    if not 0.0 <= same_image_fraction <= 1.0:
      raise ValueError(f"same_image_fraction={same_image_fraction}: must be in [0, 1]")
    empty = [photo.source for photo in photos if not photo.patches]
    if empty:
      raise ValueError(f"photos without patches: {empty[:3]}")
    self.seed = seed
    self.pairs_per_attribute = pairs_per_attribute
    self.same_image_fraction = same_image_fraction
    self.patch_start = np.array([photo.patches.start for photo in photos])
    self.patch_count = np.array([len(photo.patches) for photo in photos])
    # values[a]: the sorted values of EXIF attribute a held by at least min_photos_per_value
    # photos (the paper drops rarer ones); codes[p, a] indexes it, -1 if photo p lacks the tag
    # or has a dropped value. members[a][v]: the photos whose attribute a has value v.
    self.values = common_values(photos, exif_attrs.EXIF_TAGS, min_photos_per_value)
    self.codes = value_codes(photos, exif_attrs.EXIF_TAGS, self.values)
    self.members = [[np.flatnonzero(self.codes[:, attribute] == v) for v in range(len(values))]
                    for attribute, values in enumerate(self.values)]
    self.pool = np.array([a for a, values in enumerate(self.values) if len(values) >= 2])
    if not self.pool.size:
      raise ValueError("no EXIF attribute has two values among the photos: cannot make pairs")

  def _group(self, index: int) -> tuple[int, bool]:
    """The attribute of pair `index`'s group and the pair's side of the 50/50 split.

    Within a group the sides alternate over a random permutation of the positions from a
    random start, so every group of an even size is split exactly in half.
    """
    group, position = divmod(index, self.pairs_per_attribute)
    rng = stream_rng(self.seed, _ATTRIBUTE_STREAM, group)
    u_attribute, u_start = rng.random(2).tolist()
    rank = rng.permutation(self.pairs_per_attribute)[position]
    return int(self.pool[_pick(u_attribute, self.pool.size)]), bool((rank + (u_start < 0.5)) % 2)

  def sample(self, index: int) -> Pair:
    """The photos and patches of pair `index`."""
    attribute, same_value = self._group(index)
    # One uniform per decision, whichever decisions this pair takes.
    u_value, u_photo_a, u_same_image, u_photo_b, u_other_value, u_patch_a, u_patch_b = (
        stream_rng(self.seed, _PAIR_STREAM, index).random(7).tolist())
    members = self.members[attribute]
    value = _pick(u_value, len(members))
    holders = members[value]
    position = _pick(u_photo_a, holders.size)
    photo_a = int(holders[position])
    if u_same_image < self.same_image_fraction:
      photo_b = photo_a
    elif same_value:
      photo_b = (int(holders[_pick_other(u_photo_b, holders.size, position)])
                 if holders.size >= 2 else photo_a)
    else:
      other = members[_pick_other(u_other_value, len(members), value)]
      photo_b = int(other[_pick(u_photo_b, other.size)])
    patch_a, patch_b = self._patches(photo_a, photo_b, u_patch_a, u_patch_b)
    return Pair(
        attribute=attribute, value=value,
        same_value=bool(self.codes[photo_b, attribute] == value),
        same_image=photo_a == photo_b, photo_a=photo_a, photo_b=photo_b,
        patch_a=patch_a, patch_b=patch_b)

  def sample_virtual(self, index: int) -> Pair:
    """The photos and patches of virtual-camera pair `index`: two photos chosen uniformly,
    different ones whenever there are two, whatever their EXIF (attribute and value -1)."""
    u_photo_a, u_photo_b, u_patch_a, u_patch_b = (
        stream_rng(self.seed, _VIRTUAL_PAIR_STREAM, index).random(4).tolist())
    photo_a = _pick(u_photo_a, self.patch_count.size)
    photo_b = (_pick_other(u_photo_b, self.patch_count.size, photo_a)
               if self.patch_count.size >= 2 else photo_a)
    patch_a, patch_b = self._patches(photo_a, photo_b, u_patch_a, u_patch_b)
    return Pair(attribute=-1, value=-1, same_value=False, same_image=photo_a == photo_b,
                photo_a=photo_a, photo_b=photo_b, patch_a=patch_a, patch_b=patch_b)

  def _patches(self, photo_a: int, photo_b: int, u_patch_a: float, u_patch_b: float
               ) -> tuple[int, int]:
    """Global patch indices of a patch of each photo; two different ones of a single photo
    when it has several."""
    count_a, count_b = int(self.patch_count[photo_a]), int(self.patch_count[photo_b])
    patch_a = _pick(u_patch_a, count_a)
    if photo_b == photo_a and count_a >= 2:
      patch_b = _pick_other(u_patch_b, count_a, patch_a)
    else:
      patch_b = _pick(u_patch_b, count_b)
    return (int(self.patch_start[photo_a]) + patch_a,
            int(self.patch_start[photo_b]) + patch_b)

  def exif_labels(self, photo_a: int | np.ndarray, photo_b: int | np.ndarray) -> np.ndarray:
    """int8 [..., NUM_EXIF]: 1 same value, 0 different, -1 unknown (a photo lacks the tag or
    value), for one pair of photos or for arrays of them."""
    a, b = self.codes[photo_a], self.codes[photo_b]
    return np.where((a >= 0) & (b >= 0), a == b, -1).astype(np.int8)


class MakeBatch:
  """Pair indices -> their training examples, stacked: patches read, post-processed, labelled.

  A batch at a time rather than a pair at a time: the EXIF labels of all pairs come from one
  array lookup and patches go straight into the batch arrays, which saves the per-pair
  NumPy, stacking and Grain overhead.
  """

  def __init__(self, sampler: PairSampler, patch_files: Sequence[str],
               options: augment.Options, name_codes: np.ndarray | None = None,
               camera_codes: np.ndarray | None = None,
               virtual_camera_fraction: float = 0.0):
    self.sampler = sampler
    self.options = options
    self.virtual = (virtual_pairs.VirtualPairs(virtual_camera_fraction, options.patch_size)
                    if virtual_camera_fraction > 0 else None)
    # [photos, named tags]: each photo's class (`_name_codes`), -1 none; no tags by default.
    self.name_codes = (np.empty((len(sampler.codes), 0), np.int32) if name_codes is None
                       else name_codes)
    # [photos]: each photo's camera class (camera_labels.camera_codes), -1 none (default).
    self.camera_codes = (np.full(len(sampler.codes), -1, np.int32) if camera_codes is None
                         else camera_codes)
    # Pickled into each worker process without open readers; each reopens its files lazily.
    self.source = grain.sources.ArrayRecordDataSource(list(patch_files))

  def _pixels(self, patch: int) -> np.ndarray:
    return records.patch_pixels(records.decode(self.source[patch]))

  def __call__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    virtual = np.array([self.virtual is not None and self.virtual.is_virtual(int(index))
                        for index in indices], bool)
    pairs = [self.sampler.sample_virtual(int(index)) if is_virtual
             else self.sampler.sample(int(index)) for index, is_virtual in zip(indices, virtual)]
    photos_a = np.array([pair.photo_a for pair in pairs])
    photos_b = np.array([pair.photo_b for pair in pairs])
    size = self.options.patch_size
    num_components = 0 if self.virtual is None else len(virtual_camera.COMPONENTS)
    batch = {
        "patch_a": np.empty((len(pairs), size, size, 3), np.uint8),
        "patch_b": np.empty((len(pairs), size, size, 3), np.uint8),
        # Attributes, then the virtual-camera components (-1 for real pairs).
        "labels": np.full((len(pairs), exif_attrs.NUM_ATTRIBUTES + num_components), -1,
                          np.int8),
        "same_image": np.array([pair.same_image for pair in pairs], np.int8),
        # Each patch's post-processing, as member indices into the parameter sets.
        "post_a": np.empty((len(pairs), augment.NUM_OPS), np.int8),
        "post_b": np.empty((len(pairs), augment.NUM_OPS), np.int8),
        # Each patch's photo's class for each named EXIF tag (-1: not named, or re-rendered
        # by a virtual camera).
        "named_a": np.where(virtual[:, None], -1, self.name_codes[photos_a]),
        "named_b": np.where(virtual[:, None], -1, self.name_codes[photos_b]),
        # Each patch's photo's camera class (-1: none).
        "camera_a": np.where(virtual, -1, self.camera_codes[photos_a]),
        "camera_b": np.where(virtual, -1, self.camera_codes[photos_b]),
    }
    batch["labels"][~virtual, :exif_attrs.NUM_EXIF] = self.sampler.exif_labels(
        photos_a[~virtual], photos_b[~virtual])
    for row, (index, pair) in enumerate(zip(indices, pairs)):
      pixels_a = self._pixels(pair.patch_a)
      pixels_b = pixels_a if pair.patch_b == pair.patch_a else self._pixels(pair.patch_b)
      if virtual[row]:
        pixels_a, pixels_b, batch["labels"][row, exif_attrs.NUM_ATTRIBUTES:] = (
            self.virtual.render(pixels_a, pixels_b,
                                stream_rng(self.sampler.seed, _VIRTUAL_RENDER_STREAM, int(index))))
      rng = stream_rng(self.sampler.seed, _AUGMENT_STREAM, int(index))
      params_a, params_b, post_labels = augment.sample_pair(
          rng, self.options, min(pixels_a.shape[:2]), min(pixels_b.shape[:2]))
      batch["labels"][row, exif_attrs.NUM_EXIF:exif_attrs.NUM_ATTRIBUTES] = post_labels
      batch["post_a"][row], batch["post_b"][row] = params_a, params_b
      batch["patch_a"][row] = augment.apply(pixels_a, params_a, rng, self.options)
      batch["patch_b"][row] = augment.apply(pixels_b, params_b, rng, self.options)
    return batch


def _name_codes(config: ml_collections.ConfigDict, split: str,
                photos: Sequence[records.PhotoIndex]) -> np.ndarray:
  """[photos, named tags]: the classes of config.model.named_exif_tags, -1 where none.

  Both splits name photos by the training photos' values: a held-out camera model of a known
  make keeps that make's class, and an unknown make has none.
  """
  tags = tuple(config.model.named_exif_tags)
  train_photos = (photos if split == "train" or not tags
                  else records.photo_index(config.data.data_dir, "train")[0])
  values = common_values(train_photos, tags, config.data.min_photos_per_value)
  for tag, tag_values in zip(tags, values):
    if len(tag_values) > config.model.named_exif_classes:
      raise ValueError(
          f"{config.data.data_dir}: {tag!r} has {len(tag_values)} values held by >= "
          f"{config.data.min_photos_per_value} training photos, more than "
          f"config.model.named_exif_classes={config.model.named_exif_classes}")
  return value_codes(photos, tags, values)


def virtual_camera_components(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """model.virtual_camera_components as config.data implies: the component columns the model
  predicts after the attributes when virtual pairs are on, () when off (train.with_derived_fields
  refuses a model config that says otherwise)."""
  fraction = config.data.virtual_camera_fraction
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"config.data.virtual_camera_fraction={fraction}: must be in [0, 1]")
  return virtual_camera.COMPONENTS if fraction > 0 else ()


def num_labels(config: ml_collections.ConfigDict) -> int:
  """Columns of a training batch's `labels`: the attributes, then any virtual components."""
  return exif_attrs.NUM_ATTRIBUTES + len(virtual_camera_components(config))


def make_batch_inputs(config: ml_collections.ConfigDict, split: str, *, seed: int
                      ) -> tuple[PairSampler, list[str], augment.Options, np.ndarray, np.ndarray]:
  """The first arguments of MakeBatch (and of all_pairs.MakeAllPairsBatch) for `split`: its
  pair sampler, patch files, post-processing options, and named and camera classes."""
  data = config.data
  photos, patch_files = records.photo_index(data.data_dir, split)
  if not photos:
    raise ValueError(f"{data.data_dir}: no {split!r} photos")
  sampler = PairSampler(photos, seed=seed, pairs_per_attribute=data.pairs_per_attribute,
                        same_image_fraction=data.same_image_fraction,
                        min_photos_per_value=data.min_photos_per_value)
  return (sampler, patch_files, augment.Options.from_config(data),
          _name_codes(config, split, photos),
          camera_labels.camera_codes(photos, config.model.get("camera_names", ())))


def host_batches(make_batch: MakeBatch, data: ml_collections.ConfigDict, *, batch_size: int,
                 process_index: int, process_count: int) -> grain.IterDataset:
  """make_batch of this host's indices: global batch k holds indices
  [k * batch_size * process_count, (k + 1) * batch_size * process_count), each host a
  contiguous slice of batch_size; read by config.data's threads and worker processes."""
  dataset = (grain.MapDataset.range(NUM_PAIRS).batch(batch_size, drop_remainder=True)
             [process_index::process_count].map(make_batch))
  dataset = dataset.to_iter_dataset(grain.ReadOptions(
      num_threads=data.num_threads, prefetch_buffer_size=data.prefetch_buffer_size))
  if data.num_workers > 0:
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=data.num_workers, per_worker_buffer_size=data.per_worker_buffer_size))
  return dataset


def create_dataset(config: ml_collections.ConfigDict, split: str, *, seed: int,
                   global_batch_size: int, process_index: int = 0, process_count: int = 1
                   ) -> grain.IterDataset:
  """This host's batches of the global pair stream of `split` ("train" or "val").

  Global batch k holds pairs [k * global_batch_size, (k + 1) * global_batch_size); each host
  takes its contiguous slice of global_batch_size // process_count pairs, so the hosts'
  batches concatenated in process order are the single-host batch. `iter()` of the result is a
  grain DatasetIterator whose state (get_state/set_state, grain.checkpoint in Orbax) resumes
  exactly.
  """
  if global_batch_size % process_count:
    raise ValueError(
        f"global_batch_size={global_batch_size} not divisible by {process_count} processes")
  make_batch = MakeBatch(*make_batch_inputs(config, split, seed=seed),
                         virtual_camera_fraction=config.data.virtual_camera_fraction)
  return host_batches(make_batch, config.data, batch_size=global_batch_size // process_count,
                      process_index=process_index, process_count=process_count)
