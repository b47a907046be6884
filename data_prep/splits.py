"""Train/val assignment by camera model, so validation measures unseen cameras."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Sequence


def _normalize(name: str) -> str:
  return re.sub(r"\s+", "", name).lower()


@dataclasses.dataclass(frozen=True)
class SplitRule:
  """Holds out named camera models, or a hash-chosen fraction of all camera models.

  Hashing the camera id (not the photo) keeps every photo of a camera on one side and makes
  the choice independent of which worker sees the photo.
  """
  val_models: Sequence[str] = ()
  val_fraction: float = 0.0

  def __post_init__(self):
    if self.val_models and self.val_fraction:
      raise ValueError("give --val_models or --val_fraction, not both")
    if not 0.0 <= self.val_fraction < 1.0:
      raise ValueError(f"--val_fraction must be in [0, 1), got {self.val_fraction}")

  def split(self, camera: str, model: str) -> str:
    if self.val_models:
      names = {_normalize(name) for name in self.val_models}
      return "val" if camera in names or _normalize(model) in names else "train"
    bucket = int(hashlib.sha256(camera.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    return "val" if bucket < self.val_fraction else "train"
