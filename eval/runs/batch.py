"""Localize a set of images into OUT, resumably, top-down: this process's share of the list
(workers), OUT claimed for these settings (out_folder), the images not done yet localized with
reading ahead and writing behind the devices (pipeline, results), then the summaries (summary).
What OUT holds: results.py.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

from absl import logging
from tqdm import tqdm

from eval import calibration as calibration_lib
from eval.data import datasets
from eval.localization import localizer as localizer_lib
from eval.reporting import header
from eval.runs import out_folder
from eval.runs import pipeline
from eval.runs import results
from eval.runs import summary
from eval.runs import workers
from exif_jax.cli import ctrl_c
from exif_jax.data import files


def localize_one(example: datasets.Example, read: results.Read,
                 localizer: localizer_lib.Localizer) -> localizer_lib.Localization | str:
  """The devices' part of one image, or the reason it is skipped (said in one line)."""
  error = read.error
  if error is None:
    try:
      return localizer(read.image, read.prepared)
    except ValueError as e:
      error = str(e)
  logging.warning("skipped %s: %s", files.display_name(example.image_path), error)
  return error


def run(examples: list[datasets.Example], localizer: localizer_lib.Localizer,
        out: pathlib.Path, *, max_pixels: int = files.MAX_PIXELS,
        title: str = "exif-jax", input_settings: dict[str, Any] | None = None,
        split: workers.Split = workers.WHOLE_LIST,
        calibration: calibration_lib.Calibration | None = None,
        model_facts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
  """Localizes every example of this worker's share (`split`) not already done in `out`,
  then writes the summaries of all `examples` (summary.after_share); returns the share's records.

  `input_settings` (how the examples make their pixels, e.g. a perturbation) are recorded
  with the model's. Verdicts follow `calibration` (the model's), "uncalibrated" without one.
  `model_facts` (what the report says of the model) go to OUT/model.json once OUT is claimed.

  Holds out_folder.locked(out) throughout; raises out_folder.OutError when another run holds
  it or `out` holds results of another model or other options.
  """
  settings = {**localizer.settings, "max_pixels": max_pixels, **(input_settings or {}),
              **calibration_lib.settings(calibration)}
  whole_list, examples = examples, split.take(examples)
  if split != workers.WHOLE_LIST:
    logging.info("worker %d of %d: %d of the %d images", split.index, split.num_workers,
                 len(examples), len(whole_list))
  with out_folder.locked(out, split.index, split.num_workers):
    out_folder.claim(out, settings)
    if model_facts is not None:
      files.write_json(out / header.MODEL_FACTS, model_facts)
    (out / "results").mkdir(exist_ok=True)
    records = [results.earlier_result(e, out, max_pixels) for e in examples]
    todo = [i for i, record in enumerate(records) if record is None]
    logging.info("%d of %d images to do (%d already done)", len(todo), len(examples),
                 len(examples) - len(todo))
    # The next images are read while the devices localize this one, the last ones written.
    reader = functools.partial(results.read, localizer=localizer, max_pixels=max_pixels)
    written = {}
    with (pipeline.ahead(reader, [examples[i] for i in todo]) as reads,
          pipeline.Behind() as writes):
      for i in tqdm(todo, desc="localize", unit="image"):
        ctrl_c.raise_if_pressed()
        example, read = examples[i], next(reads)
        written[i] = writes.submit(results.write, example, read,
                                   localize_one(example, read, localizer), out, calibration)
    for i, record in written.items():
      records[i] = record.result()
    summary.after_share(
        whole_list, records, split, out, title, settings,
        lambda: [results.final_result(e, out, max_pixels) for e in whole_list])
  return records
