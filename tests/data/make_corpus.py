"""Rebuilds the test corpus in this folder from the full photo set (shared/data).

Only redistributable sources are used: thorsted/digicam_corpus (CC0 1.0) and
drewnoakes/metadata-extractor-images ("free to use however you wish"). Camera photos are
lossless `jpegtran -copy all -crop` cuts on the 16-px MCU grid, so their EXIF, quantisation
tables and DCT coefficients are the camera's. Edge cases and the splice are made here from
those photos. Deterministic for fixed jpegtran and Pillow versions.

  python tests/data/make_corpus.py --shared ../shared/data
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import io
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import exifread
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # The repository, for eval.data.synth_splices.
from eval.data import synth_splices  # pylint: disable=g-import-not-at-top,wrong-import-position

FIELDS = ("file", "source_repo", "source_path", "license", "make", "model", "width", "height",
          "notes", "sha256")
FOLDERS = ("photos", "camera", "edge", "tampered")
FREE_SOURCES = ("thorsted/digicam_corpus", "drewnoakes/metadata-extractor-images")
# Camera ids (exif_attrs.camera_id). data_prep --val_fraction=0.25 holds out the last three
# (chosen by hash); their makes also occur among the training cameras.
CAMERAS = (
    "appleiphonexr", "canoncanoneosdigitalrebelxt", "canoncanonpowershotg2",
    "eastmankodakcompanykodakdc280zoomdigitalcamera", "hewlett-packardphotosmartm425",
    "nikone4300", "pentaxcorporationpentax*istdl", "sonycybershot",
    "canoncanonpowershots40", "hewlett-packardphotosmartm627", "nikone995")
PER_CAMERA = 3
PHOTO_CROP = (512, 384)  # Landscape width x height; portrait sources get 384 x 512.
CAMERA_CROP = (640, 480)  # The one-per-manufacturer photos are cut to at most this.
MCU = 16
PROGRESSIVE = "fixtures/edge/progressive_sony_dsc-p12.jpg"  # Kept as is (43 KB).
GPS_PHOTO = "nikoncorporationnikond3100"  # Its photos carry a GPS IFD.
_SOFTWARE, _DATETIME = 0x0131, 0x0132


def manifest(shared: pathlib.Path, folder: str) -> list[dict[str, str]]:
  with open(shared / folder / "MANIFEST.csv", newline="") as f:
    return list(csv.DictReader(f))


def camera_of(row: dict[str, str]) -> str:
  return (row["make"] + row["model"]).replace(" ", "").lower()


def jpegtran_crop(source: pathlib.Path, target: pathlib.Path, size: tuple[int, int]) -> str:
  """Cuts a centred `size` (clipped to the photo) on the MCU grid; returns the geometry."""
  with Image.open(source) as image:
    width, height = image.size
  w, h = min(size[0], width), min(size[1], height)
  x, y = MCU * ((width - w) // 2 // MCU), MCU * ((height - h) // 2 // MCU)
  geometry = f"{w}x{h}+{x}+{y}"
  subprocess.run(["jpegtran", "-copy", "all", "-crop", geometry, "-outfile", str(target),
                  str(source)], check=True)
  with Image.open(target) as image:
    assert image.size == (w, h), (source, image.size, geometry)
  return geometry


def describe(out: pathlib.Path, path: pathlib.Path, source: dict[str, str],
             notes: str) -> dict[str, str]:
  """A manifest row for `path` (exifread printable Make/Model, Pillow's pixel size)."""
  data = path.read_bytes()
  tags = exifread.process_file(io.BytesIO(data), details=False, debug=False)
  try:
    with Image.open(io.BytesIO(data)) as image:
      width, height = image.size
  except OSError:
    width = height = ""
  return {"file": str(path.relative_to(out)), "source_repo": source["source_repo"],
          "source_path": source["source_path"], "license": source["license"],
          "make": str(tags.get("Image Make", "")).strip(),
          "model": str(tags.get("Image Model", "")).strip(), "width": width, "height": height,
          "notes": notes, "sha256": hashlib.sha256(data).hexdigest()}


def build_photos(shared: pathlib.Path, out: pathlib.Path) -> list[dict[str, str]]:
  """PER_CAMERA photos of each of CAMERAS: the smallest ones that hold a whole PHOTO_CROP."""
  by_camera = collections.defaultdict(list)
  for row in manifest(shared, "photos"):
    w, h = int(row["width"]), int(row["height"])
    if row["source_repo"] in FREE_SOURCES and min(w, h) >= min(PHOTO_CROP) and max(w, h) >= max(
        PHOTO_CROP):
      by_camera[camera_of(row)].append(row)
  rows = []
  for camera in CAMERAS:
    chosen = sorted(by_camera[camera], key=lambda r: (int(r["width"]) * int(r["height"]),
                                                      r["file"]))[:PER_CAMERA]
    assert len(chosen) == PER_CAMERA, camera
    for row in chosen:
      source = shared / row["file"]
      landscape = int(row["width"]) >= int(row["height"])
      target = out / "photos" / re.sub(r"[^A-Za-z0-9._-]+", "_", source.name)
      geometry = jpegtran_crop(source, target, PHOTO_CROP if landscape else PHOTO_CROP[::-1])
      rows.append(describe(out, target, row, f"derived: lossless jpegtran crop {geometry} of "
                           f"shared/data/{row['file']}"))
  return rows


def build_camera(shared: pathlib.Path, out: pathlib.Path) -> list[dict[str, str]]:
  """The one-per-manufacturer camera photos of fixtures/camera, cut to at most CAMERA_CROP."""
  rows = []
  for row in manifest(shared, "fixtures"):
    if not row["file"].startswith("fixtures/camera/"):
      continue
    source, target = shared / row["file"], out / "camera" / pathlib.Path(row["file"]).name
    landscape = int(row["width"]) >= int(row["height"])
    geometry = jpegtran_crop(source, target, CAMERA_CROP if landscape else CAMERA_CROP[::-1])
    kept = geometry.endswith("+0+0") and geometry.startswith(f"{row['width']}x{row['height']}")
    notes = (f"copy of shared/data/{row['file']}" if kept else
             f"derived: lossless jpegtran crop {geometry} of shared/data/{row['file']}")
    if kept:
      shutil.copyfile(source, target)  # The camera's own bytes, not jpegtran's re-coding.
    rows.append(describe(out, target, row, notes))
  return rows


def _without_app_segments(jpeg: bytes, *segments: bytes) -> bytes:
  """The JPEG with its APPn and COM segments (JFIF, EXIF...) replaced by `segments`."""
  at = 2
  while 0xE0 <= jpeg[at + 1] <= 0xEF or jpeg[at + 1] == 0xFE:
    at += 2 + int.from_bytes(jpeg[at + 2:at + 4], "big")
  return jpeg[:2] + b"".join(segments) + jpeg[at:]


def _jpeg(image: Image.Image, **options) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format="JPEG", quality=90, **options)
  return buffer.getvalue()


