"""The first-scan length check that refuses JPEGs whose data ends before the declared image."""

import pathlib

import pytest

import bad_inputs
from conftest import FIXTURES, SHARED_DATA
from exif_jax.data import jpeg_scan

CAMERA_PHOTOS = sorted((FIXTURES / "camera").glob("*.jpg"))
PROGRESSIVE = FIXTURES / "edge" / "progressive_sony_dsc-p12.jpg"


@pytest.mark.parametrize("photo", CAMERA_PHOTOS + [PROGRESSIVE], ids=lambda p: p.name)
def test_complete_photos_pass(photo: pathlib.Path):
  assert jpeg_scan.truncation(photo.read_bytes()) is None


@pytest.mark.parametrize("photo", [CAMERA_PHOTOS[0], PROGRESSIVE], ids=lambda p: p.name)
def test_a_header_declaring_more_than_the_data_holds_is_truncated(photo: pathlib.Path):
  data = bad_inputs.jpeg_with_declared_size(photo, 10000, 10000)
  reason = jpeg_scan.truncation(data)
  assert reason is not None and reason.startswith("truncated: 10000x10000 needs at least")


def test_cut_before_the_image_data_is_left_to_the_decoder():
  data = CAMERA_PHOTOS[0].read_bytes()
  assert jpeg_scan.truncation(data[:1000]) is None  # No scan yet: Pillow reports it.
  assert jpeg_scan.truncation(b"not a jpeg") is None


@pytest.mark.shared_data
def test_no_shared_photo_is_refused():
  photos = sorted(p for p in SHARED_DATA.rglob("*")
                  if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file())
  refused = [p.name for p in photos if jpeg_scan.truncation(p.read_bytes())]
  assert not refused and len(photos) > 500
