"""One input file -> a photo record and its lossless training crops, or a reason to skip it."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
from typing import Any, Iterator

import numpy as np
from etils import epath
from PIL import Image

from exif_jax.data import exif_attrs
from exif_jax.data import files
from exif_jax.data import jpeg_scan

MIN_SIDE = 128  # One network patch.
_MODE_REASONS = {
    "CMYK": "CMYK image (camera photos are RGB)",
    "L": "grayscale image",
    "1": "1-bit image",
    "P": "palette image, not a camera photo",
    "RGBA": "image with alpha channel, not a camera photo",
    "LA": "grayscale image with alpha channel",
}


@dataclasses.dataclass(frozen=True)
class PrepOptions:
  """How photos become records; stored in every shard so mixed runs are refused."""
  patches_per_photo: int = 16
  crop_size: int = 256
  max_pixels: int = files.MAX_PIXELS


@dataclasses.dataclass(frozen=True)
class Photo:
  record: dict[str, Any]      # records.PHOTO_FIELDS, without "split" and "patches".
  crops: list[tuple[int, int, np.ndarray]]  # (y, x, uint8 pixels)


@dataclasses.dataclass(frozen=True)
class Skipped:
  source: str
  reason: str


def list_inputs(photos: str) -> list[str]:
  """Image files under a folder (local or gs://), or the paths listed in a text file.

  Sorted, so that every worker sees the same order and the same shard assignment. Symlinked
  folders are not followed (no loops); hidden files and non-image suffixes are ignored.
  """
  root = epath.Path(photos)
  if not root.exists():
    raise FileNotFoundError(f"{photos}: no such file or folder")
  if root.is_dir():
    paths = _walk(root)
  else:
    base = root.parent
    try:
      text = root.read_text()
    except UnicodeDecodeError:
      raise ValueError(f"{photos}: neither a folder nor a text file listing photos") from None
    lines = (line.strip() for line in text.splitlines())
    paths = [
        line if "://" in line or os.path.isabs(line) else os.fspath(base / line)
        for line in lines if line and not line.startswith("#")
    ]
  return sorted(paths, key=os.fsencode)


def _walk(root: epath.Path) -> list[str]:
  if files.is_remote(root):
    candidates = (os.fspath(p) for p in _walk_remote(root))
  else:
    candidates = (
        os.path.join(folder, name)
        for folder, _, names in os.walk(os.fspath(root), followlinks=False)
        for name in names)
  return [
      path for path in candidates
      if not os.path.basename(path).startswith(".")
      and os.path.splitext(path)[1].lower() in files.IMAGE_SUFFIXES
  ]


def _walk_remote(folder: epath.Path) -> Iterator[epath.Path]:
  """The files under `folder` on an object store, where epath has no recursive glob."""
  for path in folder.iterdir():
    if path.is_dir():
      yield from _walk_remote(path)
    else:
      yield path


def load_photo(path: str, options: PrepOptions) -> Photo | Skipped:
  """Reads, checks and crops one photo. Never raises for a bad file: it returns Skipped."""
  source = files.display_name(path)
  try:
    data = read_file(path, options.max_pixels)
  except ValueError as e:
    return Skipped(source, str(e))
  try:
    return _photo_from_bytes(data, source, options)
  except _Reject as e:
    return Skipped(source, str(e))


def read_file(path: str, max_pixels: int) -> bytes:
  """The file's bytes, or ValueError with a one-line reason; never blocks on a pipe and never
  reads more than files.max_file_bytes(max_pixels)."""
  try:
    if "://" not in path:
      info = os.stat(path)
      if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file")
      files.check_file_size(info.st_size, max_pixels)
    return epath.Path(path).read_bytes()
  except OSError as e:
    raise ValueError(f"unreadable file: {e.strerror or e}") from None


class _Reject(Exception):
  """A photo that cannot be used, with the reason."""


def _photo_from_bytes(data: bytes, source: str, options: PrepOptions) -> Photo:
  if not data:
    raise _Reject("empty file")
  pixels = _decode(data, options)
  height, width, _ = pixels.shape
  try:
    exif = exif_attrs.read_exif(data)
  except Exception as e:  # exifread raises many types on malformed metadata.
    raise _Reject(f"unreadable EXIF: {type(e).__name__}: {e}") from e
  if not exif:
    raise _Reject("no EXIF metadata")
  if "Image Make" not in exif and "Image Model" not in exif:
    raise _Reject("no camera Make or Model in EXIF")
  sha256 = hashlib.sha256(data).hexdigest()
  record = {
      "image": data, "exif": exif, "make": exif.get("Image Make", ""),
      "model": exif.get("Image Model", ""), "camera": exif_attrs.camera_id(exif),
      "width": width, "height": height, "sha256": sha256, "source": source,
  }
  return Photo(record=record, crops=list(_crops(pixels, sha256, options)))


def _decode(data: bytes, options: PrepOptions) -> np.ndarray:
  try:
    image = Image.open(io.BytesIO(data))
  except Image.DecompressionBombError as e:
    raise _Reject(f"decompression bomb: {e}") from e
  except Exception as e:  # Pillow raises UnidentifiedImageError, SyntaxError, ValueError...
    raise _Reject(f"not an image Pillow can read: {type(e).__name__}") from e
  width, height = image.size
  if width * height > options.max_pixels:
    raise _Reject(
        f"image too large: {width}x{height} pixels > max_pixels {options.max_pixels}")
  if min(width, height) < MIN_SIDE:
    raise _Reject(f"image smaller than {MIN_SIDE} px: {width}x{height}")
  if image.mode != "RGB":
    reason = _MODE_REASONS.get(image.mode, f"{image.mode} pixels")
    raise _Reject(f"unsupported pixel format: {reason}")
  if image.format in ("JPEG", "MPO") and (reason := jpeg_scan.truncation(data)):
    raise _Reject(reason)
  try:
    image.load()
  except Exception as e:  # Truncated or corrupt entropy-coded data.
    raise _Reject(f"corrupt or truncated image data: {type(e).__name__}: {e}") from e
  return np.asarray(image, dtype=np.uint8)


def _crops(pixels: np.ndarray, sha256: str, options: PrepOptions
           ) -> Iterator[tuple[int, int, np.ndarray]]:
  """Random crops at full resolution, no resampling; positions seeded by the file's hash."""
  height, width, _ = pixels.shape
  crop_h, crop_w = min(options.crop_size, height), min(options.crop_size, width)
  rng = np.random.default_rng(int(sha256[:16], 16))
  for _ in range(options.patches_per_photo):
    y = int(rng.integers(0, height - crop_h + 1))
    x = int(rng.integers(0, width - crop_w + 1))
    yield y, x, pixels[y:y + crop_h, x:x + crop_w].copy()
