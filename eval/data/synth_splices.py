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
  OUT/manifest.csv        sources, cameras, crop, region and spliced fraction of every image,
                          written once every image is
  OUT/plan.json           the settings and every image's manifest row, drawn before any pixel
                          is read: the same command resumes an interrupted run, keeping each
                          image whose row it draws again and making the rest

Evaluation must use cameras held out of training: restrict the inputs with --cameras,
--exclude_cameras or --cameras_from DATASET/dataset_info.json --split val.

  python -m eval.data.synth_splices --photos DIR --out DIR --num_spliced N --num_authentic M \
      --seed S

The set is drawn from the photos, not made of each: photos that cannot be used (data_prep's
rules: unreadable, truncated, no camera in EXIF, not RGB, under 128 px) are named on stderr
and left out, and the set is made from the others (exit status 1).
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
from PIL import Image
from PIL import ImageDraw

from data_prep import photos as photo_inputs
from eval.data import image_io
from exif_jax.cli import command
from exif_jax.data import files

SHAPES = ("rectangle", "ellipse", "polygon")
_FILL = {"rectangle": 1.0, "ellipse": math.pi / 4}  # Area of the shape / area of its box.
MIN_FRACTION, MAX_FRACTION = 0.05, 0.30
CROP_GRID = 16  # JPEG MCU size with 4:2:0 chroma subsampling.
MAX_TRIES = 100  # Donors drawn before giving up on a host (all of them too small).
PLAN = "plan.json"
_CHECK_ONLY = photo_inputs.PrepOptions(patches_per_photo=0)  # Decoded whole, no crops kept.
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
  """Camera ids of one split of a data_prep dataset_info.json (splits.<split>.cameras);
  ValueError naming the file when it is not one."""
  shown = files.display_name(path)
  try:
    splits = json.loads(pathlib.Path(path).read_text())["splits"]
    cameras = {name: list(s["cameras"]) for name, s in splits.items()}
  except OSError as e:
    raise ValueError(f"--cameras_from {shown}: {e.strerror or e}") from None
  except (UnicodeDecodeError, json.JSONDecodeError):
    raise ValueError(f"--cameras_from {shown}: not JSON") from None
  except (KeyError, TypeError, AttributeError):
    raise ValueError(f"--cameras_from {shown}: not a data_prep dataset_info.json (no "
                     "splits.<split>.cameras)") from None
  if split not in cameras:
    raise ValueError(f"--cameras_from {shown}: no split {split!r}; it has "
                     f"{', '.join(sorted(cameras))}")
  return cameras[split]


def list_sources(photos: os.PathLike | str | Sequence[os.PathLike | str], *,
                 cameras: Sequence[str] | None = None, exclude_cameras: Sequence[str] = ()
                 ) -> tuple[list[Source], list[photo_inputs.Skipped]]:
  """Photos (a folder, a list file, or paths) usable as hosts and donors, in input order, and
  the photos skipped, each named in a warning line.

  A photo is skipped when data_prep would skip it (photo_inputs.load_photo: unreadable,
  truncated, no Make/Model in EXIF, not RGB, under one 128 px patch); it is decoded whole
  here, so none fails once splicing has begun. Photos of cameras filtered out are no skips.
  """
  if isinstance(photos, (str, os.PathLike)):
    paths = photo_inputs.list_inputs(os.fspath(photos))
  else:
    paths = [os.fspath(p) for p in photos]
  keep = None if cameras is None else {normalize_camera(c) for c in cameras}
  drop = {normalize_camera(c) for c in exclude_cameras}
  sources, skipped = [], []
  for path in paths:
    source = _read_source(path)
    if isinstance(source, photo_inputs.Skipped):
      logging.warning("skipped %s: %s", source.source, source.reason)
      skipped.append(source)
    elif (keep is None or source.is_one_of(keep)) and not source.is_one_of(drop):
      sources.append(source)
  return sources, skipped


def _read_source(path: str) -> Source | photo_inputs.Skipped:
  """The photo's Source, or why it cannot be one."""
  photo = photo_inputs.load_photo(path, _CHECK_ONLY)
  if isinstance(photo, photo_inputs.Skipped):
    return photo
  record = photo.record
  return Source(path, record["camera"], normalize_camera(record["model"]), record["height"],
                record["width"])


@dataclasses.dataclass(frozen=True)
class Splices:
  """What make_splices wrote: every image's manifest row, and the photos it skipped."""
  rows: list[dict[str, object]]
  skipped: list[photo_inputs.Skipped]


@dataclasses.dataclass(frozen=True)
class _Planned:
  """One image as drawn, before any pixel is read: its manifest row and what makes it."""
  row: dict[str, object]
  host: Source
  donor: Source | None = None
  region: Region | None = None


