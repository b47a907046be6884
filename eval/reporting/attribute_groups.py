"""The 83 attributes in a photographer's words: the group each belongs to, its printed name,
and which of them a report may show.

An attribute map is only worth reading when the model tells that attribute apart on camera
models it never trained on; the others are noise with a tag name under it.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from exif_jax.data import exif_attrs

# The validation AUC (validation.json, on held-out cameras) an attribute needs to be shown.
SHOWN_FROM_AUC = 0.55

_MEMBERS = {
    "camera model": (
        "Image Make", "Image Model", "EXIF ExifVersion", "EXIF FlashPixVersion",
        "EXIF ComponentsConfiguration", "EXIF FileSource", "EXIF SceneType",
        "EXIF SensingMethod", "EXIF FocalPlaneXResolution", "EXIF FocalPlaneYResolution",
        "EXIF FocalPlaneResolutionUnit", "EXIF ExifImageLength", "EXIF ExifImageWidth",
        "Interoperability InteroperabilityIndex", "Interoperability InteroperabilityVersion",
        "Interoperability RelatedImageLength", "Interoperability RelatedImageWidth",
        "Image PrintIM", "Image ExifOffset", "EXIF InteroperabilityOffset", "EXIF OffsetSchema",
        "Image XResolution", "Image YResolution", "Image ResolutionUnit",
        "Image YCbCrPositioning"),
    "lens and exposure": (
        "EXIF ApertureValue", "EXIF BrightnessValue", "EXIF DigitalZoomRatio",
        "EXIF ExposureBiasValue", "EXIF ExposureMode", "EXIF ExposureProgram",
        "EXIF ExposureTime", "EXIF FNumber", "EXIF Flash", "EXIF FocalLength",
        "EXIF FocalLengthIn35mmFilm", "EXIF GainControl", "EXIF ISOSpeedRatings",
        "EXIF LensMake", "EXIF LensModel", "EXIF LensSpecification", "EXIF LightSource",
        "EXIF MaxApertureValue", "EXIF MeteringMode", "EXIF SensitivityType",
        "EXIF ShutterSpeedValue", "EXIF SubjectArea", "EXIF SubjectDistanceRange",
        "EXIF SceneCaptureType"),
    "processing": (
        "EXIF WhiteBalance", "EXIF ColorSpace", "EXIF Contrast", "EXIF Saturation",
        "EXIF Sharpness", "EXIF CustomRendered", "EXIF CompressedBitsPerPixel",
        "Image Software"),
    "JPEG": ("jpeg_quality",),
    "resize": ("resize",),
    "blur": ("blur",),
    "date, GPS and other": (
        "EXIF DateTimeOriginal", "EXIF DateTimeDigitized", "Image DateTime", "EXIF SubSecTime",
        "EXIF SubSecTimeOriginal", "EXIF SubSecTimeDigitized", "GPS GPSAltitude",
        "GPS GPSAltitudeRef", "GPS GPSDate", "GPS GPSImgDirection", "GPS GPSImgDirectionRef",
        "GPS GPSLatitude", "GPS GPSLatitudeRef", "GPS GPSLongitude", "GPS GPSLongitudeRef",
        "GPS GPSTimeStamp", "GPS GPSVersionID", "Image GPSInfo", "Image Artist",
        "Image Copyright", "Image ImageDescription", "EXIF UserComment", "Image Orientation"),
}
GROUPS = tuple(_MEMBERS)  # In the order a page lists them.
# exif_attrs.ATTRIBUTES name -> its group.
GROUP = {name: group for group, names in _MEMBERS.items() for name in names}

# Names that splitting the tag's words does not make plain.
_NAMES = {"EXIF FNumber": "f-number", "EXIF ISOSpeedRatings": "ISO",
          "Image YCbCrPositioning": "YCbCr positioning", "Image PrintIM": "PrintIM",
          "EXIF SubSecTime": "sub-second time", "EXIF SubSecTimeOriginal": "sub-second time "
          "original", "EXIF SubSecTimeDigitized": "sub-second time digitized",
          "jpeg_quality": "JPEG quality", "resize": "resizing", "blur": "blur"}
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|\d+")


def plain_name(name: str) -> str:
  """"EXIF ExposureTime" -> "exposure time", "GPS GPSLongitude" -> "GPS longitude"."""
  if name in _NAMES:
    return _NAMES[name]
  words = _WORDS.findall(name.split(" ", 1)[1])
  return " ".join(w if w.isupper() else w.lower() for w in words)


def told_apart(validation: dict[str, Any] | None) -> tuple[str, ...]:
  """The attributes whose validation AUC reaches SHOWN_FROM_AUC, in attribute order; none
  without a validation."""
  if not validation:
    return ()
  scores = validation.get("attributes", {})
  return tuple(name for name in exif_attrs.ATTRIBUTES
               if scores.get(name, {}).get("auc", 0.0) >= SHOWN_FROM_AUC)


def by_group(names: Iterable[str]) -> dict[str, list[str]]:
  """`names` under their groups, groups in GROUPS order, empty groups left out."""
  grouped = {group: [] for group in GROUPS}
  for name in names:
    grouped[GROUP[name]].append(name)
  return {group: members for group, members in grouped.items() if members}
