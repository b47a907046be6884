"""Post-processing augmentations (paper 3.2): re-JPEG, Gaussian blur and resize.

Each op draws its parameter from an evenly spaced set that includes the identity (quality 0 =
not re-encoded, sigma 0, factor 1). Members weigh the same, or the identity gets a set weight
and the others share the rest: with uniform sets of 5-7 members almost no patch stays
untouched, and the camera traces of untouched photos are what a splice disagrees on. Half of
the pairs get one member for both patches, drawn by weight; the other half two different
members, drawn with probability proportional to the product of their weights, so that A and
B are alike. The label of an op is 1 iff both patches got the same member. Ops run in a
random order per patch because order matters.

The ops use OpenCV, 2-20x faster than Pillow at these sizes, so that a few host cores feed an
accelerator. Unlike Pillow's, OpenCV's bilinear, bicubic and Lanczos kernels do not widen when
downscaling (no anti-aliasing) while "box" averages pixel areas: four distinct resamplers,
except at factor 0.5 where bilinear and box coincide.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import cv2
import numpy as np

from exif_jax.data import exif_attrs

# Parameter arrays and labels are indexed by op in the attribute order of exif_attrs.
JPEG, BLUR, RESIZE = map(exif_attrs.POST_PROCESSING.index, ("jpeg_quality", "blur", "resize"))
NUM_OPS = len(exif_attrs.POST_PROCESSING)
# Each op's member that leaves a patch untouched.
IDENTITY = {JPEG: 0, BLUR: 0.0, RESIZE: 1.0}
# The names `resize_interpolations` may hold.
INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
                  "lanczos": cv2.INTER_LANCZOS4, "box": cv2.INTER_AREA}
# Grain already runs one reader per thread or process; OpenCV's own threads would oversubscribe
# the cores and only add hand-off latency on 128-px images.
cv2.setNumThreads(0)


@dataclasses.dataclass(frozen=True)
class Options:
  """The parameter sets of the three ops and the output patch side."""
  jpeg_qualities: tuple[int, ...]
  blur_sigmas: tuple[float, ...]
  resize_factors: tuple[float, ...]
  resize_interpolations: tuple[str, ...]
  patch_size: int
  identity_probability: float | None = None  # Per op, the identity's weight; None = uniform.

  def __post_init__(self):
    for op, name in ((JPEG, "jpeg_qualities"), (BLUR, "blur_sigmas"),
                     (RESIZE, "resize_factors")):
      members = getattr(self, name)
      if IDENTITY[op] not in members or len(set(members)) != len(members):
        raise ValueError(f"{name}={members}: needs distinct members including {IDENTITY[op]}")
    if min(self.resize_factors) <= 0 or len(set(self.regions.tolist())) != len(self.regions):
      raise ValueError(f"resize_factors={self.resize_factors}: must be positive and give "
                       f"distinct region sizes for patch_size {self.patch_size}")
    for name in self.resize_interpolations:
      INTERPOLATIONS[name]  # Fails early on an unknown name.
    if self.identity_probability is not None and not 0 < self.identity_probability < 1:
      raise ValueError(f"identity_probability={self.identity_probability}: must be in (0, 1) "
                       f"or None (uniform)")

  @classmethod
  def from_config(cls, data: Any) -> Options:
    """From the `config.data` fields of configs/common.py."""
    return cls(
        jpeg_qualities=tuple(data.jpeg_qualities), blur_sigmas=tuple(data.blur_sigmas),
        resize_factors=tuple(data.resize_factors),
        resize_interpolations=tuple(data.resize_interpolations), patch_size=data.patch_size,
        identity_probability=data.identity_probability)

  @functools.cached_property
  def sets(self) -> tuple[tuple[float, ...], ...]:
    """The parameter sets indexed by op."""
    by_op = {JPEG: self.jpeg_qualities, BLUR: self.blur_sigmas, RESIZE: self.resize_factors}
    return tuple(by_op[op] for op in range(NUM_OPS))

  @property
  def set_sizes(self) -> tuple[int, ...]:
    """Members per op: the classes of the auxiliary post-processing head."""
    return tuple(len(members) for members in self.sets)

  @functools.cached_property
  def weights(self) -> tuple[np.ndarray, ...]:
    """Per op, each member's weight (they sum to 1)."""
    by_op = []
    for op, members in enumerate(self.sets):
      size = len(members)
      if self.identity_probability is None:
        by_op.append(np.full(size, 1 / size))
      else:
        weights = np.full(size, (1 - self.identity_probability) / (size - 1))
        weights[members.index(IDENTITY[op])] = self.identity_probability
        by_op.append(weights)
    return tuple(by_op)

  @functools.cached_property
  def regions(self) -> np.ndarray:
    """Per resize factor, the side of the stored-crop region that it turns into one patch."""
    return np.array([round(self.patch_size / f) for f in self.resize_factors])

  def fitting_factors(self, side: int) -> np.ndarray:
    """Indices of the resize factors whose region fits in a crop whose short side is `side`."""
    return np.flatnonzero(self.regions <= side)


