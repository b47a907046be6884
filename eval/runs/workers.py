"""Which images this process does: one evaluation split over several processes (hosts) that
share one OUT.

Worker i of n localizes every n-th image of the list sorted by stem, from the i-th on, and
writes only those images' results; summary.py writes the summaries once the list is complete.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from eval.data import datasets


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
  """The share of this process of a jax.distributed job (initialized before). JAX is
  imported here only: the flags' validators use Split, and `--help` stays quick."""
  import jax  # pylint: disable=g-import-not-at-top
  return Split(num_workers=jax.process_count(), index=jax.process_index())
