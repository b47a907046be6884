"""Columbia-like synthetic splices between photos of different camera models, exact masks.

For each splice a host photo and a donor photo whose EXIF camera model (Make + Model) differs
are drawn; a region of the donor (rectangle, ellipse or polygon covering 5-30% of the host)
is pasted at a random place. Authentic images are host photos left untouched. Everything is
written losslessly as PNG so the camera traces of both sources survive (no re-JPEG), and
large photos are cut down by cropping, never resampling, which would erase those traces.
Crops start on the 16-pixel JPEG MCU grid, so block artifacts keep the phase they had in the
camera's file. Pixels are used as stored (EXIF orientation is not applied).

Output, the layout `eval.data.datasets.load("folder", OUT)` reads:
  OUT/images/<stem>.png   spliced_<n> or authentic_<n>
  OUT/masks/<stem>.png    spliced images only: 255 = pasted from the donor, 0 = host
  OUT/manifest.csv        sources, cameras, crop, region and spliced fraction of every image

Evaluation must use cameras held out of training: restrict the inputs with --cameras,
--exclude_cameras or --cameras_from DATASET/dataset_info.json --split val.

  python -m eval.data.synth_splices --photos DIR --out DIR --num_spliced N --num_authentic M --seed S

The set is drawn from the photos, not made of each: photos that cannot be used are named on
stderr and left out with exit status 0, as long as the set can be made from the others.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
import re
from typing import Iterator, Sequence

import numpy as np
from absl import app
from absl import flags
from absl import logging
from etils import epath
from PIL import Image
from PIL import ImageDraw

from data_prep import photos as photo_inputs
from exif_jax.cli import command
from exif_jax.data import exif_attrs
from exif_jax.data import files

SHAPES = ("rectangle", "ellipse", "polygon")
_FILL = {"rectangle": 1.0, "ellipse": math.pi / 4}  # Area of the shape / area of its box.
MIN_FRACTION, MAX_FRACTION = 0.05, 0.30
CROP_GRID = 16  # JPEG MCU size with 4:2:0 chroma subsampling.
MAX_TRIES = 100  # Donors drawn before giving up on a host (all of them too small).
MANIFEST_FIELDS = (
    "stem", "spliced", "host_source", "host_camera", "crop_y", "crop_x", "height", "width",
    "donor_source", "donor_camera", "donor_y", "donor_x", "region_y", "region_x", "region_h",
    "region_w", "shape", "spliced_fraction")


@dataclasses.dataclass(frozen=True)
class Source:
  """A usable photo: path, camera id (exif_attrs.camera_id), normalised Model, pixel size."""
  path: str
  camera: str
  model: str
  height: int
  width: int

  def is_one_of(self, names: set[str]) -> bool:
    """Whether normalised `names` hold its Make+Model or, as data_prep's splits accept, Model."""
    return self.camera in names or self.model in names

  def same_model(self, other: Source) -> bool:
    """Same camera id, or the same Model under Make spellings ("NIKON", "NIKON CORPORATION")."""
    return self.camera == other.camera or bool(self.model) and self.model == other.model


@dataclasses.dataclass(frozen=True)
class Region:
  """Where a donor region goes: box (y, x, h, w) in the output, its donor corner, its shape."""
  shape: str
  box: tuple[int, int, int, int]
  donor_yx: tuple[int, int]
  mask: np.ndarray  # bool [h, w], True = taken from the donor.


def normalize_camera(name: str) -> str:
  """The camera_id form of a user-given name ("Canon EOS 20D" -> "canoneos20d")."""
  return re.sub(r"\s+", "", name).lower()


def cameras_from_info(path: os.PathLike | str, split: str) -> list[str]:
  """Camera ids of one split of a data_prep dataset_info.json (splits.<split>.cameras)."""
  splits = json.loads(epath.Path(path).read_text())["splits"]
  if split not in splits:
    raise ValueError(f"{path}: no split {split!r}; it has {', '.join(sorted(splits))}")
  return list(splits[split]["cameras"])


