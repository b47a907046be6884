"""What OUT holds for each image, for run_eval and localize alike (readers may rely on these
names and formats), and how a result is written, read back and kept by a rerun.

Every file of an image is named by storage_name(stem), <name> below:

OUT/maps/<name>.npy       float32 HxW in [0, 1], high = inconsistent, at the input's resolution
OUT/maps/<name>.png       8-bit heatmap of the same
OUT/ncuts/<name>.npy      the Normalized Cuts segmentation (when asked)
OUT/attr_maps/<name>.npz  the 83 per-attribute maps (when asked)
OUT/thumbs/<name>.jpg     the input, at most report.THUMBNAIL px: the report never reads inputs
OUT/truth/<name>.png      its ground-truth mask at the thumbnail's size (when known)
OUT/results/<name>.json   per image: its input path and sha256, then score, verdict, metrics,
                          or the reason it has no map; written last. A rerun keeps a result
                          only when its input is unchanged, and retries every skip.
OUT/settings.json         the model's sha256 and the options: a rerun with others is refused
OUT/model.json            what the report says of the model: config and validation.json
OUT/scores.csv, OUT/metrics.json (when masks are known), OUT/report.html
                          of the whole list: with several workers (see workers), written by
                          the one that completes it
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import numbers
import os
import pathlib
import string
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from eval import calibration as calibration_lib
from eval import metrics as metrics_lib
from eval.data import datasets
from eval.data import image_io
from eval.localization import localizer as localizer_lib
from eval.reporting import report
from exif_jax.data import files

_KEPT_BYTES = frozenset((string.ascii_letters + string.digits + "._-").encode())
_MAX_NAME, _KEPT_PREFIX, _HASH_DIGITS = 120, 100, 12  # Bytes; ext4 allows 255 per name.


def storage_name(stem: str) -> str:
  """The name of an example's files in OUT: a pure function of its stem, injective even where
  the file system folds case or normalizes Unicode (macOS, Windows).

  Each byte of the stem outside [A-Za-z0-9._-] is written %XX (so '/', spaces, control
  characters and bytes that are not UTF-8 are too), which keeps names ASCII and one path
  component: the NFC and NFD spellings of a name are other bytes, so other names. A name over
  120 bytes, or whose stem holds an upper-case letter (x.JPG beside x.jpg), keeps its first
  100 characters, then '~' (never written otherwise) and 12 hex digits of the sha256 of the
  whole name, which case folding leaves distinct.
  """
  name = "".join(chr(b) if b in _KEPT_BYTES else f"%{b:02X}" for b in os.fsencode(stem))
  if len(name) <= _MAX_NAME and not any("A" <= c <= "Z" for c in stem):
    return name
  return f"{name[:_KEPT_PREFIX]}~{hashlib.sha256(name.encode()).hexdigest()[:_HASH_DIGITS]}"


def map_path(out: pathlib.Path, name: str) -> pathlib.Path:
  """OUT/maps/<name>.npy: the map of the input stored under `name` (storage_name)."""
  return out / "maps" / f"{name}.npy"


def identity(example: datasets.Example) -> dict[str, str]:
  """What a result is filed under and what it is of: name, printable stem and input path."""
  return {"stem": storage_name(example.stem), "name": files.display_name(example.stem),
          "image": files.display_name(os.path.abspath(example.image_path))}


def _output_file(path: pathlib.Path) -> contextlib.AbstractContextManager[BinaryIO]:
  """files.atomic_file, in a folder of OUT made when first needed."""
  path.parent.mkdir(exist_ok=True)
  return files.atomic_file(path)


def _save_array(path: pathlib.Path, array: np.ndarray) -> None:
  with _output_file(path) as f:
    np.save(f, array)


def _save_image(path: pathlib.Path, image: Image.Image, image_format: str, **options) -> None:
  with _output_file(path) as f:
    image.save(f, format=image_format, **options)


def save_outputs(out: pathlib.Path, name: str, image: np.ndarray,
                  result: localizer_lib.Localization, mask: np.ndarray | None = None) -> None:
  """The image's files in OUT; its ground-truth `mask`, when known, at the thumbnail's size
  for the report (which reads nothing but OUT)."""
  _save_array(map_path(out, name), result.map)
  _save_image(out / "maps" / f"{name}.png", report.heatmap_image(result.map), "PNG")
  thumb = report.thumbnail(image)
  # JPEG: a photo's thumbnail encodes 70x faster than as a PNG, at a sixth of the size.
  _save_image(out / "thumbs" / f"{name}.jpg", Image.fromarray(thumb), "JPEG",
              quality=report.THUMBNAIL_QUALITY)
  if mask is not None:
    _save_image(out / report.TRUTH / f"{name}.png",
                Image.fromarray(mask).resize(thumb.shape[1::-1], Image.NEAREST), "PNG")
  if result.ncuts is not None:
    _save_array(out / "ncuts" / f"{name}.npy", result.ncuts.astype(np.float32))
  if result.attribute_maps is not None:
    with _output_file(out / "attr_maps" / f"{name}.npz") as f:
      np.savez_compressed(f, maps=result.attribute_maps,
                          attributes=np.array(localizer_lib.exif_attrs.ATTRIBUTES))


@dataclasses.dataclass(frozen=True)
class Read:
  """An example read, checked and prepared (e.g. cut into patches) on the host, or why it
  cannot be used."""
  record: dict[str, Any]
  image: np.ndarray | None = None
  mask: np.ndarray | None = None
  prepared: Any = None  # The localizer's `prepare` of the image.
  error: str | None = None


def read(example: datasets.Example, localizer: localizer_lib.Localizer,
          max_pixels: int) -> Read:
  """The host work before the devices': runs ahead of the loop, in another thread."""
  record: dict[str, Any] = identity(example)
  try:
    record["sha256"] = image_io.file_sha256(example.image_path, max_pixels)
    image = example.load_image(max_pixels)
    return Read(record, image, example.mask, localizer.prepare(image))
  except ValueError as e:
    return Read(record, error=str(e))


