"""Localize a set of images into OUT, resumably. What OUT holds, for run_eval and localize
alike (readers may rely on these names and formats):

OUT/maps/<stem>.npy   float32 HxW in [0, 1], high = inconsistent, at the input's resolution
OUT/maps/<stem>.png   8-bit heatmap of the same
OUT/attr_maps/<stem>.npz  the 83 per-attribute maps (when asked)
OUT/results/<stem>.json  per image: score, verdict, metrics, or the reason it has no map;
                      written last, so a rerun skips exactly the images already done
OUT/settings.json     the model's sha256 and the options: a rerun with others is refused
OUT/scores.csv, OUT/metrics.json (when masks are known), OUT/report.html
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
from typing import Any, Iterable

import numpy as np
from absl import logging
from PIL import Image
from tqdm import tqdm

from data_prep import photos as photo_inputs
from eval import datasets
from eval import image_io
from eval import localizer as localizer_lib
from eval import metrics as metrics_lib
from eval import report
from exif_jax import files

THRESHOLD = 0.5  # Score above which an image is called spliced.


def _folder_entries(folder: pathlib.Path) -> list[pathlib.Path]:
  """Every non-hidden entry that is not a folder, so that broken links and pipes get reported.

  Symlinked folders are not followed (no loops).
  """
  entries = [pathlib.Path(parent, name)
             for parent, _, names in os.walk(folder, followlinks=False) for name in names
             if not name.startswith(".")]
  return sorted(entries, key=os.fsencode)


def examples_from_paths(paths: Iterable[str | os.PathLike]) -> list[datasets.Example]:
  """Examples (no masks) for image files and folders of images, stems made unique.

  Stems name the output files and rows: printable UTF-8 even when a file name is not.
  """
  files = []
  for path in map(pathlib.Path, paths):
    files += _folder_entries(path) if path.is_dir() else [path]
  examples, seen = [], {}
  for file in files:
    base = photo_inputs.display_name(file.stem)
    stem = base
    if stem in seen:
      seen[stem] += 1
      stem = f"{stem}-{seen[base]}"
    seen.setdefault(stem, 0)
    # spliced=None: unknown, so these images count for no detection metric.
    examples.append(datasets.Example(stem=stem, image_path=file, spliced=None))
  return examples


def _save_map(out: pathlib.Path, stem: str, heat: np.ndarray) -> None:
  (out / "maps").mkdir(parents=True, exist_ok=True)
  np.save(out / "maps" / f"{stem}.npy", heat)
  Image.fromarray(report.heatmap_rgb(heat)).save(out / "maps" / f"{stem}.png")


def localize_one(example: datasets.Example, localizer: localizer_lib.Localizer,
                 out: pathlib.Path, max_pixels: int) -> dict[str, Any]:
  """Runs one image and writes its files; returns its result record."""
  record: dict[str, Any] = {"stem": example.stem, "image": os.fspath(example.image_path)}
  try:
    image = image_io.load_image(example.image_path, max_pixels)
    mask = example.mask
    result = localizer(image)
  except ValueError as e:
    logging.warning("skipped %s: %s", photo_inputs.display_name(example.image_path), e)
    return {**record, "error": str(e)}
  _save_map(out, example.stem, result.map)
  if result.ncuts is not None:
    np.save(out / "maps" / f"{example.stem}.ncuts.npy", result.ncuts.astype(np.float32))
  if result.attribute_maps is not None:
    (out / "attr_maps").mkdir(exist_ok=True)
    np.savez_compressed(out / "attr_maps" / f"{example.stem}.npz", maps=result.attribute_maps,
                        attributes=np.array(localizer_lib.exif_attrs.ATTRIBUTES))
  record.update(score=result.score, no_signal=result.no_signal,
                verdict="spliced" if result.score > THRESHOLD else "authentic",
                num_patches=result.num_patches, separating=list(result.separating),
                has_mask=mask is not None, spliced=example.spliced)
  if mask is not None and mask.any() and not mask.all():
    record["metrics"] = metrics_lib.image_metrics(mask, result.map)
  return record


class SettingsMismatch(ValueError):
  """OUT holds results of another model or other options."""


def _claim(out: pathlib.Path, settings: dict[str, Any]) -> None:
  """Records the settings of the results in `out`, or refuses if they differ from earlier."""
  path = out / "settings.json"
  if path.exists():
    earlier = json.loads(path.read_text())
    changed = sorted(k for k in settings.keys() | earlier.keys()
                     if settings.get(k) != earlier.get(k))
    if changed:
      raise SettingsMismatch(
          f"{out} holds results made with other settings ({', '.join(changed)}: "
          f"{', '.join(f'{earlier.get(k)} then, {settings.get(k)} now' for k in changed)}); "
          f"give another --out or delete it")
  else:
    files.write_json(path, settings)


def run(examples: list[datasets.Example], localizer: localizer_lib.Localizer,
        out: pathlib.Path, *, max_pixels: int = files.MAX_PIXELS,
        title: str = "exif-jax") -> list[dict[str, Any]]:
  """Localizes every example not already done in `out`, then writes the summaries.

  Raises SettingsMismatch when `out` holds results of another model or other options.
  """
  out.mkdir(parents=True, exist_ok=True)
  settings = {**localizer.settings, "max_pixels": max_pixels}
  _claim(out, settings)
  todo = [e for e in examples if not (out / "results" / f"{e.stem}.json").exists()]
  logging.info("%d of %d images to do (%d already done)", len(todo), len(examples),
               len(examples) - len(todo))
  for example in tqdm(todo, desc="localize", unit="image"):
    files.write_json(out / "results" / f"{example.stem}.json",
                     localize_one(example, localizer, out, max_pixels))
  records = [json.loads((out / "results" / f"{e.stem}.json").read_text()) for e in examples]
  summarize(examples, records, out, title, settings)
  return records


def summarize(examples: list[datasets.Example], records: list[dict[str, Any]],
              out: pathlib.Path, title: str, settings: dict[str, Any]) -> None:
  with (out / "scores.csv").open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["stem", "score"])
    writer.writerows((r["stem"], f"{r['score']:.6f}") for r in records if "score" in r)
  dataset = metrics_lib.DatasetMetrics()
  for example, record in zip(examples, records):
    if "score" in record:
      heat = np.load(out / "maps" / f"{example.stem}.npy")
      dataset.add(heat, mask=example.mask, label=example.spliced, score=record["score"])
  if any(example.mask_path is not None for example in examples):
    files.write_json(out / "metrics.json", dataset.result())
  report.write(out, records, title=title, settings=settings)
