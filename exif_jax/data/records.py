"""The on-disk dataset: ArrayRecord shards of msgpack records, plus per-shard JSON indexes.

A dataset directory written by `data_prep` holds, for shard i of n:

  photos-i-of-n.array_record   one record per photo: the original file bytes (never
                               re-encoded), its EXIF and identity (PHOTO_FIELDS).
  patches-i-of-n.array_record  one record per training crop cut losslessly from a photo at
                               prep time (PATCH_FIELDS), so training never decodes a JPEG.
  shard-i-of-n.json            written last, atomically: the shard is complete iff it exists.
                               Holds the per-photo index the pair sampler needs (EXIF values,
                               camera, split, patch range) and the inputs the shard skipped.

and `dataset_info.json` once every shard is complete (see `data_prep.info`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from typing import Any, Iterable, Sequence

import msgpack
import numpy as np
from array_record.python.array_record_module import ArrayRecordWriter
from etils import epath

from exif_jax.data import files

PHOTO_FIELDS = (
    "image", "exif", "make", "model", "camera", "width", "height", "sha256", "source",
    "split", "patches",
)
PATCH_FIELDS = ("photo", "y", "x", "height", "width", "pixels")
WRITER_OPTIONS = "group_size:1,uncompressed"  # Random access; zstd:3 took 3x the read CPU.
DATASET_INFO = "dataset_info.json"
UPLOAD_CHUNK = 16 << 20  # Bytes per write when a shard is copied to an object store.
_SHARD_INDEX = re.compile(r"^shard-(\d{5})-of-(\d{5})\.json$")


def shard_path(directory: epath.PathLike, kind: str, index: int, count: int) -> epath.Path:
  suffix = "json" if kind == "shard" else "array_record"
  return epath.Path(directory) / f"{kind}-{index:05d}-of-{count:05d}.{suffix}"


def encode(record: dict[str, Any]) -> bytes:
  return msgpack.packb(record, use_bin_type=True)


def decode(data: bytes) -> dict[str, Any]:
  return msgpack.unpackb(data, raw=False)


def patch_record(photo: int, y: int, x: int, pixels: np.ndarray) -> dict[str, Any]:
  height, width, _ = pixels.shape
  return {"photo": photo, "y": y, "x": x, "height": height, "width": width,
          "pixels": np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()}


def patch_pixels(record: dict[str, Any]) -> np.ndarray:
  """uint8 [height, width, 3] view of a decoded patch record."""
  return np.frombuffer(record["pixels"], np.uint8).reshape(record["height"], record["width"], 3)


def write_array_record(path: epath.Path, records: Iterable[bytes]) -> int:
  """Writes serialized records to `path` atomically (temp file, then rename).

  ArrayRecord writes only to files: a shard for an object store (gs://) is written to a local
  temporary file, then uploaded whole (an object appears complete or not at all).
  """
  if files.is_remote(path):
    with tempfile.TemporaryDirectory() as local:
      local_path = epath.Path(local) / path.name
      count = write_array_record(local_path, records)
      with local_path.open("rb") as source, path.open("wb") as target:
        shutil.copyfileobj(source, target, UPLOAD_CHUNK)
    return count
  tmp = files.temporary_path(path)
  writer = ArrayRecordWriter(os.fspath(tmp), WRITER_OPTIONS)
  count = 0
  try:
    for record in records:
      writer.write(record)
      count += 1
  finally:
    writer.close()
  tmp.replace(path)
  return count


@dataclasses.dataclass(frozen=True)
class Shard:
  """One complete shard: its files and the per-photo index from its JSON."""
  index: int
  count: int
  photos_path: epath.Path
  patches_path: epath.Path
  photos: Sequence[dict[str, Any]]
  skipped: Sequence[dict[str, str]]
  settings: dict[str, Any]


def complete_shards(directory: epath.PathLike) -> list[Shard]:
  """The complete shards of a dataset directory, in shard order."""
  directory = epath.Path(directory)
  if not directory.is_dir():
    raise FileNotFoundError(f"{directory}: no such dataset directory")
  shards = []
  for path in sorted(directory.iterdir()):
    match = _SHARD_INDEX.match(path.name)
    if not match:
      continue
    index, count = int(match.group(1)), int(match.group(2))
    meta = json.loads(path.read_text())
    shards.append(Shard(
        index=index, count=count,
        photos_path=shard_path(directory, "photos", index, count),
        patches_path=shard_path(directory, "patches", index, count),
        photos=meta["photos"], skipped=meta["skipped"], settings=meta["settings"]))
  return shards


def load_dataset_info(directory: epath.PathLike) -> dict[str, Any]:
  path = epath.Path(directory) / DATASET_INFO
  if not path.exists():
    raise FileNotFoundError(
        f"{path}: missing; run data_prep until every shard is complete")
  return json.loads(path.read_text())


@dataclasses.dataclass(frozen=True)
class PhotoIndex:
  """Everything the pair sampler needs about one photo, without reading its bytes.

  `patches` are global indices into `patch_files` read as one ArrayRecordDataSource.
  """
  sha256: str
  source: str
  camera: str
  split: str
  exif: dict[str, str]
  patches: range


def photo_index(directory: epath.PathLike, split: str | None = None
                ) -> tuple[list[PhotoIndex], list[str]]:
  """(photos, patch_files) of a dataset, optionally of one split ("train" or "val").

  Photos whose sha256 already occurred in an earlier shard are left out (first occurrence in
  shard order wins), so a dataset written by any number of workers has the same photos.
  """
  photos, patch_files, seen, offset = [], [], set(), 0
  for shard in complete_shards(directory):
    patch_files.append(os.fspath(shard.patches_path))
    for photo in shard.photos:
      first = offset + photo["first_patch"]
      if photo["sha256"] not in seen and (split is None or photo["split"] == split):
        photos.append(PhotoIndex(
            sha256=photo["sha256"], source=photo["source"], camera=photo["camera"],
            split=photo["split"], exif=photo["exif"],
            patches=range(first, first + photo["num_patches"])))
      seen.add(photo["sha256"])
    offset += sum(photo["num_patches"] for photo in shard.photos)
  return photos, patch_files
