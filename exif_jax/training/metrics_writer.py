"""Scalars to TensorBoard (WORKDIR/tensorboard) and to WORKDIR/metrics.jsonl, one line a write.

On an object store (a gs:// workdir) nothing can be appended to: metrics.jsonl is kept in
memory (with the lines of earlier runs in that workdir) and the whole object is rewritten at
most every REWRITE_EVERY_S seconds and on close. A killed run loses the lines of its last
seconds there; its rerun writes them again from the checkpoint on. (tensorboardX rewrites its
event files on gs:// the same way.)
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

from etils import epath
from tensorboardX import SummaryWriter

from exif_jax.data import files

METRICS = "metrics.jsonl"
REWRITE_EVERY_S = 60


def records(workdir: epath.PathLike) -> list[dict[str, Any]]:
  """The lines of WORKDIR/metrics.jsonl in order, each {"step": ..., name: value, ...}; [] when
  the run has logged nothing."""
  path = epath.Path(workdir) / METRICS
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_value(workdir: epath.PathLike, name: str, at_most_step: int) -> float | None:
  """The last `name` logged in WORKDIR/metrics.jsonl at a step <= at_most_step (None if
  none): what a resumed run continues from, as steps after its checkpoint are done again."""
  values = [r[name] for r in records(workdir) if name in r and r["step"] <= at_most_step]
  return values[-1] if values else None


class MetricsWriter:
  """Writes on the first process only, so a multi-host run logs once."""

  def __init__(self, workdir: epath.PathLike, enabled: bool = True):
    self._enabled = enabled
    if enabled:
      workdir = epath.Path(workdir)
      self._summary = SummaryWriter(str(workdir / "tensorboard"))
      self._path = workdir / METRICS
      self._remote = files.is_remote(self._path)
      if self._remote:
        self._text = self._path.read_text() if self._path.exists() else ""
        self._rewritten = time.monotonic()
      else:
        self._jsonl = self._path.open("a")

  def __enter__(self) -> MetricsWriter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self._enabled:
      return
    for name, value in scalars.items():
      self._summary.add_scalar(name, value, step)
    line = json.dumps({"step": step, **scalars}) + "\n"
    if self._remote:
      self._text += line
      if time.monotonic() - self._rewritten > REWRITE_EVERY_S:
        self._rewrite()
    else:
      self._jsonl.write(line)
      self._jsonl.flush()

  def _rewrite(self) -> None:
    self._path.write_text(self._text)  # One upload: the object is replaced whole.
    self._rewritten = time.monotonic()

  def close(self) -> None:
    if self._enabled:
      self._summary.close()
      if self._remote:
        self._rewrite()
      else:
        self._jsonl.close()
