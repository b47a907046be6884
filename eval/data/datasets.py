"""Splice benchmarks read from the folder a user downloaded, laid out as each official release.

None of the benchmarks can be downloaded here (licences, request forms), so each loader reads
a release as it unpacks and documents that layout in its docstring; the TFDS builders in
`eval.data.tfds_builders` show the same text as their manual-download instructions.

Every loader returns `Example`s sorted by stem. Stems are unique within a benchmark, so they
can name output files (`maps/<name>.npy`, name = eval.runs.results.storage_name(stem)). Masks
are read lazily, one file per access, so listing a benchmark decodes nothing; `mask` is a bool
HxW array, True = spliced, or None for an authentic image (nothing spliced, no mask file).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import pathlib
from typing import Callable

import numpy as np
from PIL import Image

from eval.data import image_io
from exif_jax.data import files

MaskRule = Callable[[Image.Image], np.ndarray]
Loader = Callable[[os.PathLike | str], list["Example"]]
Namer = Callable[[pathlib.Path], str]  # image path -> its stem in the benchmark


class LayoutError(FileNotFoundError):
  """The folder is not laid out as the benchmark's release, or a listed file is missing."""


def white_is_spliced(mask: Image.Image) -> np.ndarray:
  """Binary masks, possibly JPEG or anti-aliased: mid-grey is the robust cut."""
  return np.asarray(mask.convert("L")) >= 128


def black_is_spliced(mask: Image.Image) -> np.ndarray:
  return np.asarray(mask.convert("L")) < 128


def nonzero_is_spliced(mask: Image.Image) -> np.ndarray:
  """Lossless multi-level maps in which every non-black level counts as tampered."""
  return np.asarray(mask.convert("L")) > 0


def green_is_spliced(mask: Image.Image) -> np.ndarray:
  """Columbia edge masks are JPEGs: colours are compared, never matched exactly."""
  rgb = np.asarray(mask.convert("RGB")).astype(np.int16)
  return rgb[..., 1] > rgb[..., 0]


@dataclasses.dataclass(frozen=True)
class Example:
  """One benchmark image; `mask` reads its mask file on each access."""
  stem: str
  image_path: pathlib.Path
  spliced: bool | None  # None: unknown (images given without ground truth).
  mask_path: pathlib.Path | None = None
  mask_rule: MaskRule = dataclasses.field(default=white_is_spliced, repr=False, compare=False)

  @property
  def mask(self) -> np.ndarray | None:
    """Bool HxW, True = spliced; None for an authentic image. ValueError with the reason when
    the mask cannot be read or its size differs from the image's."""
    if self.mask_path is None:
      return None
    try:
      with Image.open(self.mask_path) as mask, Image.open(self.image_path) as image:
        if mask.size != image.size:
          raise ValueError(
              f"{self.mask_path}: mask is {mask.size[0]}x{mask.size[1]} but its image "
              f"{self.image_path} is {image.size[0]}x{image.size[1]}")
        return self.mask_rule(mask)
    except (OSError, SyntaxError) as e:  # Pillow: unidentified, truncated or broken files.
      reason = getattr(e, "strerror", None) or e
      raise ValueError(f"{self.mask_path}: unreadable mask ({reason})") from None

  def load_image(self, max_pixels: int = files.MAX_PIXELS) -> np.ndarray:
    """uint8 HxWx3 pixels as stored (no EXIF rotation: camera traces live in that order)."""
    return image_io.load_image(self.image_path, max_pixels)


def _title(loader: Loader) -> str:
  return inspect.getdoc(loader).splitlines()[0].rstrip(".")


def _root(data_dir: os.PathLike | str, loader: Loader, expected: tuple[str, ...],
          wrappers: tuple[str, ...] = ()) -> pathlib.Path:
  """data_dir, or the archive's top folder inside it, whichever has every `expected` folder.

  `expected` holds glob patterns, so "*/tampered-realistic" accepts any camera folder name.
  """
  data_dir = pathlib.Path(data_dir)
  if not data_dir.is_dir():
    raise LayoutError(f"{data_dir}: no such folder (expected the {_title(loader)})")
  roots = [data_dir, *(data_dir / w for w in wrappers)]
  for root in roots:
    if all(any(p.is_dir() for p in root.glob(pattern)) for pattern in expected):
      return root
  raise LayoutError(
      f"{' or '.join(map(str, roots))}: not laid out as the {_title(loader)}: expected the "
      f"folders {', '.join(expected)} (layout: help(eval.data.datasets.{loader.__name__}))")


def _images(folder: pathlib.Path) -> list[pathlib.Path]:
  """Image files directly in `folder` (any suffix case), sorted; hidden files skipped."""
  if not folder.is_dir():
    return []
  return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                and p.suffix.lower() in files.IMAGE_SUFFIXES)


def _by_stem(paths: list[pathlib.Path]) -> dict[str, pathlib.Path]:
  found: dict[str, pathlib.Path] = {}
  for path in paths:
    if path.stem in found:
      raise LayoutError(f"{path}: same stem as {found[path.stem]}; which one is meant?")
    found[path.stem] = path
  return found


