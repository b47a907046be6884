"""Local noise levels of an image: the estimate both the noise method and the fused
consistency read.

The finest diagonal wavelet band (Haar HH) of the grey image is mostly noise: the sensor, its
gain and the camera's denoising set how much fine-scale variation a region holds. Its robust
scale in a window, median(|HH|) / 0.6745, estimates the window's noise sigma (Donoho's
estimator, as used by Mahdian and Saic 2009). Saturated windows, whose noise is clipped away,
carry none to compare.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK = 32  # Pixels per block side: 16x16 = 256 HH coefficients per noise estimate.
MAX_BLOCKS_PER_SIDE = 256  # The block stride grows on large images, so memory stays bounded.
MIN_SIGMA = 0.1  # Grey levels; smoother blocks (quantised flat areas) count as this.
LOG_SCALE = math.log(1.5)  # A block with 1.5x (or 1/1.5x) the median noise maps to 0.39.
SATURATED = (2.0, 253.0)  # Blocks whose mean grey lies outside carry no noise to compare.


def noise_sigmas(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per block: noise sigma, mean grey, and the block's top-left pixel [K, 2] (a grid)."""
  if min(grey.shape) < BLOCK:
    raise ValueError(f"image is {grey.shape[1]}x{grey.shape[0]}; the noise method needs "
                     f"at least {BLOCK}x{BLOCK}")
  cells, diagonal = _haar_cells(grey)
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


def _haar_cells(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """grey [..., H, W] -> its 2x2 cells [..., H/2, 2, W/2, 2] and their Haar HH band
  [..., H/2, W/2] (odd last rows and columns dropped)."""
  height, width = (grey.shape[-2] // 2) * 2, (grey.shape[-1] // 2) * 2
  cells = grey[..., :height, :width].reshape(*grey.shape[:-2], height // 2, 2, width // 2, 2)
  diagonal = (cells[..., 0, :, 0] - cells[..., 0, :, 1] - cells[..., 1, :, 0]
              + cells[..., 1, :, 1]) / 2
  return cells, diagonal


def unsaturated(mean_grey: np.ndarray) -> np.ndarray:
  """Whether windows of these mean grey levels keep noise to compare."""
  return (mean_grey > SATURATED[0]) & (mean_grey < SATURATED[1])


def log_sigma(sigma: np.ndarray) -> np.ndarray:
  """log noise sigma, flat windows (below MIN_SIGMA) counted as MIN_SIGMA."""
  return np.log(np.maximum(sigma, MIN_SIGMA))


def grey_levels(image: np.ndarray) -> np.ndarray:
  """uint8 [..., 3] RGB -> float32 [...] luma."""
  return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def patch_noise(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """uint8 patches [N, P, P, 3] -> each patch's log noise sigma [N] (the estimate of
  `noise_sigmas` over the whole patch) and whether it is usable [N] (not saturated)."""
  cells, diagonal = _haar_cells(grey_levels(patches))
  sigma = np.median(np.abs(diagonal).reshape(len(patches), -1), axis=-1) / 0.6745
  mean = cells.reshape(len(patches), -1).mean(axis=-1)
  return log_sigma(sigma), unsaturated(mean)


def pair_log_odds(log_sigma: np.ndarray, usable: np.ndarray) -> np.ndarray:
  """[N, N] log-odds evidence against "same image" from two patches' noise: -d^2 / 2 for
  d = their log-sigma distance in LOG_SCALE units; 0 where either patch is saturated."""
  distance = (log_sigma[:, None] - log_sigma[None, :]) / LOG_SCALE
  both = usable[:, None] & usable[None, :]
  return np.where(both, -distance**2 / 2, 0.0).astype(np.float32)


def fused_consistency(matrix: np.ndarray, log_odds: np.ndarray, weight: float) -> np.ndarray:
  """P(same image) of every patch pair with the noise evidence added in log-odds:
  sigmoid(logit(matrix) + weight * log_odds), so noise is one more "same or not" term beside
  the learned ones."""
  learned = np.clip(np.asarray(matrix, np.float64), 1e-6, 1 - 1e-6)
  logits = np.log(learned / (1 - learned)) + weight * log_odds
  return (1 / (1 + np.exp(-logits))).astype(np.float32)