def sample_pair(rng: np.random.Generator, options: Options, side_a: int, side_b: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(params_a, params_b, labels) for two crops whose short sides are side_a, side_b.

  Params are int [NUM_OPS] indices into the sets, labels int8 [NUM_OPS]. Only resize factors
  that fit are drawn, so the labels describe what is applied; A's member fits both crops so that
  "same" is always possible, and every set has members that fit any crop of one patch or more.
  """
  params_a = np.empty(NUM_OPS, np.int64)
  params_b = np.empty(NUM_OPS, np.int64)
  # One Generator call for all draws: a call costs more than the draw.
  for op, (u_a, u_same, u_b) in enumerate(rng.random((NUM_OPS, 3)).tolist()):
    allowed_a = _allowed(options, op, min(side_a, side_b))
    allowed_b = _allowed(options, op, side_b)
    weights = options.weights[op]
    if u_same < 0.5 or len(allowed_b) == 1:
      params_a[op] = params_b[op] = _draw(u_a, allowed_a, weights)
    else:  # Member m1 for A with weight w1 (1 - w1), then m2 != m1 for B with weight w2.
      params_a[op] = _draw(u_a, allowed_a, weights * (1 - weights))
      params_b[op] = _draw(u_b, allowed_b[allowed_b != params_a[op]], weights)
  return params_a, params_b, (params_a == params_b).astype(np.int8)


def sample_patch(rng: np.random.Generator, options: Options, side: int) -> np.ndarray:
  """int [NUM_OPS]: one patch's own members for a crop whose short side is `side`, each drawn
  by weight among those that fit.

  All-pairs batches draw every patch alone and compare them pairwise: an op's label is 1 iff
  two patches got the same member, as in sample_pair.
  """
  return np.array([_draw(u, _allowed(options, op, side), options.weights[op])
                   for op, u in enumerate(rng.random(NUM_OPS).tolist())])


def _allowed(options: Options, op: int, side: int) -> np.ndarray:
  """The members of `op` that a crop whose short side is `side` can take."""
  return options.fitting_factors(side) if op == RESIZE else np.arange(len(options.sets[op]))


def _draw(u: float, members: np.ndarray, weights: np.ndarray) -> int:
  """The member of `members` that uniform `u` picks by `weights`, renormalized over them."""
  cumulative = np.cumsum(weights[members])
  return int(members[min(np.searchsorted(cumulative, u * cumulative[-1], side="right"),
                         len(members) - 1)])


def apply(pixels: np.ndarray, params: np.ndarray, rng: np.random.Generator,
          options: Options) -> np.ndarray:
  """uint8 [patch_size, patch_size, 3]: a random region of `pixels` post-processed by `params`.

  The region's side is patch_size / factor, so resizing (whenever it comes in the random
  order) brings it to patch_size; resampling uses a random interpolation of the set. When no
  op runs, the result is a view of `pixels`: callers copy it into their batch anyway.
  """
  side = int(options.regions[params[RESIZE]])
  height, width, _ = pixels.shape
  u_y, u_x, u_interpolation, *u_order = rng.random(3 + NUM_OPS).tolist()
  y, x = int(u_y * (height - side + 1)), int(u_x * (width - side + 1))
  image = pixels[y:y + side, x:x + side]
  for op in sorted(range(NUM_OPS), key=u_order.__getitem__):  # A uniform random order.
    value = options.sets[op][params[op]]
    if op == JPEG and value:
      image = rejpeg(image, value)
    elif op == BLUR and value:
      image = blur(image, value)
    elif op == RESIZE and side != options.patch_size:
      interpolations = options.resize_interpolations
      name = interpolations[int(u_interpolation * len(interpolations))]
      image = resize(image, (options.patch_size,) * 2, INTERPOLATIONS[name])
  return image


def rejpeg(image: np.ndarray, quality: int,
           sampling_factor: int = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420) -> np.ndarray:
  """uint8 RGB re-encoded as a JPEG of `quality` (1-100) and decoded; chroma subsampled by an
  IMWRITE_JPEG_SAMPLING_FACTOR_* value (OpenCV's default 4:2:0 unless told)."""
  # OpenCV encodes BGR: swapped channels would put the wrong colours in luma and chroma.
  _, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            (cv2.IMWRITE_JPEG_QUALITY, int(quality),
                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling_factor))
  return cv2.imdecode(encoded, cv2.IMREAD_COLOR_RGB)


@functools.cache
def _gaussian_kernel(sigma: float) -> np.ndarray:
  # Truncated at 3 sigma, as cv2.GaussianBlur does for uint8.
  return cv2.getGaussianKernel(2 * round(3 * sigma) + 1, sigma)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
  """uint8 RGB blurred by a Gaussian of `sigma` px."""
  # The Gaussian of cv2.GaussianBlur (up to rounding), 1.5-4x faster than its bit-exact uint8
  # path. Borders reflect (BORDER_REFLECT_101) inside the region.
  kernel = _gaussian_kernel(sigma)
  return cv2.sepFilter2D(image, -1, kernel, kernel)


def resize(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
  """uint8 RGB resampled to size (width, height) with an INTERPOLATIONS value."""
  if interpolation != cv2.INTER_LANCZOS4:
    return cv2.resize(image, size, interpolation=interpolation)
  # OpenCV's uint8 Lanczos is twice as slow as going through float32 (same up to rounding).
  resized = cv2.resize(image.astype(np.float32), size, interpolation=interpolation)
  return np.clip(np.rint(resized, out=resized), 0, 255, out=resized).astype(np.uint8)