def list_sources(photos: os.PathLike | str | Sequence[os.PathLike | str], *,
                 cameras: Sequence[str] | None = None,
                 exclude_cameras: Sequence[str] = ()) -> list[Source]:
  """Photos (a folder, a list file, or paths) usable as hosts and donors, in input order.

  A photo is skipped, with a log line, when it is unreadable, has no Make/Model in EXIF, is
  not RGB or is smaller than one 128 px patch, or when its camera is filtered out.
  """
  if isinstance(photos, (str, os.PathLike)):
    paths = photo_inputs.list_inputs(os.fspath(photos))
  else:
    paths = [os.fspath(p) for p in photos]
  keep = None if cameras is None else {normalize_camera(c) for c in cameras}
  drop = {normalize_camera(c) for c in exclude_cameras}
  sources = []
  for path in paths:
    source = _read_source(path)
    if isinstance(source, str):
      logging.info("skipping %s: %s", files.display_name(path), source)
    elif (keep is None or source.is_one_of(keep)) and not source.is_one_of(drop):
      sources.append(source)
  return sources


def _read_source(path: str) -> Source | str:
  """The photo's Source, or why it cannot be one."""
  try:
    data = photo_inputs.read_file(path, files.MAX_PIXELS)
  except ValueError as e:
    return str(e)
  try:
    exif = exif_attrs.read_exif(data)
    with Image.open(io.BytesIO(data)) as image:
      mode, (width, height) = image.mode, image.size
  except Exception as e:  # pylint: disable=broad-except  # Pillow and exifread raise many types.
    return f"unreadable: {type(e).__name__}: {e}"
  camera = exif_attrs.camera_id(exif)
  if not camera:
    return "no camera Make or Model in EXIF"
  if mode != "RGB":
    return f"{mode} pixels, not RGB"
  if min(width, height) < photo_inputs.MIN_SIDE:
    return f"smaller than {photo_inputs.MIN_SIDE} px: {width}x{height}"
  return Source(path, camera, normalize_camera(exif.get("Image Model", "")), height, width)