def make_splices(photos: os.PathLike | str | Sequence[os.PathLike | str],
                 out_dir: os.PathLike | str, *, num_spliced: int, num_authentic: int,
                 seed: int, max_size: int = 1024, cameras: Sequence[str] | None = None,
                 exclude_cameras: Sequence[str] = ()) -> Splices:
  """Writes the splices, authentic images and manifest.csv to out_dir; returns what it wrote.

  Deterministic in (inputs, seed, max_size). Hosts are drawn without repeats until every
  photo has been used once. out_dir must be new, empty, or one an earlier call with the same
  settings was writing: its images whose manifest row is drawn again are kept (so the same
  command resumes), the others are made again, and no stale image joins the set.
  ValueError (FileExistsError for an out_dir of other settings) before anything is written.
  """
  files.check_out_folder(os.fspath(out_dir))
  if not num_spliced + num_authentic:
    raise ValueError("nothing to make: --num_spliced and --num_authentic are both 0")
  out = pathlib.Path(out_dir)
  settings = {"seed": seed, "max_size": max_size, "num_spliced": num_spliced,
              "num_authentic": num_authentic,
              "cameras": None if cameras is None else sorted(map(normalize_camera, cameras)),
              "exclude_cameras": sorted(map(normalize_camera, exclude_cameras))}
  earlier = _earlier_rows(out, settings)
  sources, skipped = list_sources(photos, cameras=cameras, exclude_cameras=exclude_cameras)
  if not sources:
    raise ValueError(f"{photos}: no usable photo (after the camera filters)")
  if num_spliced and len({s.camera for s in sources}) < 2:
    raise ValueError(f"{photos}: splicing needs photos of 2 camera models or more; "
                     f"found only {sources[0].camera!r}")
  planned = _plan(np.random.default_rng(seed), sources, num_spliced, num_authentic, max_size)
  rows = [p.row for p in planned]
  (out / "images").mkdir(parents=True, exist_ok=True)
  (out / "masks").mkdir(exist_ok=True)
  for i, row in enumerate(rows):
    if i >= len(earlier) or earlier[i] != row:
      _image_path(out, row["stem"]).unlink(missing_ok=True)
  files.write_json(out / PLAN, {"settings": settings, "rows": rows})
  for image in planned:
    if not _image_path(out, image.row["stem"]).exists():
      _render(image, out)
  manifest = io.StringIO(newline="")
  writer = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS)
  writer.writeheader()
  writer.writerows(rows)
  files.write_atomic(out / "manifest.csv", manifest.getvalue())
  return Splices(rows, skipped)


def _image_path(out: pathlib.Path, stem: str) -> pathlib.Path:
  """Written last of an image's files (after its mask), so its presence means the image is."""
  return out / "images" / f"{stem}.png"


def _earlier_rows(out: pathlib.Path, settings: dict[str, object]) -> list[dict[str, object]]:
  """The rows an earlier call drew into `out` with these settings; [] for a new or empty out.
  FileExistsError for any other folder, so no image of another set is kept."""
  if not out.is_dir() or not any(out.iterdir()):
    return []
  plan = out / PLAN
  shown = files.display_name(out)
  if not plan.is_file():
    raise FileExistsError(f"{shown}: not empty and not made by synth; give a new folder")
  try:
    earlier = json.loads(plan.read_text())
    changes = files.settings_changes(earlier["settings"], settings)
    rows = list(earlier["rows"])
  except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
    raise FileExistsError(f"{files.display_name(plan)}: not a plan synth wrote; give a new "
                          "folder or delete it") from None
  if changes:
    raise FileExistsError(f"{shown} holds images made with other settings ({changes}); give "
                          "a new folder or delete it")
  return rows


def _plan(rng: np.random.Generator, sources: list[Source], num_spliced: int,
          num_authentic: int, max_size: int) -> list[_Planned]:
  """Every image, drawn from sizes and cameras alone; ValueError when a host has no donor."""
  hosts = _host_order(rng, len(sources))
  planned = [_plan_splice(rng, sources[next(hosts)], sources, f"spliced_{i:05d}", max_size)
             for i in range(num_spliced)]
  return planned + [_plan_authentic(rng, sources[next(hosts)], f"authentic_{i:05d}", max_size)
                    for i in range(num_authentic)]


def _host_order(rng: np.random.Generator, n: int) -> Iterator[int]:
  while True:
    yield from (int(i) for i in rng.permutation(n))


def _decode(source: Source) -> np.ndarray:
  """The photo's pixels; ValueError if it changed since it was listed (the rerun resumes)."""
  try:
    return image_io.load_image(source.path)
  except ValueError as e:
    raise ValueError(f"{files.display_name(source.path)}: {e} (it changed while synth ran; "
                     "rerun the same command to resume)") from None