def _edge_files(photo: Image.Image, edge: pathlib.Path) -> dict[str, str]:
  """Writes the edge cases made from `photo`; returns file name -> notes."""
  small = photo.resize((192, 144))
  camera_exif = photo.getexif()
  no_camera = Image.Exif()
  no_camera.update({_SOFTWARE: "ExampleEditor 1.0", _DATETIME: "2010:01:01 12:00:00"})
  (edge / "no_exif_minimal.jpg").write_bytes(_without_app_segments(_jpeg(photo.resize((8, 8)))))
  xmp = (b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta xmlns:x='adobe:ns:meta/'>"
         b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'/></x:xmpmeta>")
  app1 = b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp
  (edge / "app1_xmp_not_exif.jpg").write_bytes(_without_app_segments(_jpeg(small), app1))
  (edge / "exif_without_make_model.jpg").write_bytes(_jpeg(small, exif=no_camera))
  tiny = photo.resize((16, 16))
  tiny.save(edge / "mpo_two_frames_16x16.jpg", format="MPO", save_all=True,
            append_images=[tiny.transpose(Image.Transpose.FLIP_LEFT_RIGHT)], exif=camera_exif)
  photo.resize((16, 16)).convert("1").save(edge / "png_no_exif.png")
  photo.resize((160, 120)).save(edge / "tiff_with_exif.tif", exif=camera_exif)
  small.convert("CMYK").save(edge / "cmyk_progressive.jpg", progressive=True, exif=no_camera)
  (edge / "corrupt_unreadable.jpg").write_bytes(_jpeg(small, exif=camera_exif)[:360])
  return {
      "no_exif_minimal.jpg": "8x8 baseline JPEG with no APPn segment at all",
      "app1_xmp_not_exif.jpg": "192x144; its only APP1 segment holds XMP, not EXIF",
      "exif_without_make_model.jpg": "192x144; EXIF with Software and DateTime, no Make/Model",
      "mpo_two_frames_16x16.jpg": "16x16 MPO with two frames and the camera's EXIF",
      "png_no_exif.png": "16x16 1-bit PNG, no EXIF",
      "tiff_with_exif.tif": "160x120 TIFF carrying the camera's EXIF",
      "cmyk_progressive.jpg": "192x144 CMYK progressive JPEG; EXIF without Make/Model",
      "corrupt_unreadable.jpg": "the first 360 bytes of a JPEG: cut inside its EXIF segment",
  }


def build_edge(shared: pathlib.Path, out: pathlib.Path,
               photo_row: dict[str, str]) -> list[dict[str, str]]:
  """Unusual and broken files made from one corpus photo, plus one progressive camera JPEG."""
  gps_row = min((r for r in manifest(shared, "photos") if camera_of(r) == GPS_PHOTO
                 and r["source_repo"] in FREE_SOURCES), key=lambda r: r["file"])
  with Image.open(out / photo_row["file"]) as photo:
    notes = _edge_files(photo.convert("RGB"), out / "edge")
  rows = [describe(out, out / "edge" / name, photo_row,
                   f"derived: {note}; made from {photo_row['file']}")
          for name, note in notes.items()]
  target = out / "edge" / "gps_tiny_120x80.jpg"
  geometry = jpegtran_crop(shared / gps_row["file"], target, (120, 80))
  rows.append(describe(out, target, gps_row, f"derived: lossless jpegtran crop {geometry} "
                       f"(smaller than one 128 px patch) of shared/data/{gps_row['file']}, "
                       "keeping its GPS IFD"))
  source = next(r for r in manifest(shared, "fixtures") if r["file"] == PROGRESSIVE)
  target = out / "edge" / pathlib.Path(PROGRESSIVE).name
  shutil.copyfile(shared / PROGRESSIVE, target)
  rows.append(describe(out, target, source, f"copy of shared/data/{PROGRESSIVE}: "
                       "progressive camera JPEG with full EXIF"))
  return rows


def build_tampered(out: pathlib.Path, photo_rows: list[dict[str, str]]
                   ) -> list[dict[str, str]]:
  """A 224x224 splice between two camera models with its exact mask and untouched host."""
  by_camera = {}
  for row in photo_rows:
    by_camera.setdefault(camera_of(row), row)
  pair = [by_camera["canoncanonpowershotg2"], by_camera["nikone995"]]
  with tempfile.TemporaryDirectory() as scratch:
    for seed in range(100):
      made = pathlib.Path(scratch) / str(seed)
      (row,) = synth_splices.make_splices([out / r["file"] for r in pair], made, num_spliced=1,
                                          num_authentic=0, seed=seed, max_size=224)
      if float(row["spliced_fraction"]) >= 0.2:
        break
    host = pathlib.Path(row["host_source"])
    y, x, h, w = (int(row[k]) for k in ("crop_y", "crop_x", "height", "width"))
    with Image.open(host) as image:
      image.convert("RGB").crop((x, y, x + w, y + h)).save(out / "tampered" / "original.png")
    shutil.copyfile(made / "images" / "spliced_00000.png", out / "tampered" / "spliced.png")
    shutil.copyfile(made / "masks" / "spliced_00000.png", out / "tampered" / "mask.png")
  host_row = next(r for r in pair if out / r["file"] == host)
  donor_row = next(r for r in pair if r is not host_row)
  region = "{region_w}x{region_h}+{region_x}+{region_y}".format(**row)
  source = {key: " + ".join(dict.fromkeys(r[key] for r in (host_row, donor_row)))
            for key in ("source_repo", "source_path", "license")}
  made_by = (f"eval.data.synth_splices seed {seed}: a {row['shape']} of {donor_row['file']} "
             f"pasted at {region} onto {host_row['file']} crop "
             f"{w}x{h}+{x}+{y}")
  return [
      describe(out, out / "tampered" / "spliced.png", source, f"derived: {made_by}"),
      describe(out, out / "tampered" / "mask.png", source,
               f"derived: 255 = pasted from the donor, {float(row['spliced_fraction']):.1%}"),
      describe(out, out / "tampered" / "original.png", {**source, **{
          k: host_row[k] for k in ("source_repo", "source_path", "license")}},
               f"derived: the untouched host crop {w}x{h}+{x}+{y} of {host_row['file']}"),
  ]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shared", type=pathlib.Path, default=HERE.parents[2] / "shared" / "data",
                      help="the full photo set (its photos/ and fixtures/ folders)")
  shared = parser.parse_args().shared
  for folder in FOLDERS:
    shutil.rmtree(HERE / folder, ignore_errors=True)
    (HERE / folder).mkdir()
  photos = build_photos(shared, HERE)
  rows = photos + build_camera(shared, HERE)
  rows += build_edge(shared, HERE, photos[0])
  rows += build_tampered(HERE, photos)
  with open(HERE / "MANIFEST.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
  total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
  print(f"{HERE}: {len(rows)} files, {total / 1e6:.1f} MB in all")


if __name__ == "__main__":
  main()
