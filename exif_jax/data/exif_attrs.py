"""The 83 attributes the network predicts "same or not" for, in one fixed order.

80 EXIF tags (exifread keys, the paper's list) followed by the three post-processing
attributes added at training time. Every array with an attribute axis uses ATTRIBUTES order.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import logging
import re
from typing import Mapping

import exifread

POST_PROCESSING = ("jpeg_quality", "blur", "resize")


def _load_exif_tags() -> tuple[str, ...]:
  text = importlib.resources.files(__package__).joinpath("exif_tags.txt").read_text()
  return tuple(
      line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
  )


EXIF_TAGS: tuple[str, ...] = _load_exif_tags()
ATTRIBUTES: tuple[str, ...] = EXIF_TAGS + POST_PROCESSING
NUM_EXIF = len(EXIF_TAGS)
NUM_ATTRIBUTES = len(ATTRIBUTES)
INDEX = {name: i for i, name in enumerate(ATTRIBUTES)}

# Tags whose value is a timestamp: only year:month says anything about the camera era.
DATE_TAGS = frozenset(
    {"EXIF DateTimeOriginal", "EXIF DateTimeDigitized", "Image DateTime", "GPS GPSDate"}
)
MAX_VALUE_CHARS = 64
_DATE = re.compile(r"^\s*(\d{4})[:\-/](\d{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# exifread logs every odd MakerNote field at WARNING; a skipped tag is not news per photo.
logging.getLogger("exifread").setLevel(logging.ERROR)

assert NUM_EXIF == 80 and NUM_ATTRIBUTES == 83, (NUM_EXIF, NUM_ATTRIBUTES)


def normalize_value(tag: str, printable: str) -> str | None:
  """exifread printable text -> the string compared between photos, or None if empty.

  Dates keep year:month; NULs and control bytes go; overlong values (blobs, garbage, long
  comments) are replaced by a short digest so they still compare equal across photos.
  """
  value = _CONTROL.sub("", printable).strip()
  if not value:
    return None
  if tag in DATE_TAGS:
    match = _DATE.match(value)
    return f"{match.group(1)}:{match.group(2)}" if match else None
  if len(value) > MAX_VALUE_CHARS:
    return "sha1:" + hashlib.sha1(value.encode("utf-8", "replace")).hexdigest()[:16]
  return value


def read_exif(data: bytes) -> dict[str, str]:
  """The 80 paper tags of an image file's bytes, normalised; missing tags are absent.

  `details=True` is needed: without it exifread skips EXIF UserComment. Raises whatever
  exifread raises on malformed metadata; callers decide whether that skips the photo.
  """
  tags = exifread.process_file(io.BytesIO(data), details=True, debug=False)
  exif = {}
  for tag in EXIF_TAGS:
    if tag in tags:
      value = normalize_value(tag, _printable(tags[tag]))
      if value is not None:
        exif[tag] = value
  return exif


def _printable(tag_value) -> str:
  printable = getattr(tag_value, "printable", tag_value)
  if isinstance(printable, bytes):
    return printable.decode("utf-8", "replace")
  return str(printable)


def camera_id(exif: Mapping[str, str]) -> str:
  """Make + Model without spaces, lower-case: the camera identity used to split data."""
  make = exif.get("Image Make", "")
  model = exif.get("Image Model", "")
  return re.sub(r"\s+", "", f"{make}{model}").lower()
