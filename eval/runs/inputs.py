"""The images a run is given: files and folders of images -> examples with stable stems."""

from __future__ import annotations

import os
import pathlib
from typing import Iterable

from eval.data import datasets
from exif_jax.data import files


def _folder_entries(folder: pathlib.Path) -> list[pathlib.Path]:
  """Every non-hidden entry with an image suffix that is not a folder, so that broken links
  and pipes named as images get reported; other files are ignored, as data_prep does.

  Symlinked folders are not followed (no loops).
  """
  entries = [pathlib.Path(parent, name)
             for parent, _, names in os.walk(folder, followlinks=False) for name in names
             if not name.startswith(".")
             and os.path.splitext(name)[1].lower() in files.IMAGE_SUFFIXES]
  return sorted(entries, key=os.fsencode)


def examples_from_paths(paths: Iterable[str | os.PathLike]) -> list[datasets.Example]:
  """Examples (no masks) for image files and folders of images, each input once.

  A stem is the input's path relative to the folder common to all the given roots (a folder
  counts as itself, a file as its folder), suffix included: x/a.jpg, y/a.jpg and x/a.png are
  three stems, and adding inputs under the same folder leaves the earlier stems as they were.
  """
  roots = []
  for path in map(pathlib.Path, paths):
    if path.is_dir():
      roots.append((path.resolve(), [(f, f.relative_to(path)) for f in _folder_entries(path)]))
    else:
      roots.append((path.parent.resolve(), [(path, pathlib.Path(path.name))]))
  common = os.path.commonpath([folder for folder, _ in roots]) if roots else ""
  examples, seen = [], set()
  for folder, entries in roots:
    prefix = pathlib.Path(os.path.relpath(folder, common))
    for file, relative in entries:
      stem = os.fspath(prefix / relative)
      if stem not in seen:
        seen.add(stem)
        # spliced=None: unknown, so these images count for no detection metric.
        examples.append(datasets.Example(stem=stem, image_path=file, spliced=None))
  return examples


def with_masks(images: str | os.PathLike, masks: str | os.PathLike) -> list[datasets.Example]:
  """A folder of images and one of their masks, matched by stem (datasets.folder_pair);
  datasets.LayoutError when `masks` is no folder, which would make every image authentic."""
  if not os.path.isdir(masks):
    raise datasets.LayoutError(f"{files.display_name(os.fspath(masks))}: no such folder of "
                               "masks")
  return datasets.folder_pair(images, masks)


def outside(examples: list[datasets.Example], out: pathlib.Path) -> list[datasets.Example]:
  """The examples whose image is not under OUT: a run's own maps and thumbnails never become
  inputs of the next run, however the inputs were given (e.g. `localize . --out out`)."""
  # realpath, not Path.resolve: a symlink loop among the inputs is reported later, as such.
  root = pathlib.Path(os.path.realpath(out))
  return [e for e in examples
          if not pathlib.Path(os.path.realpath(e.image_path)).is_relative_to(root)]
