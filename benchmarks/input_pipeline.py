"""Input pipeline throughput in pairs/s per CPU core; prints one JSON object.

  python -m benchmarks.input_pipeline [--data_dir DIR]

Without --data_dir it first builds shards from ../shared/data/photos with data_prep into a
temporary folder. "full" is the training pipeline; "decode_only" the same with every
augmentation set reduced to its identity (read, decode, crop, label, batch). Each runs in one
process with one reading thread: pairs_per_s is per core by wall clock, pairs_per_cpu_s per
second of this process's CPU time (robust to other load on the machine). "all_cores" runs
--num_workers grain worker processes and divides the wall-clock rate by the core count.
"virtual_mix" is "full" with --virtual_camera_fraction of the pairs rendered by virtual
cameras, "virtual_only" with all of them; "keeps_pace" compares the mix on one core with the
train step of configs/cpu.py on all cores (benchmarks/train_step.py), measured in the same
run: a ratio >= 1 means one reading core feeds the step.
"dataset" gives the shards' ArrayRecord writer options and size on disk.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from array_record.python.array_record_module import ArrayRecordReader
import ml_collections

from benchmarks import common as benchmark_common
from benchmarks import train_step
from configs import common
from exif_jax.data import input_pipeline
from exif_jax.data import records

REPO = pathlib.Path(__file__).resolve().parent.parent
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset from data_prep (default: build one).")
_PHOTOS = flags.DEFINE_string(
    "photos", os.fspath(REPO.parent / "shared" / "data" / "photos"),
    "Photos to build the dataset from when --data_dir is not given.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Pairs per batch.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 20, "Batches timed per measurement.")
_NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", os.cpu_count(), "Grain worker processes for the all_cores measurement.")
_VIRTUAL_CAMERA_FRACTION = flags.DEFINE_float(
    "virtual_camera_fraction", 0.25, "Share of virtual-camera pairs in the virtual_mix row.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 5, "Train steps timed for keeps_pace.")


def measure(config: ml_collections.ConfigDict) -> dict[str, float]:
  """Rates after one warm-up batch (worker start-up and file opening excluded)."""
  iterator = iter(input_pipeline.create_dataset(
      config, "train", seed=0, global_batch_size=_BATCH_SIZE.value))
  next(iterator)
  wall, cpu = time.perf_counter(), time.process_time()
  for _ in range(_NUM_BATCHES.value):
    next(iterator)
  pairs = _NUM_BATCHES.value * _BATCH_SIZE.value
  return {"pairs_per_s": pairs / (time.perf_counter() - wall),
          "pairs_per_cpu_s": pairs / (time.process_time() - cpu)}


def dataset_size(data_dir: str) -> dict[str, object]:
  """Writer options of the patch shards and bytes on disk of each kind of shard."""
  shards = records.complete_shards(data_dir)
  reader = ArrayRecordReader(os.fspath(shards[0].patches_path))
  options = reader.writer_options_string()
  reader.close()
  return {"writer_options": options,
          "patches_bytes": sum(os.path.getsize(shard.patches_path) for shard in shards),
          "photos_bytes": sum(os.path.getsize(shard.photos_path) for shard in shards)}


def run(data_dir: str) -> dict[str, object]:
  config = common.base_config()
  config.data.update(data_dir=data_dir, num_workers=0, num_threads=1)
  full = measure(config)
  all_cores = config.copy_and_resolve_references()
  all_cores.data.num_workers = _NUM_WORKERS.value
  all_cores_rate = measure(all_cores)["pairs_per_s"]
  virtual = config.copy_and_resolve_references()
  virtual.data.virtual_camera_fraction = _VIRTUAL_CAMERA_FRACTION.value
  virtual_mix = measure(virtual)
  virtual.data.virtual_camera_fraction = 1.0
  virtual_only = measure(virtual)
  config.data.update(jpeg_qualities=(0,), blur_sigmas=(0.0,), resize_factors=(1.0,))
  decode_only = measure(config)
  cores = os.cpu_count()
  step = train_step.measure(train_step.cpu_config(), _TRAIN_STEPS.value,
                            benchmark_common.matmul_peak_flops())["pairs_per_s"]
  return {
      "unit": "pairs/s per CPU core", "batch_size": _BATCH_SIZE.value,
      "pairs_timed": _NUM_BATCHES.value * _BATCH_SIZE.value, "cpu_cores": cores,
      "full": full, "decode_only": decode_only,
      "virtual_mix": {"virtual_camera_fraction": _VIRTUAL_CAMERA_FRACTION.value, **virtual_mix},
      "virtual_only": virtual_only,
      "keeps_pace": {"train_step_cpu_config_pairs_per_s": step,
                     "virtual_mix_one_core_pairs_per_s": virtual_mix["pairs_per_s"],
                     "ratio": virtual_mix["pairs_per_s"] / step},
      "all_cores": {"num_workers": _NUM_WORKERS.value, "pairs_per_s": all_cores_rate,
                    "pairs_per_s_per_core": all_cores_rate / cores},
      "goal_pairs_per_s_per_core": 500, "dataset": dataset_size(data_dir),
  }


def main(argv):
  del argv
  if _DATA_DIR.value:
    print(json.dumps(run(_DATA_DIR.value), indent=1))
    return
  with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "data_prep", f"--photos={_PHOTOS.value}",
                    f"--out={tmp}", "--val_fraction=0.1"], cwd=REPO, check=True,
                   capture_output=True)
    print(json.dumps(run(tmp), indent=1))


if __name__ == "__main__":
  app.run(main)
