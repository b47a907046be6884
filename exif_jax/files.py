"""Files every part of the system reads or writes: which names are images, the largest image it
decodes, and writes that a reader, or a rerun after a kill, never sees half done."""

from __future__ import annotations

import json
import os
from typing import Any

from etils import epath

# Suffixes (any case) of the image files looked for in folders: camera photos (JPEG and its
# JPE, JFIF and MPO variants, TIFF, PNG, WebP) and the benchmarks' releases (also BMP).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".tif", ".tiff", ".webp", ".bmp"})
# 12000x10000: larger than any camera, smaller than a decompression bomb.
MAX_PIXELS = 120_000_000


def temporary_path(path: epath.Path) -> epath.Path:
  """A hidden sibling of `path` for this process to write, then rename into place."""
  return path.parent / f".{path.name}.tmp-{os.getpid()}"


def write_json(path: epath.PathLike, obj: Any) -> None:
  """Writes `obj` as JSON to `path` (and its missing folders) atomically: temp file, rename."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = temporary_path(path)
  tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
  tmp.replace(path)
