"""The classical reference: local noise-level inconsistency, no training (`--method noise`).

Splices between cameras usually differ in noise: the sensor, its gain and the camera's
denoising set how much fine-scale variation a region holds. The finest diagonal wavelet band
(Haar HH) of the grey image is mostly that noise, and its robust scale in a block,
median(|HH|) / 0.6745, estimates the block's noise sigma (Donoho's estimator, as used by
Mahdian and Saic 2009). Blocks whose log sigma lies far from the image's median are the
inconsistent ones; saturated blocks, whose noise is clipped away, count as consistent.

It returns the learned Localizer's `Localization`, so maps, scores, metrics and the report are
the same for both methods: the floor a learned model must clear.
"""

from __future__ import annotations

import math

import numpy as np

from eval.localization import localizer as localizer_lib
from eval.localization import maps

BLOCK = 32  # Pixels per block side: 16x16 = 256 HH coefficients per noise estimate.
MAX_BLOCKS_PER_SIDE = 256  # The block stride grows on large images, so memory stays bounded.
MIN_SIGMA = 0.1  # Grey levels; smoother blocks (quantised flat areas) count as this.
LOG_SCALE = math.log(1.5)  # A block with 1.5x (or 1/1.5x) the median noise maps to 0.39.
SATURATED = (2.0, 253.0)  # Blocks whose mean grey lies outside carry no noise to compare.


def noise_sigmas(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per block: noise sigma, mean grey, and the block's top-left pixel [K, 2] (a grid)."""
  height, width = (grey.shape[0] // 2) * 2, (grey.shape[1] // 2) * 2
  if min(height, width) < BLOCK:
    raise ValueError(f"image is {grey.shape[1]}x{grey.shape[0]}; the noise method needs "
                     f"at least {BLOCK}x{BLOCK}")
  cells = grey[:height, :width].reshape(height // 2, 2, width // 2, 2)
  diagonal = (cells[:, 0, :, 0] - cells[:, 0, :, 1] - cells[:, 1, :, 0] + cells[:, 1, :, 1]) / 2
  side = BLOCK // 2
  stride = max(side // 4, math.ceil(max(diagonal.shape) / MAX_BLOCKS_PER_SIDE))
  windows = np.lib.stride_tricks.sliding_window_view(np.abs(diagonal), (side, side))
  windows = windows[::stride, ::stride]
  sigma = np.median(windows.reshape(*windows.shape[:2], -1), axis=-1) / 0.6745
  means = np.lib.stride_tricks.sliding_window_view(cells.mean(axis=(1, 3)), (side, side))
  mean = means[::stride, ::stride].mean(axis=(2, 3))
  ys, xs = np.meshgrid(np.arange(sigma.shape[0]) * stride * 2,
                       np.arange(sigma.shape[1]) * stride * 2, indexing="ij")
  return sigma.ravel(), mean.ravel(), np.stack([ys.ravel(), xs.ravel()], axis=1)


def inconsistency(sigma: np.ndarray, mean: np.ndarray) -> np.ndarray:
  """Per block in [0, 1): how far its log noise lies from the median of the unsaturated blocks."""
  usable = (mean > SATURATED[0]) & (mean < SATURATED[1])
  if not usable.any():
    return np.zeros_like(sigma)
  log_sigma = np.log(np.maximum(sigma, MIN_SIGMA))
  distance = np.abs(log_sigma - np.median(log_sigma[usable])) / LOG_SCALE
  return np.where(usable, 1 - np.exp(-distance**2 / 2), 0.0)


class NoiseLocalizer:
  """Callable like localizer.Localizer: uint8 HxWx3 image (and its `prepare`) -> Localization."""

  def __init__(self):
    # Recorded in OUT/settings.json, so that a rerun never mixes these maps with a model's.
    self.settings = {"method": "noise", "block": BLOCK, "log_scale": LOG_SCALE}

  def prepare(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The numpy part (per-block inconsistency, block corners, image shape), which may run in
    another thread ahead of __call__."""
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    sigma, mean, coords = noise_sigmas(grey)
    return inconsistency(sigma, mean), coords, grey.shape

  def __call__(self, image: np.ndarray, prepared=None) -> localizer_lib.Localization:
    per_block, coords, shape = self.prepare(image) if prepared is None else prepared
    heat = np.asarray(maps.patch_average(per_block[None], coords, shape, shape,
                                         patch_size=BLOCK)[0], np.float32)
    no_signal = bool(heat.max() - heat.min() <= 1e-4)
    if no_signal:
      heat = np.zeros_like(heat)
    return localizer_lib.Localization(map=np.clip(heat, 0, 1), score=maps.detection_score(heat),
                                      no_signal=no_signal, num_patches=len(coords))