def _own_stem(path: pathlib.Path) -> str:
  return path.stem


def _prefixed(*parts: str) -> Namer:
  return lambda path: "-".join((*parts, path.stem))


def _authentic(paths: list[pathlib.Path], stem: Namer = _own_stem) -> list[Example]:
  return [Example(stem(p), p, spliced=False) for p in paths]


def _spliced(paths: list[pathlib.Path], mask_dir: pathlib.Path, mask_stem: Callable[[str], str],
             rule: MaskRule, stem: Namer = _own_stem) -> list[Example]:
  """Spliced images paired with their masks; a missing mask is a layout error naming both."""
  masks = _by_stem(_images(mask_dir))
  examples = []
  for path in paths:
    mask = masks.get(mask_stem(path.stem))
    if mask is None:
      raise LayoutError(
          f"{path}: spliced image without a mask {mask_dir / mask_stem(path.stem)}.*")
    examples.append(Example(stem(path), path, spliced=True, mask_path=mask, mask_rule=rule))
  return examples


def _same_stem(stem: str) -> str:
  return stem


def _finish(examples: list[Example], root: pathlib.Path, loader: Loader) -> list[Example]:
  """Sorted by stem; an empty benchmark or a repeated stem is an error."""
  if not examples:
    raise LayoutError(f"{root}: no images where the {_title(loader)} keeps them "
                      f"(layout: help(eval.data.datasets.{loader.__name__}))")
  examples.sort(key=lambda e: e.stem)
  for a, b in zip(examples, examples[1:]):
    if a.stem == b.stem:
      raise LayoutError(f"{a.image_path} and {b.image_path} share the stem {a.stem!r}")
  return examples


def columbia(data_dir: os.PathLike | str) -> list[Example]:
  """Columbia Uncompressed Image Splicing Detection Evaluation Dataset.

  Hsu & Chang, ICME 2006; https://www.ee.columbia.edu/ln/dvmm/downloads/authsplcuncmp/ .
  183 authentic and 180 spliced uncompressed images (757x568 to 1152x768) from 4 cameras
  (Canon G3, Nikon D70, Canon 350D Rebel XT, Kodak DCS 330); no post-processing.
  Extract 4cam_auth.tar.bz2 and 4cam_splc.tar.bz2 side by side in the folder:

    4cam_auth/<camera>_<n>_sub_<k>.tif          authentic (TIFF or BMP)
    4cam_splc/<camera1>_<camera2>_sub_<k>.tif   spliced
    4cam_splc/edgemask/<stem>_edgemask.jpg      region map (JPEG): red = the region of the
                                                first camera, green = the region spliced in
                                                from the second; bright (255) near the
                                                splicing boundary, regular (200) away from it

  Mask: spliced where green > red. Other files (README, *_edgemask_3.jpg variants) are ignored.
  """
  root = _root(data_dir, columbia, ("4cam_auth", "4cam_splc"))
  examples = _authentic(_images(root / "4cam_auth")) + _spliced(
      _images(root / "4cam_splc"), root / "4cam_splc" / "edgemask",
      lambda stem: f"{stem}_edgemask", green_is_spliced)
  return _finish(examples, root, columbia)


def dso1(data_dir: os.PathLike | str) -> list[Example]:
  """Carvalho et al. DSO-1 splicing dataset.

  Carvalho et al., "Exposing digital image forgeries by illumination color classification",
  IEEE TIFS 2013; released as tifs-database.zip
  (http://ic.unicamp.br/~rocha/pub/downloads/2014-tiago-carvalho-thesis/tifs-database.zip).
  200 PNG images of 2048x1536, 100 authentic and 100 spliced (people spliced into group
  photos, some retouched). The folder is the zip's tifs-database/, or the folder holding it:

    DSO-1/normal-<nn>.png                      authentic
    DSO-1/splicing-<nn>.png                    spliced
    DSO-1-Fake-Images-Masks/splicing-<nn>.png  mask: black = spliced, white = authentic

  Other files (DSI-1, illuminant maps) are ignored.
  """
  root = _root(data_dir, dso1, ("DSO-1", "DSO-1-Fake-Images-Masks"), wrappers=("tifs-database",))
  images = _images(root / "DSO-1")
  examples = _authentic([p for p in images if p.name.startswith("normal-")]) + _spliced(
      [p for p in images if p.name.startswith("splicing-")], root / "DSO-1-Fake-Images-Masks",
      _same_stem, black_is_spliced)
  return _finish(examples, root, dso1)


