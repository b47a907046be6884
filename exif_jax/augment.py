"""Post-processing augmentations (paper 3.2): re-JPEG, Gaussian blur and resize.

Each op draws its parameter from an evenly spaced set that includes the identity (quality 0 =
not re-encoded, sigma 0, factor 1), so untouched patches stay common. Patch B gets patch A's
parameter half of the time and another member otherwise; the label of an op is 1 iff both
patches got the same member. Ops run in a random order per patch because order matters.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from typing import Any

import numpy as np
from PIL import Image
from PIL import ImageFilter

from exif_jax import exif_attrs

# Parameter arrays and labels are indexed by op in the attribute order of exif_attrs.
JPEG, BLUR, RESIZE = map(exif_attrs.POST_PROCESSING.index, ("jpeg_quality", "blur", "resize"))
NUM_OPS = len(exif_attrs.POST_PROCESSING)


@dataclasses.dataclass(frozen=True)
class Options:
  """The parameter sets of the three ops and the output patch side."""
  jpeg_qualities: tuple[int, ...]
  blur_sigmas: tuple[float, ...]
  resize_factors: tuple[float, ...]
  resize_interpolations: tuple[str, ...]
  patch_size: int

  def __post_init__(self):
    for name, members, identity in (("jpeg_qualities", self.jpeg_qualities, 0),
                                    ("blur_sigmas", self.blur_sigmas, 0.0),
                                    ("resize_factors", self.resize_factors, 1.0)):
      if identity not in members or len(set(members)) != len(members):
        raise ValueError(f"{name}={members}: needs distinct members including {identity}")
    if min(self.resize_factors) <= 0 or len(set(self.regions.tolist())) != len(self.regions):
      raise ValueError(f"resize_factors={self.resize_factors}: must be positive and give "
                       f"distinct region sizes for patch_size {self.patch_size}")
    for name in self.resize_interpolations:
      Image.Resampling[name.upper()]  # Fails early on a name Pillow does not know.

  @classmethod
  def from_config(cls, data: Any) -> Options:
    """From the `config.data` fields of configs/common.py."""
    return cls(
        jpeg_qualities=tuple(data.jpeg_qualities), blur_sigmas=tuple(data.blur_sigmas),
        resize_factors=tuple(data.resize_factors),
        resize_interpolations=tuple(data.resize_interpolations), patch_size=data.patch_size)

  @functools.cached_property
  def sets(self) -> tuple[tuple[float, ...], ...]:
    """The parameter sets indexed by op."""
    by_op = {JPEG: self.jpeg_qualities, BLUR: self.blur_sigmas, RESIZE: self.resize_factors}
    return tuple(by_op[op] for op in range(NUM_OPS))

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
  for op, members in enumerate(options.sets):
    if op == RESIZE:
      allowed_a = options.fitting_factors(min(side_a, side_b))
      allowed_b = options.fitting_factors(side_b)
    else:
      allowed_a = allowed_b = np.arange(len(members))
    params_a[op] = allowed_a[rng.integers(allowed_a.size)]
    others = allowed_b[allowed_b != params_a[op]]
    same = rng.random() < 0.5 or not others.size
    params_b[op] = params_a[op] if same else others[rng.integers(others.size)]
  return params_a, params_b, (params_a == params_b).astype(np.int8)


def apply(pixels: np.ndarray, params: np.ndarray, rng: np.random.Generator,
          options: Options) -> np.ndarray:
  """uint8 [patch_size, patch_size, 3]: a random region of `pixels` post-processed by `params`.

  The region's side is patch_size / factor, so resizing (whenever it comes in the random
  order) brings it to patch_size; resampling uses a random interpolation of the set.
  """
  side = options.regions[params[RESIZE]]
  height, width, _ = pixels.shape
  y, x = rng.integers(height - side + 1), rng.integers(width - side + 1)
  image = Image.fromarray(pixels[y:y + side, x:x + side])
  for op in rng.permutation(NUM_OPS):
    value = options.sets[op][params[op]]
    if op == JPEG and value:
      image = _rejpeg(image, value)
    elif op == BLUR and value:
      image = image.filter(ImageFilter.GaussianBlur(value))
    elif op == RESIZE and side != options.patch_size:
      name = options.resize_interpolations[rng.integers(len(options.resize_interpolations))]
      image = image.resize((options.patch_size,) * 2, Image.Resampling[name.upper()])
  return np.asarray(image)


def _rejpeg(image: Image.Image, quality: int) -> Image.Image:
  buffer = io.BytesIO()
  image.save(buffer, format="JPEG", quality=quality)
  # Decoding with the known size skips Image.open's header parsing: half the decode time.
  return Image.frombytes("RGB", image.size, buffer.getvalue(), "jpeg", "RGB", "")
