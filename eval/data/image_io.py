"""Image files -> uint8 RGB pixels as stored, or a one-line reason the file cannot be used.

Pixels keep the stored orientation (EXIF Orientation is not applied): JPEG blocks and sensor
traces live on the stored grid, and benchmark masks are drawn on it.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import pathlib
import stat

import numpy as np
from PIL import Image

from exif_jax.data import files
from exif_jax.data import jpeg_scan


_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


def rgb_pixels(image: Image.Image) -> np.ndarray:
  """Any Pillow mode -> uint8 HxWx3; ValueError for float or 32-bit pixels of no known range.

  convert() would clip float and 32-bit integer pixels to 0-255, so a float TIFF in 0-1 became
  black; such pixels are mapped by their value range instead, as _gray_pixels says.
  """
  if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
    gray = _gray_pixels(np.asarray(image), sixteen_bit=image.mode in _SIXTEEN_BIT_MODES)
    return np.repeat(gray[..., None], 3, axis=-1)
  return np.asarray(image.convert("RGB"))


def _gray_pixels(values: np.ndarray, sixteen_bit: bool = False) -> np.ndarray:
  """One band of integers or floats -> uint8 by the range its values fit: floats in 0-1 times
  255, values in 0-255 as they are, in 0-65535 (or declared 16-bit) their top 8 bits.

  ValueError for any other range (negative, over 65535, NaN): guessing would map noise.
  """
  low, high = values.min(), values.max()
  if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 65535:
    raise ValueError(f"pixel values {low:g} to {high:g} fit no known range (floats 0-1, "
                     "values 0-255 or 0-65535)")
  is_float = values.dtype.kind == "f"
  if sixteen_bit or high > 255:
    top = np.floor(values / 256) if is_float else values >> 8
  elif is_float:
    top = np.rint(values * 255 if high <= 1 else values)
  else:
    top = values
  return top.astype(np.uint8)


def _check_jpeg_data(path: pathlib.Path) -> None:
  """ValueError when the file ends before the image its header declares (libjpeg would pad
  it with grey at the cost of the declared size)."""
  with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
    reason = jpeg_scan.truncation(data)
  if reason:
    raise ValueError(reason)


def check_file(path: pathlib.Path, max_pixels: int) -> None:
  """ValueError naming why `path` is no image file to read: missing, unreadable, not a
  regular file (never opened, so a pipe never blocks), empty, or larger than any image of
  max_pixels (a sparse file of gigabytes is never read)."""
  try:
    info = path.stat()
  except FileNotFoundError:
    raise ValueError("dangling symlink" if path.is_symlink() else "no such file") from None
  except OSError as e:
    raise ValueError(f"unreadable file: {e.strerror or e}") from None
  if not stat.S_ISREG(info.st_mode):
    raise ValueError("not a regular file")
  if not info.st_size:
    raise ValueError("empty file")
  files.check_file_size(info.st_size, max_pixels)


def file_sha256(path: str | os.PathLike, max_pixels: int = files.MAX_PIXELS) -> str:
  """The hex sha256 of an image file's bytes, read in blocks; ValueError as check_file."""
  path = pathlib.Path(path)
  check_file(path, max_pixels)
  try:
    with path.open("rb") as f:
      return hashlib.file_digest(f, "sha256").hexdigest()
  except OSError as e:
    raise ValueError(f"unreadable file: {e.strerror or e}") from None


def load_image(path: str | os.PathLike, max_pixels: int = files.MAX_PIXELS) -> np.ndarray:
  """uint8 HxWx3, or ValueError with a one-line reason (never blocks on a pipe or device)."""
  path = pathlib.Path(path)
  check_file(path, max_pixels)
  # Pillow refuses images over twice its own limit before the check below sees them.
  Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
  try:
    image = Image.open(path)
  except Image.DecompressionBombError as e:
    raise ValueError(f"decompression bomb: {e}") from None
  except Image.UnidentifiedImageError:
    raise ValueError("not an image Pillow can read") from None
  except OSError as e:
    raise ValueError(f"unreadable file: {e.strerror or e}") from None
  except Exception as e:  # Pillow raises SyntaxError, ValueError... on malformed headers.
    raise ValueError(f"not an image Pillow can read: {type(e).__name__}: {e}") from None
  with image:
    if image.width * image.height > max_pixels:
      raise ValueError(
          f"image too large: {image.width}x{image.height} pixels > max_pixels {max_pixels}")
    if image.format in ("JPEG", "MPO"):
      _check_jpeg_data(path)
    try:
      image.load()
    except Exception as e:  # Truncated or corrupt entropy-coded data.
      raise ValueError(f"corrupt or truncated image data: {type(e).__name__}: {e}") from None
    return rgb_pixels(image)