def make_splices(photos: os.PathLike | str | Sequence[os.PathLike | str],
                 out_dir: os.PathLike | str, *, num_spliced: int, num_authentic: int,
                 seed: int, max_size: int = 1024, cameras: Sequence[str] | None = None,
                 exclude_cameras: Sequence[str] = ()) -> list[dict[str, object]]:
  """Writes the splices, authentic images and manifest.csv to out_dir; returns the rows.

  Deterministic in (inputs, seed, max_size). Hosts are drawn without repeats until every
  photo has been used once; out_dir must be new or empty, so no stale image joins the set.
  """
  sources = list_sources(photos, cameras=cameras, exclude_cameras=exclude_cameras)
  if not sources:
    raise ValueError(f"{photos}: no usable photo (after the camera filters)")
  if num_spliced and len({s.camera for s in sources}) < 2:
    raise ValueError(f"{photos}: splicing needs photos of 2 camera models or more; "
                     f"found only {sources[0].camera!r}")
  out = pathlib.Path(out_dir)
  if out.exists() and any(out.iterdir()):
    raise FileExistsError(f"{out}: not empty; give a new folder")
  (out / "images").mkdir(parents=True)
  (out / "masks").mkdir()
  rng = np.random.default_rng(seed)
  hosts = _host_order(rng, len(sources))
  rows = [_splice(rng, sources[next(hosts)], sources, out, f"spliced_{i:05d}", max_size)
          for i in range(num_spliced)]
  rows += [_authentic(rng, sources[next(hosts)], out, f"authentic_{i:05d}", max_size)
           for i in range(num_authentic)]
  with open(out / "manifest.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
  return rows


def _host_order(rng: np.random.Generator, n: int) -> Iterator[int]:
  while True:
    yield from (int(i) for i in rng.permutation(n))


def _decode(source: Source) -> np.ndarray:
  with Image.open(io.BytesIO(epath.Path(source.path).read_bytes())) as image:
    return np.asarray(image.convert("RGB"))


def _host_crop(rng: np.random.Generator, source: Source, max_size: int
               ) -> tuple[np.ndarray, dict[str, object]]:
  """A crop of at most max_size x max_size on the MCU grid, and its manifest fields."""
  height, width = min(source.height, max_size), min(source.width, max_size)
  y = CROP_GRID * int(rng.integers(0, (source.height - height) // CROP_GRID + 1))
  x = CROP_GRID * int(rng.integers(0, (source.width - width) // CROP_GRID + 1))
  pixels = _decode(source)[y:y + height, x:x + width].copy()
  fields = {"host_source": files.display_name(source.path), "host_camera": source.camera,
            "crop_y": y, "crop_x": x, "height": height, "width": width}
  return pixels, fields


def _authentic(rng: np.random.Generator, host: Source, out: pathlib.Path, stem: str,
               max_size: int) -> dict[str, object]:
  pixels, fields = _host_crop(rng, host, max_size)
  Image.fromarray(pixels).save(out / "images" / f"{stem}.png")
  return {"stem": stem, "spliced": 0, **fields, "spliced_fraction": 0.0}


def _splice(rng: np.random.Generator, host: Source, sources: list[Source], out: pathlib.Path,
            stem: str, max_size: int) -> dict[str, object]:
  canvas, fields = _host_crop(rng, host, max_size)
  donors = [s for s in sources if not s.same_model(host)]
  if not donors:
    raise ValueError(f"{host.path}: no photo of another camera model to splice in")
  for _ in range(MAX_TRIES):
    donor = donors[int(rng.integers(len(donors)))]
    region = _draw_region(rng, canvas.shape[:2], (donor.height, donor.width))
    if region is not None:
      break
  else:
    raise ValueError(f"{host.path}: no donor photo large enough for a "
                     f"{MIN_FRACTION:.0%} region after {MAX_TRIES} tries")
  y, x, h, w = region.box
  dy, dx = region.donor_yx
  patch = _decode(donor)[dy:dy + h, dx:dx + w]
  canvas[y:y + h, x:x + w][region.mask] = patch[region.mask]
  mask = np.zeros(canvas.shape[:2], bool)
  mask[y:y + h, x:x + w] = region.mask
  Image.fromarray(canvas).save(out / "images" / f"{stem}.png")
  Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / f"{stem}.png")
  return {"stem": stem, "spliced": 1, **fields,
          "donor_source": files.display_name(donor.path), "donor_camera": donor.camera,
          "donor_y": dy, "donor_x": dx, "region_y": y, "region_x": x, "region_h": h,
          "region_w": w, "shape": region.shape,
          "spliced_fraction": round(float(mask.mean()), 6)}


def _draw_region(rng: np.random.Generator, host_hw: tuple[int, int],
                 donor_hw: tuple[int, int]) -> Region | None:
  """A random region covering MIN..MAX_FRACTION of the host, or None if the donor is too small.

  The bounding box is sized from the shape's fill ratio so the region itself, not its box,
  hits the drawn fraction; the mask is the rasterised shape, so it is exact by construction.
  """
  shape = SHAPES[int(rng.integers(len(SHAPES)))]
  fraction = rng.uniform(MIN_FRACTION, MAX_FRACTION)
  aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))  # height / width
  vertices = _polygon(rng) if shape == "polygon" else None
  fill = _area(vertices) if vertices is not None else _FILL[shape]
  box_area = fraction * host_hw[0] * host_hw[1] / fill
  h = max(1, min(round(math.sqrt(box_area * aspect)), host_hw[0], donor_hw[0]))
  w = max(1, min(round(box_area / h), host_hw[1], donor_hw[1]))
  mask = _rasterize(shape, h, w, vertices)
  if not MIN_FRACTION <= mask.sum() / (host_hw[0] * host_hw[1]) <= MAX_FRACTION:
    return None
  box = (int(rng.integers(host_hw[0] - h + 1)), int(rng.integers(host_hw[1] - w + 1)), h, w)
  donor_yx = (int(rng.integers(donor_hw[0] - h + 1)), int(rng.integers(donor_hw[1] - w + 1)))
  return Region(shape, box, donor_yx, mask)


def _polygon(rng: np.random.Generator) -> np.ndarray:
  """A star-shaped polygon (so never self-intersecting) in the unit square, [k, 2] as (x, y)."""
  k = int(rng.integers(5, 10))
  angles = np.sort(rng.uniform(0, 2 * np.pi, k))
  radii = rng.uniform(0.5, 1.0, k)
  return 0.5 + 0.5 * np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _area(vertices: np.ndarray) -> float:
  x, y = vertices[:, 0], vertices[:, 1]
  return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _rasterize(shape: str, h: int, w: int, vertices: np.ndarray | None) -> np.ndarray:
  if shape == "rectangle":
    return np.ones((h, w), bool)
  image = Image.new("1", (w, h))
  draw = ImageDraw.Draw(image)
  if shape == "ellipse":
    draw.ellipse((0, 0, w - 1, h - 1), fill=1)
  else:
    draw.polygon([(float(x) * (w - 1), float(y) * (h - 1)) for x, y in vertices], fill=1)
  return np.asarray(image, dtype=bool)


_PHOTOS = flags.DEFINE_string(
    "photos", None, "Folder of photos (searched recursively) or a text file listing paths.",
    required=True)
_OUT = flags.DEFINE_string("out", None, "New output folder.", required=True)
_NUM_SPLICED = flags.DEFINE_integer("num_spliced", 100, "Spliced images to make.")
_NUM_AUTHENTIC = flags.DEFINE_integer("num_authentic", 100, "Authentic images to write.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed; the output is a function of it.")
_MAX_SIZE = flags.DEFINE_integer(
    "max_size", 1024, "Larger photos are cropped (never resampled) to at most this many pixels "
    "per side.")
# Repeated flags, not comma lists: Make strings contain commas ("CASIO COMPUTER CO.,LTD.").
_CAMERAS = flags.DEFINE_multi_string(
    "cameras", None, "Only photos of this camera model (Make+Model or Model, e.g. 'Canon EOS "
    "20D').")
_EXCLUDE_CAMERAS = flags.DEFINE_multi_string(
    "exclude_cameras", [], "Never photos of this camera model.")
_CAMERAS_FROM = flags.DEFINE_string(
    "cameras_from", None, "A data_prep dataset_info.json: only photos of the cameras of --split "
    "(added to --cameras).")
_SPLIT = flags.DEFINE_string("split", "val", "The split of --cameras_from whose cameras to use.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cameras = _CAMERAS.value
  try:
    if _CAMERAS_FROM.value:
      cameras = (cameras or []) + cameras_from_info(_CAMERAS_FROM.value, _SPLIT.value)
    rows = make_splices(
        _PHOTOS.value, _OUT.value, num_spliced=_NUM_SPLICED.value,
        num_authentic=_NUM_AUTHENTIC.value, seed=_SEED.value, max_size=_MAX_SIZE.value,
        cameras=cameras, exclude_cameras=_EXCLUDE_CAMERAS.value)
  except (FileNotFoundError, FileExistsError, ValueError) as e:  # Too few usable photos, ...
    raise command.NothingDone(str(e)) from None
  used = {row[key] for row in rows for key in ("host_camera", "donor_camera") if key in row}
  print(f"{_OUT.value}: {_NUM_SPLICED.value} spliced and {_NUM_AUTHENTIC.value} authentic "
        f"images from {len(used)} camera models (sources in manifest.csv)")


if __name__ == "__main__":
  command.run(main)
