"""Files every part of the system reads or writes: which names are images, how a path is printed,
the largest image and file it reads, which --out can be a folder, writes that a reader, or a
rerun after a kill, never sees half done, and how an output folder's recorded settings differ
from a rerun's."""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import os
import pathlib
import re
import tempfile
from typing import Any, BinaryIO, Iterator, Mapping

from etils import epath

# Suffixes (any case) of the image files looked for in folders: camera photos (JPEG and its
# JPE, JFIF and MPO variants, TIFF, PNG, WebP) and the benchmarks' releases (also BMP).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".tif", ".tiff", ".webp", ".bmp"})
# 12000x10000: larger than any camera, smaller than a decompression bomb.
MAX_PIXELS = 120_000_000
# C0, DEL and C1, and the bidirectional marks, embeddings, overrides and isolates, which
# reorder the text after them: "photo\u202egpj.exe" shows as "photoexe.jpg".
_CONTROL_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def display_name(path: str | os.PathLike) -> str:
  """A printable, UTF-8 form of a path: bytes that are not UTF-8 and control characters (a
  terminal would run them as escape codes, a bidi override reorders the name) are written as
  \\xNN or \\uNNNN."""
  text = os.fsencode(path).decode("utf-8", "backslashreplace")
  return _CONTROL_CHARACTERS.sub(_escape, text)


def _escape(match: re.Match) -> str:
  code = ord(match.group())
  return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def check_out_folder(out: str, flag: str = "--out", purpose: str = "an output folder") -> None:
  """ValueError naming `flag` when `out` cannot be (or become) an output folder: empty (which
  would write into the current folder), a file, or under a file. Writes nothing."""
  if not out:
    raise ValueError(f"{flag} is empty: give {purpose}")
  if "://" in out:  # Object stores have no files in the way of a folder.
    return
  path = pathlib.Path(out)
  for folder in (path, *path.parents):
    if folder.is_dir():
      return
    if os.path.lexists(folder):
      raise ValueError(f"{flag} {display_name(path)}: " + (
          "not a folder" if folder == path else f"{display_name(folder)} is not a folder"))


def max_file_bytes(max_pixels: int) -> int:
  """The largest file read: an uncompressed 8-bit RGB image at the pixel limit plus 16 MiB of
  metadata, far above any camera file; a sparse or padded file of gigabytes is not read."""
  return 3 * max_pixels + 2**24


def check_file_size(size: int, max_pixels: int) -> None:
  """ValueError for a file over max_file_bytes(max_pixels), before any of it is read."""
  if size > max_file_bytes(max_pixels):
    raise ValueError(f"file too large: {size} bytes > {max_file_bytes(max_pixels)} "
                     "(3 bytes per pixel of max_pixels)")


def is_remote(path: epath.PathLike) -> bool:
  """An object store's path (gs://): no appends, no renames, no writers that need a file."""
  return "://" in os.fspath(path)


def temporary_path(path: epath.Path) -> epath.Path:
  """A hidden sibling of `path` for this process to write, then rename into place (for
  writers that need a path, not a file object)."""
  return path.parent / f".{path.name}.tmp-{os.getpid()}"


@contextlib.contextmanager
def atomic_file(path: epath.PathLike) -> Iterator[BinaryIO]:
  """A binary file that appears at `path` whole or not at all, when the block ends.

  It is written under a unique temporary name beside `path` (so concurrent writers never
  share one; the name ends `.tmp-<pid>-<random>`) and renamed over it: a symlink at `path` is
  replaced, never followed. The temporary file is removed if the block raises.

  On an object store (gs://) an object appears whole when its upload ends, and a rename is a
  copy: the bytes are kept in memory and uploaded once, when the block ends without error.
  """
  path = epath.Path(path)
  if is_remote(path):
    buffer = io.BytesIO()
    yield buffer
    path.write_bytes(buffer.getvalue())
    return
  fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-")
  os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide reports from other users.
  tmp, file = epath.Path(name), os.fdopen(fd, "wb")
  try:
    with file:
      yield file
    tmp.replace(path)
  except BaseException as e:
    full = isinstance(e, OSError) and _disk_full(path.parent)
    tmp.unlink(missing_ok=True)
    if full and e.errno not in DISK_FULL:  # numpy and others raise errno-less OSErrors.
      raise OSError(errno.ENOSPC, "no space left on device", os.fspath(path)) from e
    raise


# The errors of a write to a full disk or a used-up quota.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_FULL_BELOW = 1 << 20  # Free bytes under which a failed write is blamed on the disk.


def _disk_full(folder: epath.Path) -> bool:
  try:
    stats = os.statvfs(folder)
  except OSError:
    return False
  return stats.f_bavail * stats.f_frsize < _FULL_BELOW


@functools.cache
def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def write_atomic(path: epath.PathLike, data: str | bytes) -> None:
  """Writes `data` (str as UTF-8) to `path` through atomic_file: readers never see half."""
  with atomic_file(path) as f:
    f.write(data.encode() if isinstance(data, str) else data)


def write_json(path: epath.PathLike, obj: Any) -> None:
  """Writes `obj` as JSON to `path` (and its missing folders) through atomic_file."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  write_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


def settings_changes(earlier: Mapping[str, Any], now: Mapping[str, Any]) -> str:
  """The settings that differ, as "name: X then, Y now; ..." (sorted); "" when none do.

  A rerun that would mix outputs of other settings into a folder names what changed."""
  changed = sorted(k for k in earlier.keys() | now.keys() if earlier.get(k) != now.get(k))
  return "; ".join(f"{k}: {earlier.get(k)} then, {now.get(k)} now" for k in changed)
