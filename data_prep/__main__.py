"""python -m data_prep: camera photos -> ArrayRecord shards + dataset_info.json.

Run it once, or as --num_workers N copies with --worker_index 0..N-1 under any batch
scheduler; each worker writes only its own shards and a rerun skips finished ones. The last
worker to finish writes dataset_info.json (run any worker again to write it if it is missing).
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
from absl import logging
from etils import epath

from data_prep import info
from data_prep import photos
from data_prep import splits
from data_prep import writer
from exif_jax.cli import command
from exif_jax.data import files
from exif_jax.data import records

_PHOTOS = flags.DEFINE_string(
    "photos", None, "Folder of photos (local or gs://, searched recursively) or a text file "
    "listing one path per line.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output dataset folder.", required=True)
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 1, "Total number of workers.", lower_bound=1)
_WORKER_INDEX = flags.DEFINE_integer("worker_index", 0, "This worker's index in [0, N).",
                                     lower_bound=0)
_NUM_SHARDS = flags.DEFINE_integer(
    "num_shards", None, "Number of shards (default: inputs / --photos_per_shard).",
    lower_bound=1)
_PHOTOS_PER_SHARD = flags.DEFINE_integer(
    "photos_per_shard", 64, "Inputs per shard when --num_shards is not given.", lower_bound=1)
_VAL_MODELS = flags.DEFINE_list(
    "val_models", [], "Camera models (Model, or Make+Model) held out for validation.")
_VAL_FRACTION = flags.DEFINE_float(
    "val_fraction", None, "Fraction of camera models held out for validation, chosen by hash "
    "(default 0.1 unless --val_models is given).")
_PATCHES = flags.DEFINE_integer(
    "patches_per_photo", photos.PrepOptions.patches_per_photo,
    "Lossless crops stored per photo for training.", lower_bound=1)
_CROP = flags.DEFINE_integer(
    "crop_size", photos.PrepOptions.crop_size,
    "Side of the stored crops (at least one 128 px patch; 2x leaves resizing augmentations "
    "room).", lower_bound=photos.MIN_SIDE)
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels", photos.PrepOptions.max_pixels,
    "Larger images are skipped (guards against decompression bombs).", lower_bound=1)
_PROCESSES = flags.DEFINE_integer(
    "processes", os.cpu_count(), "Decoding processes inside this worker.", lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  val_fraction = _VAL_FRACTION.value
  if val_fraction is None:
    val_fraction = 0.0 if _VAL_MODELS.value else 0.1
  options = photos.PrepOptions(
      patches_per_photo=_PATCHES.value, crop_size=_CROP.value, max_pixels=_MAX_PIXELS.value)
  try:
    files.check_out_folder(_OUT.value)
  except ValueError as e:  # Worded as localize words it, before anything is read.
    raise command.NothingDone(str(e)) from None
  try:  # Every flag and the inputs are checked before anything is written.
    split_rule = splits.SplitRule(val_models=tuple(_VAL_MODELS.value),
                                  val_fraction=val_fraction)
    inputs = photos.list_inputs(_PHOTOS.value)
    if not inputs:
      raise app.UsageError(f"{_PHOTOS.value}: no image files found")
    plan = writer.WorkerPlan(inputs=inputs, num_shards=_num_shards(len(inputs)),
                             worker_index=_WORKER_INDEX.value, num_workers=_NUM_WORKERS.value)
  except (FileNotFoundError, ValueError) as e:  # --photos missing, a flag out of range.
    raise app.UsageError(str(e)) from None
  out = epath.Path(_OUT.value)
  try:
    written = writer.run_worker(plan, out, options, split_rule, _PROCESSES.value)
  except writer.SettingsMismatch as e:
    raise command.NothingDone(str(e)) from None
  logging.info("worker %d wrote %d of its %d shards", plan.worker_index, len(written),
               len(plan.my_shards()))
  summary = info.write_dataset_info(out)
  if summary is None:
    logging.info("other workers' shards are still missing; dataset_info.json not written yet")
  else:
    per_split = ", ".join(f"{k}: {v['photos']}" for k, v in summary["splits"].items())
    print(f"{out}: {summary['num_records']} photos in {summary['num_shards']} shards "
          f"({per_split}), {summary['num_skipped']} inputs skipped")
    if warning := split_rule.holdout_warning(
        {c for split in summary["splits"].values() for c in split["cameras"]},
        summary["attributes"].get("Image Model", {}),
        len(summary["splits"].get("val", {}).get("cameras", []))):
      logging.warning(warning)
  return _exit_status(plan, out)


def _num_shards(num_inputs: int) -> int:
  """--num_shards, or inputs / --photos_per_shard; never more than one input a shard, so no
  shard is empty (the count is recorded in every shard: the same command agrees on a rerun)."""
  if not _NUM_SHARDS.value:
    return writer.default_num_shards(num_inputs, _PHOTOS_PER_SHARD.value)
  if _NUM_SHARDS.value > num_inputs:
    logging.info("--num_shards %d is more than the %d input files: writing %d shards, one "
                 "input a shard", _NUM_SHARDS.value, num_inputs, num_inputs)
    return num_inputs
  return _NUM_SHARDS.value


def _exit_status(plan: writer.WorkerPlan, out: epath.Path) -> int:
  """command.exit_status over the inputs of this worker's shards (written now or before)."""
  mine = [s for s in records.complete_shards(out) if s.index in plan.my_shards()]
  return command.exit_status(sum(len(s.photos) for s in mine),
                             sum(len(s.skipped) for s in mine))


if __name__ == "__main__":
  command.run(main)
