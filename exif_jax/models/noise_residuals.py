"""Fixed high-pass noise residuals, given to the backbone beside the colours.

Re-compression, resampling and a camera's own processing leave traces of a few grey levels,
far below the image content in energy; a root conv that must find them in RGB alone learns
slowly. Three SRM high-pass kernels (the ones Zhou et al., CVPR 2018, feed their noise
stream), clipped at a few grey levels as rich-model residuals are, remove most of the content
and keep those traces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_SECOND_ORDER_SQUARE = np.array([[-1, 2, -1],
                                 [2, -4, 2],
                                 [-1, 2, -1]]) / 4
_EDGE_5X5 = np.array([[-1, 2, -2, 2, -1],
                      [2, -6, 8, -6, 2],
                      [-2, 8, -12, 8, -2],
                      [2, -6, 8, -6, 2],
                      [-1, 2, -2, 2, -1]]) / 12
_SECOND_ORDER_ROW = np.array([[1, -2, 1]]) / 2


def _kernels() -> np.ndarray:
  """The three kernels, zero-padded to 5x5, as an HWIO conv kernel [5, 5, 1, 3]."""
  padded = [np.pad(kernel, [((5 - n) // 2, (5 - n) - (5 - n) // 2) for n in kernel.shape])
            for kernel in (_SECOND_ORDER_SQUARE, _EDGE_5X5, _SECOND_ORDER_ROW)]
  return np.stack(padded, axis=-1)[:, :, None, :].astype(np.float32)


KERNELS = _kernels()
NUM_CHANNELS = KERNELS.shape[-1]
# Grey levels beyond which a residual is content (an edge), not a trace.
TRUNCATION = 3.0


def noise_residuals(images: jax.Array) -> jax.Array:
  """Images [N, H, W, 3] scaled to [-1, 1] -> residuals [N, H, W, 3] in [-1, 1].

  Computed on the grey image in grey levels (0-255 steps); borders reflect, so a patch's edge
  is not a false trace.
  """
  grey = jnp.mean(images.astype(jnp.float32), axis=-1, keepdims=True) * 127.5
  grey = jnp.pad(grey, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  residuals = jax.lax.conv_general_dilated(
      grey, jnp.asarray(KERNELS), window_strides=(1, 1), padding="VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
  return jnp.clip(residuals / TRUNCATION, -1.0, 1.0).astype(images.dtype)