def write(example: datasets.Example, read: Read, outcome: localizer_lib.Localization | str,
          out: pathlib.Path, calibration: calibration_lib.Calibration | None = None
          ) -> dict[str, Any]:
  """Writes one image's files, its result last; returns the result. Runs behind the loop.
  The verdict follows the model's calibration ("uncalibrated" without one)."""
  result = out / "results" / f"{read.record['stem']}.json"
  if isinstance(outcome, str):
    record = {**read.record, "error": outcome}
  else:
    # A result that stays valid while its outputs change would let a run killed in between
    # show one input's map under another's score: it stops counting first.
    result.unlink(missing_ok=True)
    save_outputs(out, read.record["stem"], read.image, outcome, read.mask)
    record = {**read.record, "score": outcome.score, "no_signal": outcome.no_signal,
              "verdict": calibration_lib.verdict(calibration, outcome.score),
              "num_patches": outcome.num_patches, "separating": list(outcome.separating),
              "has_mask": read.mask is not None, "spliced": example.spliced}
    if read.mask is not None and read.mask.any() and not read.mask.all():
      record["metrics"] = metrics_lib.image_metrics(read.mask, outcome.map)
  files.write_json(result, record)
  return record


def _is_result(record: Any, identity: dict[str, str]) -> bool:
  """Whether `record` is a map of exactly this input, with the fields summaries print."""
  if not (isinstance(record, dict) and all(record.get(k) == v for k, v in identity.items())):
    return False
  metrics = record.get("metrics", {})
  return ("error" not in record and isinstance(record.get("score"), numbers.Real)
          and isinstance(record.get("no_signal"), bool) and isinstance(record.get("verdict"), str)
          and isinstance(record.get("separating"), list) and isinstance(metrics, dict)
          and isinstance(metrics.get("p-ap", 0.0), numbers.Real))


def read_record(example: datasets.Example, out: pathlib.Path) -> Any:
  """What OUT/results holds for this input's name (any JSON), or None."""
  try:
    return json.loads((out / "results" / f"{storage_name(example.stem)}.json").read_text())
  except (OSError, ValueError):  # No result or an unreadable one.
    return None


def earlier_result(example: datasets.Example, out: pathlib.Path,
                   max_pixels: int) -> dict[str, Any] | None:
  """The result an earlier run left for this input, if the input is unchanged since (same
  path and sha256) and its map and thumbnail are still there; skips are never kept."""
  return _kept(read_record(example, out), example, out, max_pixels)


def _kept(record: Any, example: datasets.Example, out: pathlib.Path,
          max_pixels: int) -> dict[str, Any] | None:
  """`record` (what OUT/results holds for `example`) if earlier_result keeps it, else None."""
  if record is None:
    return None
  expected = identity(example)
  name = expected["stem"]
  try:
    expected["sha256"] = image_io.file_sha256(example.image_path, max_pixels)
  except (OSError, ValueError):  # An input gone bad.
    return None
  outputs = (map_path(out, name), out / "thumbs" / f"{name}.jpg")
  return record if _is_result(record, expected) and all(map(os.path.exists, outputs)) else None


def final_result(example: datasets.Example, out: pathlib.Path,
                 max_pixels: int) -> dict[str, Any] | None:
  """The record the summaries take for this input: its kept result, or the reason its last
  run skipped it (the next run of its worker retries it); None while it is to do."""
  record = read_record(example, out)
  if (isinstance(record, dict) and isinstance(record.get("error"), str)
      and all(record.get(k) == v for k, v in identity(example).items())):
    return record
  return _kept(record, example, out, max_pixels)
