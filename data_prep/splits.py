"""Train/val assignment by camera model, so validation measures unseen cameras."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Collection, Iterable, Sequence


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

  def holdout_warning(self, cameras: Collection[str], models: Iterable[str],
                      num_val_cameras: int) -> str | None:
    """Why validation may not hold out what was asked, or None: --val_models names that match
    none of the `cameras` (ids) and `models` found, or no camera held out at all. A silent
    empty split would make validation measure nothing."""
    if self.val_models:
      present = set(cameras) | {_normalize(model) for model in models}
      unmatched = [name for name in self.val_models if _normalize(name) not in present]
      if unmatched:
        return (f"--val_models {', '.join(map(repr, unmatched))}: no camera of that Model or "
                f"Make+Model among the {len(cameras)} found; {num_val_cameras} held out for "
                "validation")
    elif self.val_fraction and not num_val_cameras:
      return (f"no camera model held out for validation: --val_fraction {self.val_fraction} "
              f"of {len(cameras)} camera models, chosen by hash, picked none; give "
              "--val_models or a larger --val_fraction")
    return None
