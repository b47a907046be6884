"""Flags and set-up shared by the `run_eval` and `localize` command lines."""

from __future__ import annotations

from typing import Any, Sequence

import ml_collections
from absl import app
from absl import flags

from eval.data import datasets
from eval.localization import camera_classifier
from eval.localization import localizer as localizer_lib
from eval.localization import noise_method
from eval.runs import batch
from eval.runs import inputs
from eval.runs import out_folder
from eval.runs import perturbations as perturbations_lib
from eval.runs import robustness
from eval.runs import workers
from exif_jax.cli import command
from exif_jax.data import files
from exif_jax.training import checkpointing
from exif_jax.training import sharding

METHOD = flags.DEFINE_enum(
    "method", "exif", ["exif", "noise"], "exif: the learned self-consistency model "
    "(--checkpoint); noise: the training-free local noise-level reference (no model).")
CHECKPOINT = flags.DEFINE_multi_string(
    "checkpoint", None, "A training workdir, its checkpoints/ folder or one step folder "
    "(default: the bundled model). Several, of one model config: their ensemble, the mean of "
    "their pair predictions (one forward pass per model)")
OUT = flags.DEFINE_string("out", None, "Output folder (maps/, scores.csv, report.html).",
                          required=True)
NUM_PATCHES = flags.DEFINE_integer("num_patches", 500, "About this many patches per image.",
                                   lower_bound=1)
STRIDE = flags.DEFINE_integer("stride", None, "Patch grid stride (default: from num_patches).",
                              lower_bound=1)
NCUTS = flags.DEFINE_bool("ncuts", False, "Also segment with Normalized Cuts.")
ATTR_MAPS = flags.DEFINE_bool("attr_maps", True, "Write the 83 per-attribute maps.")
PAIR_MEMORY_MB = flags.DEFINE_integer(
    "pair_memory_mb", 256, "Patch pairs are evaluated in blocks of at most this many MiB of "
    "activations: the knob for peak memory on large images.", lower_bound=1)
MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels", files.MAX_PIXELS,
    "Images with more pixels are skipped before decoding (guards against decompression bombs).",
    lower_bound=1)
NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", 1, "Split the images over this many processes (hosts) that share one --out "
    "(on a file system with working flock): worker I localizes every N-th image of the list "
    "sorted by name, from the I-th on. The worker that completes the list writes scores.csv, "
    "metrics.json and report.html; one that finishes earlier says how many images remain. "
    "A killed worker resumes its images when started again with the same flags; a run with "
    "--num_workers 1 (the default: all images) also writes the summaries once every image is "
    "done.", lower_bound=1)
WORKER_INDEX = flags.DEFINE_integer(
    "worker_index", 0, "This process's share with --num_workers N: 0 to N-1, each index run "
    "by one process at a time.", lower_bound=0)
DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Split the images as --num_workers does, over the processes of a "
    "jax.distributed job (process_count workers; this one is worker process_index). TPU VMs, "
    "SLURM, Open MPI and Kubernetes jobs describe themselves; elsewhere give "
    "--coordinator_address, --num_processes and --process_id. A process whose images are "
    "done waits for the others; one that dies stops the job (run it again: every process "
    "resumes its images). Independent jobs: --num_workers.")
COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address", "", "host:port of process 0 of a jax.distributed job (implies "
    "--distributed).")
NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", 0, "Processes of the jax.distributed job (0: detected from the cluster).",
    lower_bound=0)
PROCESS_ID = flags.DEFINE_integer(
    "process_id", 0, "This process's id in the jax.distributed job, 0 to --num_processes - 1.",
    lower_bound=0)
# A process whose images are done waits this long at exit for the others of its
# jax.distributed job: shares of equal size can take very different times.
_WAIT_FOR_OTHER_PROCESSES_S = 24 * 3600


@flags.multi_flags_validator(["num_workers", "worker_index"])
def _check_share(values: dict[str, Any]) -> bool:
  try:
    workers.Split(values["num_workers"], values["worker_index"])
  except ValueError as e:
    raise flags.ValidationError(str(e)) from None
  return True


@flags.multi_flags_validator(["distributed", "coordinator_address", "num_workers",
                              "worker_index"])
