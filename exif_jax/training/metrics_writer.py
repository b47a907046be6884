"""Scalars to TensorBoard (WORKDIR/tensorboard) and to WORKDIR/metrics.jsonl, one line a write."""

from __future__ import annotations

import json
from typing import Mapping

from etils import epath
from tensorboardX import SummaryWriter


class MetricsWriter:
  """Writes on the first process only, so a multi-host run logs once."""

  def __init__(self, workdir: epath.PathLike, enabled: bool = True):
    self._enabled = enabled
    if enabled:
      workdir = epath.Path(workdir)
      self._summary = SummaryWriter(str(workdir / "tensorboard"))
      self._jsonl = (workdir / "metrics.jsonl").open("a")

  def __enter__(self) -> MetricsWriter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self._enabled:
      return
    for name, value in scalars.items():
      self._summary.add_scalar(name, value, step)
    self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
    self._jsonl.flush()

  def close(self) -> None:
    if self._enabled:
      self._summary.close()
      self._jsonl.close()
