"""The classical reference: local noise-level inconsistency, no training (`--method noise`).

Splices between cameras usually differ in noise (noise_levels.py estimates it per block).
Blocks whose log sigma lies far from the image's median are the inconsistent ones; saturated
blocks count as consistent.

It returns the learned Localizer's `Localization`, so maps, scores, metrics and the report are
the same for both methods: the floor a learned model must clear.
"""

from __future__ import annotations

import numpy as np

from eval.localization import localizer as localizer_lib
from eval.localization import maps
from eval.localization import noise_levels


def inconsistency(sigma: np.ndarray, mean: np.ndarray) -> np.ndarray:
  """Per block in [0, 1): how far its log noise lies from the median of the unsaturated blocks."""
  usable = noise_levels.unsaturated(mean)
  if not usable.any():
    return np.zeros_like(sigma)
  log_sigma = noise_levels.log_sigma(sigma)
  distance = np.abs(log_sigma - np.median(log_sigma[usable])) / noise_levels.LOG_SCALE
  return np.where(usable, 1 - np.exp(-distance**2 / 2), 0.0)


class NoiseLocalizer:
  """Callable like localizer.Localizer: uint8 HxWx3 image (and its `prepare`) -> Localization."""

  def __init__(self):
    # Recorded in OUT/settings.json, so that a rerun never mixes these maps with a model's.
    self.settings = {"method": "noise", "block": noise_levels.BLOCK,
                     "log_scale": noise_levels.LOG_SCALE}

  def prepare(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The numpy part (per-block inconsistency, block corners, image shape), which may run in
    another thread ahead of __call__."""
    sigma, mean, coords = noise_levels.noise_sigmas(noise_levels.grey_levels(image))
    return inconsistency(sigma, mean), coords, image.shape[:2]

  def __call__(self, image: np.ndarray, prepared=None) -> localizer_lib.Localization:
    per_block, coords, shape = self.prepare(image) if prepared is None else prepared
    heat = np.asarray(maps.patch_average(per_block[None], coords, shape, shape,
                                         patch_size=noise_levels.BLOCK)[0], np.float32)
    no_signal = bool(heat.max() - heat.min() <= 1e-4)
    if no_signal:
      heat = np.zeros_like(heat)
    return localizer_lib.Localization(map=np.clip(heat, 0, 1), score=maps.detection_score(heat),
                                      no_signal=no_signal, num_patches=len(coords))
