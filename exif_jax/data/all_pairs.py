"""All-pairs training batches: k patches of each of B / k photos, compared as all pairs i < j.

A pair of the paired stream (input_pipeline.py) costs two backbone passes and teaches one
comparison; a batch of B patches here teaches B (B - 1) / 2 of them. Photos come in couples,
couple i being the two photos of PairSampler.sample(i): the couple's attribute is chosen and
one of its values uniformly (unary rebalancing), the first photo holds it and the second
shares it in half of the couples of an attribute group (pairwise rebalancing), from another
photo wherever the value has several. Each photo gives k patches (different crops while it
has enough), each with its own post-processing draw. The batch carries what the pair labels
are computed from on device (training/stages.py): each patch's image, its photo's EXIF value
codes and its post-processing members. Couple i is a pure function of (seed, i), so the Grain
iterator resumes exactly like the paired one.

With `virtual_camera_fraction` > 0, that share of couples (virtual_pairs.VirtualPairs) are
virtual: two photos chosen whatever their EXIF, a pair of virtual cameras drawn as for a
virtual pair, and each photo's k crops rendered by its camera (virtual_camera.py). Their
patches carry the camera's members, so every two rendered patches of the batch, of one couple
or of two, have component labels; their EXIF values are unknown.
"""

from __future__ import annotations

import grain
import ml_collections
import numpy as np

from exif_jax.data import augment
from exif_jax.data import input_pipeline
from exif_jax.data import virtual_camera

SAMPLERS = ("pairs", "all_pairs")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Refuses config.data.sampler settings the all-pairs stream cannot follow."""
  data = config.data
  if data.sampler not in SAMPLERS:
    raise ValueError(f"config.data.sampler={data.sampler!r}: expected one of {SAMPLERS}")
  if data.sampler != "all_pairs":
    return
  if data.patches_per_photo < 1 or config.train.batch_size % (2 * data.patches_per_photo):
    raise ValueError(f"config.train.batch_size={config.train.batch_size} must be a multiple of "
                     f"2 * config.data.patches_per_photo={data.patches_per_photo} (couples)")
  if config.stage == "camera_classification":
    raise ValueError("stage 'camera_classification' trains on single patches of pairs: use "
                     "config.data.sampler='pairs'")


def pairs_per_batch(config: ml_collections.ConfigDict, batch_size: int) -> int:
  """The pairs a training batch of `batch_size` compares: B, or B (B - 1) / 2 with all pairs."""
  return batch_size * (batch_size - 1) // 2 if config.data.sampler == "all_pairs" else batch_size


class MakeAllPairsBatch(input_pipeline.MakeBatch):
  """Couple indices -> their 2k patches each, stacked, with what labels their pairs.

  `image` (int32 [B]) names the image each patch was cut from, so image_i == image_j says
  whether two patches come from one image even when both photos of a couple are one photo:
  the dataset's photo index, or for a virtual camera's rendering of a photo -1 - the batch row
  of its first patch (a photo rendered by two cameras is two images). With virtual couples,
  `virtual` (int8 [B, components]) holds each patch's camera members, -1 for real patches.
  """

  def __init__(self, *args, patches_per_photo: int, **kwargs):
    super().__init__(*args, **kwargs)
    self.patches_per_photo = patches_per_photo

  def __call__(self, couples: np.ndarray) -> dict[str, np.ndarray]:
    size, k = self.options.patch_size, self.patches_per_photo
    patches = np.empty((2 * k * len(couples), size, size, 3), np.uint8)
    post = np.empty((len(patches), augment.NUM_OPS), np.int8)
    members = np.full((len(patches), len(virtual_camera.COMPONENTS)), -1, np.int8)
    photos, images = [], []
    for couple in couples.tolist():
      virtual = self.virtual is not None and self.virtual.is_virtual(couple)
      pair = self.sampler.sample_virtual(couple) if virtual else self.sampler.sample(couple)
      rng = input_pipeline.stream_rng(self.sampler.seed, input_pipeline.ALL_PAIRS_STREAM, couple)
      cameras = virtual_camera.draw_pair(rng)[:2] if virtual else (None, None)
      for photo, camera in zip((pair.photo_a, pair.photo_b), cameras):
        image = photo if camera is None else -1 - len(photos)
        for crop in self._crops(photo, rng):
          row = len(photos)
          pixels = self._pixels(crop)
          if camera is not None:
            pixels = self.virtual.shoot(pixels, camera, rng)
            members[row] = camera
          post[row] = augment.sample_patch(rng, self.options, min(pixels.shape[:2]))
          patches[row] = augment.apply(pixels, post[row], rng, self.options)
          photos.append(photo)
          images.append(image)
    photo, real = np.array(photos, np.int32), np.array(images) >= 0
    batch = {"patches": patches, "image": np.array(images, np.int32),
             # Each patch's photo's EXIF value codes (PairSampler.codes, -1 unknown).
             "codes": np.where(real[:, None], self.sampler.codes[photo], -1),
             "post": post,  # Each patch's post-processing members.
             "named": np.where(real[:, None], self.name_codes[photo], -1),
             "camera": np.where(real, self.camera_codes[photo], -1)}
    if self.virtual is not None:
      batch["virtual"] = members
    return batch

  def _crops(self, photo: int, rng: np.random.Generator) -> list[int]:
    """Global indices of k patches of `photo`, all different while it has k or more."""
    count = int(self.sampler.patch_count[photo])
    order = rng.permutation(count)
    start = int(self.sampler.patch_start[photo])
    return [start + int(order[i % count]) for i in range(self.patches_per_photo)]


def create_dataset(config: ml_collections.ConfigDict, *, seed: int, global_batch_size: int,
                   process_index: int = 0, process_count: int = 1) -> grain.IterDataset:
  """This host's all-pairs training batches: global batch n holds the couples
  [n * C, (n + 1) * C), C = global_batch_size / (2k), each host a contiguous slice."""
  k = config.data.patches_per_photo
  if global_batch_size % (2 * k * process_count):
    raise ValueError(f"global_batch_size={global_batch_size} not divisible by 2 * "
                     f"patches_per_photo={k} * {process_count} processes")
  make_batch = MakeAllPairsBatch(*input_pipeline.make_batch_inputs(config, "train", seed=seed),
                                 virtual_camera_fraction=config.data.virtual_camera_fraction,
                                 patches_per_photo=k)
  return input_pipeline.host_batches(
      make_batch, config.data, batch_size=global_batch_size // process_count // (2 * k),
      process_index=process_index, process_count=process_count)


def training_dataset(config: ml_collections.ConfigDict, *, seed: int, global_batch_size: int,
                     process_index: int = 0, process_count: int = 1) -> grain.IterDataset:
  """The training stream config.data.sampler names; validation always reads pairs
  (input_pipeline.create_dataset), so held-out scores compare across samplers."""
  kwargs = dict(seed=seed, global_batch_size=global_batch_size, process_index=process_index,
                process_count=process_count)
  if config.data.sampler == "all_pairs":
    return create_dataset(config, **kwargs)
  return input_pipeline.create_dataset(config, "train", **kwargs)
