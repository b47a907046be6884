"""The flags of `localize` and `eval`, defined apart from the set-up they drive so that
`--help` answers without importing JAX (cli_common.py reads them)."""

from __future__ import annotations

from typing import Any

from absl import flags

from eval.runs import workers
from exif_jax.data import files

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
MASKS = flags.DEFINE_string(
    "masks", None, "Folder of ground-truth masks (white = spliced) matched to the images by "
    "stem; an image without one is authentic. The report outlines them beside the maps and "
    "shows the metrics (metrics.json).")
NCUTS = flags.DEFINE_bool("ncuts", False, "Also segment with Normalized Cuts.")
NOISE_WEIGHT = flags.DEFINE_float(
    "noise_weight", 0.0, "With the learned model: > 0 fuses the noise method's evidence into "
    "every patch pair's P(same image), in log-odds with this weight (0.5 was fitted for the "
    "bundled model, docs/evaluation.md); 0: the learned consistency alone. Verdicts need a "
    "calibration fitted with the same weight.", lower_bound=0)
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