def korus(data_dir: os.PathLike | str) -> list[Example]:
  """Realistic Tampering Dataset (Korus & Huang).

  Korus & Huang, WIFS 2016 and IEEE TIFS 2017; http://pkorus.pl/downloads/dataset-realistic-
  tampering . 220 hand-made forgeries (splicing, copy-move, object removal) and their 220
  originals, 1920x1080 RGB TIFF, from 4 cameras. The folder is the zip's data-images/, or the
  folder holding it:

    <camera>/pristine/<name>.TIF             authentic original
    <camera>/tampered-realistic/<name>.TIF   tampered
    <camera>/ground-truth/<name>.PNG         3-level map: black = authentic, white = semantic
                                             change, grey = collateral damage
    readme.md

  with <camera> in Canon_60D, Nikon_D7000, Nikon_D90, Sony_A57. Mask: every non-black pixel
  (the release's readme counts grey and white as tampered). An original and its forgery share
  a file name, so stems are <camera>-pristine-<name> and <camera>-tampered-<name>.
  """
  root = _root(data_dir, korus, ("*/tampered-realistic",), wrappers=("data-images",))
  examples = []
  for camera in sorted(p.parent for p in root.glob("*/tampered-realistic")):
    examples += _authentic(_images(camera / "pristine"), stem=_prefixed(camera.name, "pristine"))
    examples += _spliced(_images(camera / "tampered-realistic"), camera / "ground-truth",
                         _same_stem, nonzero_is_spliced, stem=_prefixed(camera.name, "tampered"))
  return _finish(examples, root, korus)


def in_the_wild(data_dir: os.PathLike | str) -> list[Example]:
  """In-the-Wild splices of Huh et al.

  Huh et al., ECCV 2018: 201 images from The Onion and Reddit Photoshop Battles with
  hand-drawn approximate masks, all spliced; the authors' label_in_wild archive (linked from
  https://minyoungg.github.io/selfconsistency/). The folder is its label_in_wild/, or the
  folder holding it:

    images/<id>.jpg   spliced image
    masks/<id>.png    mask: white = spliced
  """
  root = _root(data_dir, in_the_wild, ("images", "masks"), wrappers=("label_in_wild",))
  examples = _spliced(_images(root / "images"), root / "masks", _same_stem, white_is_spliced)
  return _finish(examples, root, in_the_wild)


def hays(data_dir: os.PathLike | str) -> list[Example]:
  """Hays & Efros scene-completion splices.

  Hays & Efros, "Scene completion using millions of photographs", SIGGRAPH 2007;
  http://graphics.cs.cmu.edu/projects/scene-completion/ . All spliced: a hole in a photo
  filled from another photo; masks are approximate (the completion may alter pixels just
  outside the hole). The project page publishes inputs, masks and completions without one
  archive layout; this loader reads the flat layout of public re-implementations of Huh et
  al.'s evaluation:

    <name>.<ext>        completed (spliced) image, JPEG or PNG
    <name>_mask.<ext>   mask: white = the filled hole (JPEG masks are cut at 128)

  Keep the unmodified source photos out of the folder: every image without the _mask suffix
  needs a mask.
  """
  root = _root(data_dir, hays, ())
  images = _images(root)
  completed = [p for p in images if not p.stem.endswith("_mask")]
  if len(completed) == len(images):
    raise LayoutError(f"{root}: no <name>_mask.* files; not laid out as the {_title(hays)} "
                      "(layout: help(eval.data.datasets.hays))")
  examples = _spliced(completed, root, lambda stem: f"{stem}_mask", white_is_spliced)
  return _finish(examples, root, hays)


def folder(data_dir: os.PathLike | str) -> list[Example]:
  """Generic images/ + masks/ folder, matched by stem.

  The layout `eval.data.synth_splices` writes:

    images/<stem>.<ext>   every image (JPEG, PNG, TIFF, BMP)
    masks/<stem>.<ext>    mask of a spliced image: white (>= 128) = spliced; PNG recommended

  An image with a mask is spliced, one without a mask is authentic. A mask without an image
  is an error: a typo in a stem would otherwise turn a splice into an authentic image.
  """
  root = _root(data_dir, folder, ("images",))
  return folder_pair(root / "images", root / "masks")


def folder_pair(images_dir: os.PathLike | str, masks_dir: os.PathLike | str) -> list[Example]:
  """Images and masks in two folders, matched by stem (as `folder`, any two paths)."""
  images_dir, masks_dir = pathlib.Path(images_dir), pathlib.Path(masks_dir)
  if not images_dir.is_dir():
    raise LayoutError(f"{images_dir}: no such folder of images")
  images = _by_stem(_images(images_dir))
  masks = _by_stem(_images(masks_dir))
  for stem, mask in masks.items():
    if stem not in images:
      raise LayoutError(f"{mask}: mask without an image {images_dir / stem}.*")
  examples = _authentic([p for s, p in images.items() if s not in masks]) + _spliced(
      [p for s, p in images.items() if s in masks], masks_dir, _same_stem,
      white_is_spliced)
  return _finish(examples, images_dir.parent, folder)


DATASETS: dict[str, Loader] = {
    "columbia": columbia,
    "dso1": dso1,
    "korus": korus,
    "in_the_wild": in_the_wild,
    "hays": hays,
    "folder": folder,
}


def load(name: str, data_dir: os.PathLike | str) -> list[Example]:
  """The examples of benchmark `name` (a DATASETS key) in the user's folder `data_dir`."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
  return DATASETS[name](data_dir)
