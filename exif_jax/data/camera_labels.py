"""The classes of the Camera-Classification baseline: which camera model made each photo.

A camera is records.PhotoIndex.camera, Make + Model as data_prep wrote it
(exif_attrs.camera_id). The classes are the training photos' cameras held by at least
data.min_photos_per_value photos, sorted; saved with the checkpoint as model.camera_names,
they index the camera head's outputs.
"""

from __future__ import annotations

import collections
from typing import Sequence

import ml_collections
import numpy as np

from exif_jax.data import records


def camera_names(photos: Sequence[records.PhotoIndex], min_photos: int) -> tuple[str, ...]:
  """The sorted cameras held by at least `min_photos` of `photos` (an unknown camera, "",
  is none)."""
  counts = collections.Counter(photo.camera for photo in photos if photo.camera)
  return tuple(sorted(camera for camera, n in counts.items() if n >= min_photos))


def training_cameras(data: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The classes of config.data's training photos; ValueError (naming the dataset) when fewer
  than two, which a softmax cannot tell apart."""
  photos, _ = records.photo_index(data.data_dir, "train")
  names = camera_names(photos, data.min_photos_per_value)
  if len(names) < 2:
    raise ValueError(f"{data.data_dir}: {len(names)} camera model(s) held by >= "
                     f"{data.min_photos_per_value} training photos; camera classification "
                     "needs at least 2")
  return names


def camera_codes(photos: Sequence[records.PhotoIndex], names: Sequence[str]) -> np.ndarray:
  """int32 [photos]: each photo's camera's index in `names`, -1 where it has none there (a
  held-out camera, or too rare to be a class)."""
  code = {name: i for i, name in enumerate(names)}
  return np.array([code.get(photo.camera, -1) for photo in photos], np.int32)
