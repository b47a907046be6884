"""The attributes' groups and plain names, and the validation rule that picks the shown ones."""

from eval.reporting import attribute_groups
from exif_jax.data import exif_attrs


def test_every_attribute_has_one_group():
  assert sorted(attribute_groups.GROUP) == sorted(exif_attrs.ATTRIBUTES)
  assert set(attribute_groups.GROUP.values()) == set(attribute_groups.GROUPS)
  assert attribute_groups.GROUP["Image Model"] == "camera model"
  assert attribute_groups.GROUP["EXIF FNumber"] == "lens and exposure"
  assert attribute_groups.GROUP["EXIF WhiteBalance"] == "processing"
  assert attribute_groups.GROUP["jpeg_quality"] == "JPEG"
  assert attribute_groups.GROUP["GPS GPSLongitude"] == "date, GPS and other"


def test_plain_names_drop_the_tag_spelling():
  names = {name: attribute_groups.plain_name(name) for name in exif_attrs.ATTRIBUTES}
  assert names["EXIF ExposureTime"] == "exposure time"
  assert names["GPS GPSLongitude"] == "GPS longitude"
  assert names["EXIF FNumber"] == "f-number"
  assert names["jpeg_quality"] == "JPEG quality"
  assert all(name and " " not in name[:1] and "_" not in name for name in names.values())


def test_only_attributes_told_apart_on_held_out_cameras_are_shown():
  validation = {"attributes": {"Image Model": {"auc": 0.8}, "EXIF FNumber": {"auc": 0.55},
                               "GPS GPSLongitude": {"auc": 0.549}, "virtual_noise": {"auc": 0.9}}}
  told = attribute_groups.told_apart(validation)
  assert told == ("EXIF FNumber", "Image Model")  # Attribute order; no virtual components.
  assert attribute_groups.told_apart(None) == ()
  assert list(attribute_groups.by_group(told)) == ["camera model", "lens and exposure"]
