"""Writes the shards one worker owns: a process pool decodes, the parent dedups and writes.

Shard s of n holds a contiguous slice of the sorted inputs; worker i of k writes the shards
with s % k == i. Every shard is written atomically and marked complete by its JSON index, so
a killed worker leaves no partial shard and a rerun redoes only what is missing.
"""

from __future__ import annotations

from concurrent import futures
import contextlib
import dataclasses
import functools
import math
import multiprocessing
import signal
from typing import Iterable, Iterator, Sequence

from absl import logging
from etils import epath
from tqdm import tqdm

from data_prep import photos as photos_lib
from data_prep import splits
from exif_jax.data import files
from exif_jax.data import records


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
  inputs: Sequence[str]
  num_shards: int
  worker_index: int = 0
  num_workers: int = 1

  def __post_init__(self):
    if not 0 <= self.worker_index < self.num_workers:
      raise ValueError(
          f"--worker_index {self.worker_index} is not in [0, --num_workers {self.num_workers})")

  def shard_inputs(self, shard: int) -> Sequence[str]:
    n = len(self.inputs)
    return self.inputs[shard * n // self.num_shards:(shard + 1) * n // self.num_shards]

  def my_shards(self) -> list[int]:
    return list(range(self.worker_index, self.num_shards, self.num_workers))


def default_num_shards(num_inputs: int, photos_per_shard: int) -> int:
  return max(1, math.ceil(num_inputs / photos_per_shard))


def run_worker(plan: WorkerPlan, out: epath.Path, options: photos_lib.PrepOptions,
               split_rule: splits.SplitRule, processes: int) -> list[int]:
  """Writes this worker's missing shards; returns the shard indices it wrote.

  Raises SettingsMismatch when `out` holds shards written with other settings.
  """
  out.mkdir(parents=True, exist_ok=True)
  settings = _settings(plan, options, split_rule)
  _check_compatible(out, settings)
  todo = [s for s in plan.my_shards()
          if not records.shard_path(out, "shard", s, plan.num_shards).exists()]
  total = sum(len(plan.shard_inputs(s)) for s in todo)
  load = functools.partial(photos_lib.load_photo, options=options)
  with (_decoders(processes) as pool,
        tqdm(total=total, desc=f"data_prep worker {plan.worker_index}", unit="photo") as bar):
    for shard in todo:
      results = pool.map(load, plan.shard_inputs(shard))
      _write_shard(out, shard, plan.num_shards, _ticking(results, bar), split_rule, settings)
  return todo


@contextlib.contextmanager
def _decoders(processes: int) -> Iterator[futures.ProcessPoolExecutor]:
  """Decoding processes that stop soon after this one is interrupted or fails.

  Ctrl-C reaches the whole process group: only this process answers it (with one line). On
  an exception the photos not yet started are dropped and the ones being decoded finish.
  (multiprocessing.Pool.terminate can hang for good when a worker is blocked writing a large
  result: CPython gh-73945.)
  """
  pool = futures.ProcessPoolExecutor(
      processes, mp_context=multiprocessing.get_context("spawn"),
      initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN))
  try:
    yield pool
  except BaseException:
    pool.shutdown(wait=False, cancel_futures=True)
    raise
  pool.shutdown()


def _ticking(results: Iterable, bar: tqdm) -> Iterable:
  for result in results:
    bar.update()
    yield result


def _settings(plan: WorkerPlan, options: photos_lib.PrepOptions,
              split_rule: splits.SplitRule) -> dict:
  return {"num_shards": plan.num_shards, "num_inputs": len(plan.inputs),
          **dataclasses.asdict(options),
          "val_models": list(split_rule.val_models), "val_fraction": split_rule.val_fraction}


class SettingsMismatch(ValueError):
  """OUT holds shards written with other settings."""


def _check_compatible(out: epath.Path, settings: dict) -> None:
  if not out.is_dir():  # A new folder on an object store: it exists once it holds an object.
    return
  for shard in records.complete_shards(out):
    if changes := files.settings_changes(shard.settings, settings):
      raise SettingsMismatch(
          f"{out} holds shards written with other settings ({changes}); use a new --out")


def _write_shard(out: epath.Path, shard: int, num_shards: int, results: Iterable,
                 split_rule: splits.SplitRule, settings: dict) -> None:
  for stale in out.glob(f".*-{shard:05d}-of-{num_shards:05d}.*.tmp-*"):
    stale.unlink()  # Left by a worker killed while writing this shard.
  photo_records, patch_records, index, skipped = [], [], [], []
  first_source_by_sha = {}
  for result in results:
    if isinstance(result, photos_lib.Skipped):
      skipped.append(_skip(result.source, result.reason))
      continue
    record = result.record
    if record["sha256"] in first_source_by_sha:
      skipped.append(_skip(
          record["source"], f"duplicate of {first_source_by_sha[record['sha256']]}"))
      continue
    first_source_by_sha[record["sha256"]] = record["source"]
    photo_id = len(photo_records)
    record["split"] = split_rule.split(record["camera"], record["model"])
    record["patches"] = [[y, x, *pixels.shape[:2]] for y, x, pixels in result.crops]
    index.append({
        "sha256": record["sha256"], "source": record["source"], "camera": record["camera"],
        "split": record["split"], "exif": record["exif"], "width": record["width"],
        "height": record["height"], "first_patch": len(patch_records),
        "num_patches": len(result.crops)})
    patch_records.extend(
        records.encode(records.patch_record(photo_id, y, x, pixels))
        for y, x, pixels in result.crops)
    photo_records.append(records.encode(record))
  records.write_array_record(
      records.shard_path(out, "photos", shard, num_shards), photo_records)
  records.write_array_record(
      records.shard_path(out, "patches", shard, num_shards), patch_records)
  files.write_json(records.shard_path(out, "shard", shard, num_shards),
                   {"photos": index, "skipped": skipped, "settings": settings})


def _skip(source: str, reason: str) -> dict[str, str]:
  logging.warning("skipped %s: %s", source, reason)
  return {"source": source, "reason": reason}
