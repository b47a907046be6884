"""A folder of every kind of bad input mixed with good photos, and what each tool should say.

data_prep needs RGB camera photos with EXIF; evaluation needs any readable image of at least
one patch. So one file can be a skip for data_prep and a map for run_eval and localize.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import shutil
from typing import Callable

import numpy as np
from PIL import Image

from exif_jax.data import files

_ARTIST, _DESCRIPTION, _ORIENTATION, _SOFTWARE = 0x013B, 0x010E, 0x0112, 0x0131
_PLACEHOLDER = b"ARTIST-PLACEHOLDER"


@dataclasses.dataclass(frozen=True)
class Expected:
  """A fragment of the skip reason, or None where the tool must use the file."""
  prep: str | None
  evaluate: str | None


def jpeg_with_declared_size(source: pathlib.Path, width: int, height: int) -> bytes:
  """A real JPEG whose SOF header claims another size: a decompression bomb by declaration."""
  data = bytearray(source.read_bytes())
  sof = 2  # Walk the marker segments: an EXIF thumbnail holds a SOF marker of its own.
  while data[sof + 1] not in (0xC0, 0xC1, 0xC2):
    sof += 2 + int.from_bytes(data[sof + 2:sof + 4], "big")
  data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
  return bytes(data)


def _jpeg_with_exif(photo: Image.Image, edits: dict[int, object],
                    raw_artist: bytes | None = None) -> bytes:
  """photo at 320x240 with its camera EXIF plus `edits`; raw_artist goes in as raw bytes."""
  exif = photo.getexif()
  exif.update(edits)
  if raw_artist is not None:
    exif[_ARTIST] = _PLACEHOLDER.decode()
  buffer = io.BytesIO()
  photo.resize((320, 240)).save(buffer, format="JPEG", quality=90, exif=exif)
  data = buffer.getvalue()
  if raw_artist is not None:  # Pillow writes ASCII only: swap the bytes in afterwards.
    data = data.replace(_PLACEHOLDER, raw_artist.ljust(len(_PLACEHOLDER), b"!"))
  return data


def _sparse_file(path: pathlib.Path, photo: Image.Image, size: int) -> None:
  """A real JPEG followed by a hole up to `size` bytes: gigabytes that take no disk."""
  photo.save(path, format="JPEG")
  with path.open("r+b") as f:
    f.truncate(size)


def make_corpus(folder: pathlib.Path, goods: list[pathlib.Path]) -> dict[str, Expected]:
  """Copies `goods` into `folder` and writes one file per kind of bad input beside them.

  Returns file name -> Expected for every file (names may hold non-UTF-8 bytes).
  """
  folder.mkdir(parents=True, exist_ok=True)
  expected = {}
  for good in goods:
    shutil.copy(good, folder / good.name)
    expected[good.name] = Expected(None, None)
  photo = Image.open(goods[0])
  small = photo.resize((320, 240))
  camera_exif = photo.getexif()
  gradient = (np.arange(200 * 200, dtype=np.uint32).reshape(200, 200) * 1.6).astype(np.uint16)

  def add(name: str, writer: Callable[[pathlib.Path], object], prep: str | None,
          evaluate: str | None) -> None:
    writer(folder / name)
    expected[name] = Expected(prep, evaluate)

  good_bytes = goods[0].read_bytes()
  add("truncated.jpg", lambda p: p.write_bytes(good_bytes[:len(good_bytes) // 2]),
      "truncated", "truncated")
  add("empty.jpg", lambda p: p.write_bytes(b""), "empty file", "empty file")
  add("text.jpg", lambda p: p.write_text("not a photo\n" * 100), "not an image", "not an image")
  for suffix in ("png", "tif", "webp"):
    add(f"no_exif_{suffix}.{suffix}", small.save, "no EXIF", None)
  add("cmyk.jpg", lambda p: small.convert("CMYK").save(p, exif=camera_exif), "CMYK", None)
  add("gray.jpg", lambda p: small.convert("L").save(p, exif=camera_exif), "grayscale", None)
  add("sixteen_bit.png", lambda p: Image.fromarray(gradient).save(p), "I;16", None)
  add("rgba.png", lambda p: small.convert("RGBA").save(p, exif=camera_exif), "alpha", None)
  add("palette.png", lambda p: small.convert("P").save(p, exif=camera_exif), "palette", None)
  add("garbage_exif.jpg", lambda p: p.write_bytes(_jpeg_with_exif(
      photo, {_SOFTWARE: "\x01\x02\x7f\x1b[31mred\x00tail"})), None, None)
  add("overlong_exif.jpg", lambda p: p.write_bytes(_jpeg_with_exif(
      photo, {_DESCRIPTION: "A" * 20000})), None, None)
  add("non_utf8_exif.jpg", lambda p: p.write_bytes(_jpeg_with_exif(
      photo, {}, raw_artist=b"Caf\xe9 \xff\xfe\x80")), None, None)
  add("rotated.jpg", lambda p: p.write_bytes(_jpeg_with_exif(photo, {_ORIENTATION: 6})),
      None, None)
  add("tiny.jpg", lambda p: small.resize((100, 90)).save(p, exif=camera_exif),
      "smaller than 128", "smaller than one 128 px patch")
  add("bomb.jpg", lambda p: p.write_bytes(jpeg_with_declared_size(goods[0], 60000, 60000)),
      "bomb", "bomb")
  # A real photo of a few hundred KB whose header claims 10000x10000: under max_pixels, but
  # its data ends long before; decoding it would cost the declared size.
  add("declared_larger.jpg", lambda p: p.write_bytes(jpeg_with_declared_size(
      goods[0], 10000, 10000)), "truncated", "truncated")
  add("sparse_huge.jpg", lambda p: _sparse_file(p, small, files.max_file_bytes(
      files.MAX_PIXELS) + 1), "file too large", "file too large")
  add("duplicate.jpg", lambda p: shutil.copy(goods[0], p), "duplicate of", None)
  add("missing_target.jpg", lambda p: p.symlink_to(folder / "nowhere.jpg"),
      "unreadable", "dangling symlink")
  add("loop_a.jpg", lambda p: p.symlink_to(folder / "loop_b.jpg"), "unreadable", "unreadable")
  add("loop_b.jpg", lambda p: p.symlink_to(folder / "loop_a.jpg"), "unreadable", "unreadable")
  add("fifo.jpg", os.mkfifo, "not a regular file", "not a regular file")
  if os.geteuid() != 0:  # root reads any file whatever its mode.
    add("no_permission.jpg", lambda p: (shutil.copy(goods[1], p), p.chmod(0)),
        "unreadable", "unreadable")
  add(os.fsdecode(b"bad_name_\xff.jpg"), lambda p: small.save(p, format="JPEG"),
      "no EXIF", None)
  # Names that must not lose or mix up a result: one stem in three files, a name longer than
  # a stored name may be, 96 bytes that are not UTF-8 (escaped, 3x longer), a terminal escape
  # code and a leading minus (a formula to a spreadsheet). Each is a usable photo of its own.
  names = ["same_stem.jpg", "same_stem-1.jpg", "a" * 242 + ".jpg",
           os.fsdecode(b"\xff" * 96 + b".jpg"), "\x1b[31mred.jpg", "-1+1.jpg"]
  for i, name in enumerate(names):
    add(name, lambda p, width=320 - 8 * i: photo.resize((width, 240)).save(
        p, format="JPEG", exif=camera_exif), None, None)
  add("same_stem.png", lambda p: small.save(p, exif=camera_exif), None, None)
  (folder / "loop_dir").symlink_to(folder, target_is_directory=True)  # Never followed.
  return expected

