"""One evaluation split over several processes (hosts) that share one OUT.

Worker i of n localizes every n-th image of the list sorted by stem, from the i-th on, and
writes only those images' results. The summaries (scores.csv, metrics.json, report.html) need
every result: the worker that completes the list writes them from what OUT holds, once; a
worker that finishes earlier says how many images remain. A rerun of any worker, or of the
whole list (n = 1), writes them too once nothing remains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Any, Callable, Sequence

import jax
from absl import logging

from eval.data import datasets
from eval.runs import out_folder
from exif_jax.data import files

_SUMMARIZED = ".summarized"  # The digest of the results the summaries were written from.


@dataclasses.dataclass(frozen=True)
class Split:
  """This process's share of the list: worker `index` of `num_workers`."""
  num_workers: int = 1
  index: int = 0

  def __post_init__(self):
    if not 0 <= self.index < self.num_workers:
      raise ValueError(f"--worker_index {self.index} is not in [0, --num_workers "
                       f"{self.num_workers})")

  def take(self, examples: Sequence[datasets.Example]) -> list[datasets.Example]:
    """This worker's examples, in the order of `examples`: the same share however the list
    was ordered, each example in exactly one share."""
    by_stem = sorted(range(len(examples)), key=lambda i: os.fsencode(examples[i].stem))
    return [examples[i] for i in sorted(by_stem[self.index::self.num_workers])]


WHOLE_LIST = Split()


def from_jax() -> Split:
  """The share of this process of a jax.distributed job (initialized before)."""
  return Split(num_workers=jax.process_count(), index=jax.process_index())


def summarize_once_complete(out: pathlib.Path,
                            results: Callable[[], list[dict[str, Any] | None]],
                            summarize: Callable[[list[dict[str, Any]]], None]) -> None:
  """After this worker's images: summarize(every result) when `results()` (each example's
  result in OUT, None while it is to do) holds them all and the summaries were not written
  from exactly these yet. One process at a time (out_folder.serialized), so that of two
  workers finishing together the second sees the first one's results.
  """
  with out_folder.serialized(out):
    done = results()
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
