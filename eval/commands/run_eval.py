"""Batch evaluation: python -m eval.commands.run_eval --images DIR [--masks DIR] --out OUT
or --dataset NAME --data_dir DIR (columbia, dso1, korus, in_the_wild, hays, folder).

Writes OUT/maps/<stem>.npy and .png, OUT/scores.csv, OUT/metrics.json (when masks are known),
OUT/report.html and OUT/attr_maps/<stem>.npz. With --perturb (e.g. --perturb jpeg=95,75,50
--perturb resize=0.75,0.5 --perturb blur=1,2) every input is also evaluated post-processed at
each level, into OUT/perturb/<kind>-<level>/, and OUT/robustness.json tabulates the metrics of
every level (charted in the report). Rerunning skips images already done (and is
refused when the model or options changed); an image that cannot be read is reported and
skipped. With --num_workers N --worker_index I (or --distributed), N processes on one or
several hosts share the images and one --out; the last to finish writes the summaries.
"""

import pathlib

from absl import app
from absl import flags

from eval.commands import shared_flags
from eval.data import datasets
from eval.runs import inputs
from eval.runs import perturbations
from exif_jax.cli import command
from exif_jax.cli import ctrl_c
from exif_jax.data import files

# --help lists the shared evaluation flags (--checkpoint, --out, ...) too.
flags.adopt_module_key_flags(shared_flags)

_IMAGES = flags.DEFINE_string("images", None, "Folder of images (with --masks: a benchmark).")
_DATASET = flags.DEFINE_enum("dataset", None, list(datasets.DATASETS), "Benchmark layout.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The benchmark's folder, as downloaded.")
_PERTURB = flags.DEFINE_multi_string(
    "perturb", [], "KIND=LEVEL,LEVEL,...: also evaluate every input post-processed at each "
    "level, into OUT/perturb/KIND-LEVEL/, with the table in OUT/robustness.json. KIND: jpeg "
    "(re-encode at quality 1-100), resize (scale factor in (0, 1); the mask follows), blur "
    "(Gaussian sigma in px). Repeat the flag for each kind; needs ground truth (--masks or "
    "--dataset).")


def _examples() -> list[datasets.Example]:
  if _DATASET.value:
    if not _DATA_DIR.value:
      raise app.UsageError("--dataset needs --data_dir")
    return datasets.load(_DATASET.value, _DATA_DIR.value)
  if not _IMAGES.value:
    raise app.UsageError("give --images DIR or --dataset NAME --data_dir DIR")
  if shared_flags.MASKS.value:
    return inputs.with_masks(_IMAGES.value, shared_flags.MASKS.value)
  return inputs.examples_from_paths([_IMAGES.value])


def main(argv):
  with ctrl_c.held():  # JAX: not for --help, and imported whole.
    from eval.commands import cli_common  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    sweep = perturbations.parse(_PERTURB.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if sweep and not (shared_flags.MASKS.value or _DATASET.value):
    raise app.UsageError("--perturb compares metrics: give --masks or --dataset")
  if sweep and cli_common.splits_images():
    raise app.UsageError("--perturb runs in one process: drop --num_workers and --distributed")
  try:
    examples = _examples()
  except datasets.LayoutError as e:
    raise command.NothingDone(str(e)) from None
  records = cli_common.run_batch(examples, "exif-jax evaluation", sweep)
  status = cli_common.exit_status(records)
  levels = f" at {len(sweep) + 1} levels" if sweep else ""
  share = f"{len(records)} of " if cli_common.splits_images() else ""
  out = pathlib.Path(shared_flags.OUT.value)
  print(f"{share}{len(examples)} images{levels} -> {files.display_name(out)}")
  cli_common.print_metrics(out)
  return status


if __name__ == "__main__":
  command.run(main)