def _host_crop(rng: np.random.Generator, source: Source, max_size: int) -> dict[str, object]:
  """The manifest fields of a crop of at most max_size x max_size on the MCU grid."""
  height, width = min(source.height, max_size), min(source.width, max_size)
  y = CROP_GRID * int(rng.integers(0, (source.height - height) // CROP_GRID + 1))
  x = CROP_GRID * int(rng.integers(0, (source.width - width) // CROP_GRID + 1))
  return {"host_source": files.display_name(source.path), "host_camera": source.camera,
          "crop_y": y, "crop_x": x, "height": height, "width": width}


def _plan_authentic(rng: np.random.Generator, host: Source, stem: str, max_size: int
                    ) -> _Planned:
  fields = _host_crop(rng, host, max_size)
  return _Planned({"stem": stem, "spliced": 0, **fields, "spliced_fraction": 0.0}, host)


def _plan_splice(rng: np.random.Generator, host: Source, sources: list[Source], stem: str,
                 max_size: int) -> _Planned:
  fields = _host_crop(rng, host, max_size)
  donors = [s for s in sources if not s.same_model(host)]
  if not donors:
    raise ValueError(f"{files.display_name(host.path)}: no photo of another camera model to "
                     "splice in")
  for _ in range(MAX_TRIES):
    donor = donors[int(rng.integers(len(donors)))]
    region = _draw_region(rng, (fields["height"], fields["width"]), (donor.height, donor.width))
    if region is not None:
      break
  else:
    raise ValueError(f"{files.display_name(host.path)}: no donor photo large enough for a "
                     f"{MIN_FRACTION:.0%} region after {MAX_TRIES} tries")
  y, x, h, w = region.box
  dy, dx = region.donor_yx
  fraction = region.mask.sum() / (fields["height"] * fields["width"])
  row = {"stem": stem, "spliced": 1, **fields,
         "donor_source": files.display_name(donor.path), "donor_camera": donor.camera,
         "donor_y": dy, "donor_x": dx, "region_y": y, "region_x": x, "region_h": h,
         "region_w": w, "shape": region.shape, "spliced_fraction": round(float(fraction), 6)}
  return _Planned(row, host, donor, region)


def _render(image: _Planned, out: pathlib.Path) -> None:
  """Writes the image (its mask first), each file whole or not at all."""
  row = image.row
  y, x, h, w = (row[k] for k in ("crop_y", "crop_x", "height", "width"))
  canvas = _decode(image.host)[y:y + h, x:x + w].copy()
  if image.region is not None:
    y, x, h, w = image.region.box
    dy, dx = image.region.donor_yx
    patch = _decode(image.donor)[dy:dy + h, dx:dx + w]
    canvas[y:y + h, x:x + w][image.region.mask] = patch[image.region.mask]
    mask = np.zeros(canvas.shape[:2], bool)
    mask[y:y + h, x:x + w] = image.region.mask
    _write_png(out / "masks" / f"{row['stem']}.png", mask.astype(np.uint8) * 255)
  _write_png(_image_path(out, row["stem"]), canvas)


def _write_png(path: pathlib.Path, pixels: np.ndarray) -> None:
  with files.atomic_file(path) as f:
    Image.fromarray(pixels).save(f, format="PNG")


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
_OUT = flags.DEFINE_string(
    "out", None, "New output folder, or the one an interrupted run of the same command left.",
    required=True)
_NUM_SPLICED = flags.DEFINE_integer("num_spliced", 100, "Spliced images to make.",
                                    lower_bound=0)
_NUM_AUTHENTIC = flags.DEFINE_integer("num_authentic", 100, "Authentic images to write.",
                                      lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Random seed; the output is a function of it.")
_MAX_SIZE = flags.DEFINE_integer(
    "max_size", 1024, "Larger photos are cropped (never resampled) to at most this many pixels "
    f"per side; at least {photo_inputs.MIN_SIDE}, one patch (the smallest photo used).",
    lower_bound=photo_inputs.MIN_SIDE)
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
    made = make_splices(
        _PHOTOS.value, _OUT.value, num_spliced=_NUM_SPLICED.value,
        num_authentic=_NUM_AUTHENTIC.value, seed=_SEED.value, max_size=_MAX_SIZE.value,
        cameras=cameras, exclude_cameras=_EXCLUDE_CAMERAS.value)
  except (FileNotFoundError, FileExistsError, ValueError) as e:  # Too few usable photos, ...
    raise command.NothingDone(str(e)) from None
  used = {row[key] for row in made.rows for key in ("host_camera", "donor_camera") if key in row}
  print(f"{files.display_name(_OUT.value)}: {_NUM_SPLICED.value} spliced and "
        f"{_NUM_AUTHENTIC.value} authentic images from {len(used)} camera models (sources in "
        f"manifest.csv), {len(made.skipped)} photos skipped")
  return command.exit_status(len(made.rows), len(made.skipped))


if __name__ == "__main__":
  command.run(main)
