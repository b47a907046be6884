"""Localizing a folder: python benchmarks/eval_folder.py FOLDER [--num_patches N].

Prints JSON: images per second of `batch.run` with the bundled model on every local device
(eval_speed.py runs it with 1 and 4 fake CPU devices), and the share of the loop the devices
wait for the host: 1 - (time inside the localizer's device part) / (first such call's start to
the last one's end). The same for a serial loop (read, localize, write one image after the
other) shows what reading ahead and writing behind save. The model is compiled on the first
image before anything is timed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from eval.localization import localizer as localizer_lib
from eval.runs import batch
from eval.runs import inputs
from eval.runs import results
from eval.runs import summary
from exif_jax.data import files
from exif_jax.training import checkpointing

# pylint: disable=protected-access  # The serial loop runs batch's steps one after the other.


class TimedLocalizer:
  """A Localizer whose calls (the devices' part of an image) are timed."""

  def __init__(self, localizer: localizer_lib.Localizer):
    self._localizer = localizer
    self.settings = localizer.settings
    self.prepare = localizer.prepare
    self.calls: list[tuple[float, float]] = []

  def __call__(self, image: np.ndarray, prepared=None) -> localizer_lib.Localization:
    start = time.perf_counter()
    result = self._localizer(image, prepared)
    self.calls.append((start, time.perf_counter()))
    return result


def timings(examples: list, localizer: localizer_lib.Localizer, loop) -> dict[str, float]:
  """Images per second and the devices' waiting share of `loop(examples, timed, out)`."""
  timed = TimedLocalizer(localizer)
  with tempfile.TemporaryDirectory() as out:
    start = time.perf_counter()
    loop(examples, timed, pathlib.Path(out))
    seconds = time.perf_counter() - start
  busy = sum(end - begin for begin, end in timed.calls)
  window = timed.calls[-1][1] - timed.calls[0][0]
  return {"seconds": seconds, "images_per_s": len(examples) / seconds,
          "device_wait_share": 1 - busy / window}


def serial_loop(examples: list, localizer, out: pathlib.Path) -> None:
  """batch.run's steps, one image after the other, and its summaries."""
  (out / "results").mkdir()
  records = []
  for example in examples:
    read = results.read(example, localizer, files.MAX_PIXELS)
    records.append(results.write(example, read, batch.localize_one(example, read, localizer), out))
  summary.write(examples, records, out, "serial", localizer.settings)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("folder", type=pathlib.Path)
  parser.add_argument("--num_patches", type=int, default=500)
  args = parser.parse_args()
  examples = inputs.examples_from_paths([args.folder])
  if not examples:
    raise SystemExit(f"no image in {args.folder}")
  localizer = localizer_lib.Localizer(checkpointing.restore(checkpointing.BUNDLED_MODEL),
                                      localizer_lib.Options(num_patches=args.num_patches))
  localizer(examples[0].load_image())  # Compiles.
  result = {"devices": jax.local_device_count(), "device": jax.devices()[0].device_kind,
            "images": len(examples), "num_patches": args.num_patches,
            "pipelined": timings(examples, localizer, batch.run),
            "serial": timings(examples, localizer, serial_loop)}
  print(json.dumps(result))


if __name__ == "__main__":
  main()