def _check_one_way_to_split(values: dict[str, Any]) -> bool:
  if ((values["distributed"] or values["coordinator_address"])
      and (values["num_workers"], values["worker_index"]) != (1, 0)):
    raise flags.ValidationError("jax.distributed gives the split: drop --num_workers and "
                                "--worker_index")
  return True


def splits_images() -> bool:
  """Whether this process is one of several sharing --out."""
  return NUM_WORKERS.value > 1 or DISTRIBUTED.value or bool(COORDINATOR_ADDRESS.value)


def worker_split() -> workers.Split:
  """This process's share of the images; joins the jax.distributed job first when asked
  (before anything else uses JAX)."""
  if not (DISTRIBUTED.value or COORDINATOR_ADDRESS.value):
    return workers.Split(NUM_WORKERS.value, WORKER_INDEX.value)
  sharding.initialize(ml_collections.ConfigDict({
      "distributed": True, "coordinator_address": COORDINATOR_ADDRESS.value,
      "num_processes": NUM_PROCESSES.value, "process_id": PROCESS_ID.value}),
      shutdown_timeout_s=_WAIT_FOR_OTHER_PROCESSES_S)
  return workers.from_jax()


def run_batch(examples: list[datasets.Example], title: str,
              perturbations: Sequence[perturbations_lib.Perturbation] = ()
              ) -> list[dict[str, Any]]:
  """batch.run with the flags, or robustness.sweep when `perturbations` are given. --out is
  checked before the model loads; an --out that cannot take these results (see out_folder)
  stops the run with one line."""
  try:
    out = out_folder.check(OUT.value)
    examples = inputs.outside(examples, out)
    if not examples:  # Nothing to do: OUT stays as it was.
      raise command.NothingDone("no images to localize in the inputs given")
    split = worker_split()
    localizer = make_localizer()
    if perturbations:
      return robustness.sweep(examples, localizer, out, perturbations,
                              max_pixels=MAX_PIXELS.value, title=title)
    return batch.run(examples, localizer, out, max_pixels=MAX_PIXELS.value, title=title,
                     split=split)
  except out_folder.OutError as e:
    raise command.NothingDone(str(e)) from None


def exit_status(records: list[dict[str, Any]]) -> int:
  """command.exit_status of a batch: records with an error are the skipped images. A worker
  whose share is empty (more workers than images) has done its part."""
  if not records and splits_images():
    return command.OK
  skipped = sum("error" in record for record in records)
  return command.exit_status(len(records) - skipped, skipped)


def make_localizer() -> (localizer_lib.Localizer | noise_method.NoiseLocalizer
                          | camera_classifier.CameraLocalizer):
  """The method of --method, or that of the checkpoints' training stage: a camera classifier
  maps the patches that predict another camera than most; the others the consistency map."""
  if METHOD.value == "noise":
    if CHECKPOINT.value or NCUTS.value:
      raise app.UsageError("--method noise uses no model: drop --checkpoint and --ncuts")
    return noise_method.NoiseLocalizer()
  paths = CHECKPOINT.value or [checkpointing.BUNDLED_MODEL]
  try:
    configs = [checkpointing.restore_config(path) for path in paths]
  except (FileNotFoundError, checkpointing.CheckpointError) as e:
    raise command.NothingDone(str(e)) from None
  for path, config in zip(paths[1:], configs[1:]):
    try:
      checkpointing.check_compatible(config.to_dict(), configs[0])
    except ValueError as e:
      raise command.NothingDone(f"{path}: cannot average with {paths[0]}: {e}") from None
  stage = configs[0].get("stage")
  if stage == "camera_classification" and NCUTS.value:
    raise app.UsageError("a camera classifier gives no consistency matrix: drop --ncuts")
  # The image-consistency network's 83 head outputs are hidden units, not attributes.
  options = localizer_lib.Options(
      num_patches=NUM_PATCHES.value, stride=STRIDE.value, ncuts=NCUTS.value,
      attribute_maps=ATTR_MAPS.value and stage != "image_consistency",
      pair_memory_bytes=PAIR_MEMORY_MB.value * 2**20)
  try:
    models = [checkpointing.restore(path) for path in paths]
  except checkpointing.CheckpointError as e:
    raise command.NothingDone(str(e)) from None
  if stage == "camera_classification":
    return camera_classifier.CameraLocalizer(models, options)
  return localizer_lib.Localizer(models, options)
