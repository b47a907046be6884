"""The summaries of a run over a list of images, written in one place: scores.csv,
metrics.json (when masks are known) and report.html, from what OUT holds.

A run of the whole list writes them at its end. With several workers (workers.py) the worker
that completes the list writes them, once; a worker that finishes earlier says how many images
remain. A rerun of any worker, or of the whole list, writes them too once nothing remains.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import pathlib
from typing import Any, Callable

import numpy as np
from absl import logging

from eval import metrics as metrics_lib
from eval.data import datasets
from eval.reporting import report
from eval.runs import out_folder
from eval.runs import results
from eval.runs import workers
from exif_jax.data import files

_FORMULA_STARTS = ("=", "+", "-", "@")  # A spreadsheet runs a cell that starts so.
_SUMMARIZED = ".summarized"  # The digest of the results the summaries were written from.


def after_share(whole_list: list[datasets.Example], share_records: list[dict[str, Any]],
                split: workers.Split, out: pathlib.Path, title: str, settings: dict[str, Any],
                final_results: Callable[[], list[dict[str, Any] | None]]) -> None:
  """Once this process's share is done: the summaries of the whole list, now (one process)
  or when the list is complete (several workers; `final_results` reads every image's result
  in OUT, None while it is to do)."""
  if split == workers.WHOLE_LIST:
    write(whole_list, share_records, out, title, settings)
  else:
    _write_once_complete(out, final_results,
                         lambda done: write(whole_list, done, out, title, settings))


def _write_once_complete(out: pathlib.Path,
                         final_results: Callable[[], list[dict[str, Any] | None]],
                         summarize: Callable[[list[dict[str, Any]]], None]) -> None:
  """After this worker's images: summarize(every result) when `final_results()` (each example's
  result in OUT, None while it is to do) holds them all and the summaries were not written
  from exactly these yet. One process at a time (out_folder.serialized), so that of two
  workers finishing together the second sees the first one's results.
  """
  with out_folder.serialized(out):
    done = final_results()
    remaining = sum(record is None for record in done)
    if remaining:
      logging.info("%d of %d images remain for the other workers; the last to finish writes "
                   "the summaries", remaining, len(done))
      return
    digest = hashlib.sha256(json.dumps(done, sort_keys=True).encode()).hexdigest()
    marker = out / _SUMMARIZED
    if marker.exists() and marker.read_text() == digest:
      logging.info("every image is done; the summaries already hold these results (a run "
                   "with --num_workers 1 writes them again)")
      return
    summarize(done)
    files.write_atomic(marker, digest)
    logging.info("every image is done: summaries written")


def _cell(text: str) -> str:
  """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
  return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def write(examples: list[datasets.Example], records: list[dict[str, Any]],
          out: pathlib.Path, title: str, settings: dict[str, Any]) -> None:
  """scores.csv, metrics.json and report.html of this run's examples, from OUT alone."""
  table = io.StringIO()
  writer = csv.writer(table)
  writer.writerow(["stem", "score", "image"])
  # `stem` is the stored name exactly (maps/<stem>.npy): %-encoded ASCII, which a spreadsheet
  # may read as a number but never runs; the printable path is guarded against formulas.
  writer.writerows((r["stem"], f"{r['score']:.6f}", _cell(r["image"]))
                   for r in records if "score" in r)
  files.write_atomic(out / "scores.csv", table.getvalue())
  dataset = metrics_lib.DatasetMetrics()
  for example, record in zip(examples, records):
    if "score" in record:
      heat = np.load(results.map_path(out, record["stem"]))
      dataset.add(heat, mask=example.mask, label=example.spliced, score=record["score"])
  if any(example.mask_path is not None for example in examples):
    files.write_json(out / "metrics.json", dataset.result())
  report.write(out, records, title=title, settings=settings)
