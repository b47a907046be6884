"""Set-up shared by the `run_eval` and `localize` command lines, from their flags
(shared_flags.py)."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Sequence

import ml_collections
from absl import app

from eval import calibration as calibration_lib
from eval import metrics
from eval.commands import shared_flags
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
from exif_jax.training import checkpointing
from exif_jax.training import sharding
from exif_jax.training import validate

# A process whose images are done waits this long at exit for the others of its
# jax.distributed job: shares of equal size can take very different times.
_WAIT_FOR_OTHER_PROCESSES_S = 24 * 3600


def splits_images() -> bool:
  """Whether this process is one of several sharing --out."""
  return (shared_flags.NUM_WORKERS.value > 1 or shared_flags.DISTRIBUTED.value
          or bool(shared_flags.COORDINATOR_ADDRESS.value))


def worker_split() -> workers.Split:
  """This process's share of the images; joins the jax.distributed job first when asked
  (before anything else uses JAX)."""
  if not (shared_flags.DISTRIBUTED.value or shared_flags.COORDINATOR_ADDRESS.value):
    return workers.Split(shared_flags.NUM_WORKERS.value, shared_flags.WORKER_INDEX.value)
  sharding.initialize(ml_collections.ConfigDict({
      "distributed": True, "coordinator_address": shared_flags.COORDINATOR_ADDRESS.value,
      "num_processes": shared_flags.NUM_PROCESSES.value,
      "process_id": shared_flags.PROCESS_ID.value}),
      shutdown_timeout_s=_WAIT_FOR_OTHER_PROCESSES_S)
  return workers.from_jax()


def run_batch(examples: list[datasets.Example], title: str,
              perturbations: Sequence[perturbations_lib.Perturbation] = ()
              ) -> list[dict[str, Any]]:
  """batch.run with the flags, or robustness.sweep when `perturbations` are given. --out is
  checked before the model loads; an --out that cannot take these results (see out_folder)
  stops the run with one line."""
  try:
    out = out_folder.check(shared_flags.OUT.value)
    examples = inputs.outside(examples, out)
    if not examples:  # Nothing to do: OUT stays as it was.
      raise command.NothingDone("no images to localize in the inputs given")
    split = worker_split()
    localizer, calibration, facts = make_localizer(), model_calibration(), model_facts()
    if perturbations:
      return robustness.sweep(examples, localizer, out, perturbations,
                              max_pixels=shared_flags.MAX_PIXELS.value, title=title,
                              calibration=calibration, model_facts=facts)
    return batch.run(examples, localizer, out, max_pixels=shared_flags.MAX_PIXELS.value,
                     title=title, split=split, calibration=calibration, model_facts=facts)
  except out_folder.OutError as e:
    raise command.NothingDone(str(e)) from None


def exit_status(records: list[dict[str, Any]]) -> int:
  """command.exit_status of a batch: records with an error are the skipped images. A worker
  whose share is empty (more workers than images) has done its part."""
  if not records and splits_images():
    return command.OK
  skipped = sum("error" in record for record in records)
  return command.exit_status(len(records) - skipped, skipped)


def checkpoints() -> list[str]:
  """The models of --checkpoint, in order; the bundled model when none is given."""
  return shared_flags.CHECKPOINT.value or [checkpointing.BUNDLED_MODEL]


def model_calibration() -> calibration_lib.Calibration | None:
  """The decision rule stored with the one model of --checkpoint (or the bundled model);
  None, so "uncalibrated", for the noise method, an ensemble, a model without one or one
  calibrated with another --noise_weight."""
  paths = checkpoints()
  if shared_flags.METHOD.value == "noise" or len(paths) != 1:
    return None
  try:
    calibration = calibration_lib.load(paths[0])
  except ValueError as e:
    raise command.NothingDone(str(e)) from None
  if calibration is None or calibration.noise_weight != shared_flags.NOISE_WEIGHT.value:
    return None  # Thresholds fitted on other scores (learned alone, or another fusion).
  return calibration


def print_metrics(out: pathlib.Path) -> None:
  """The main dataset metrics, once OUT/metrics.json is written (every image of the list
  done, masks known)."""
  path = out / "metrics.json"
  if path.exists():
    print(metrics.summary_table(json.loads(path.read_text())))


def model_facts() -> dict[str, Any] | None:
  """What the report says of the model (OUT/model.json): the stage, network and training
  steps of the (first) checkpoint's config and, for one model, its validation.json; None for
  the noise method. Read after make_localizer, which has checked the configs."""
  if shared_flags.METHOD.value == "noise":
    return None
  paths = checkpoints()
  config = checkpointing.restore_config(paths[0])
  facts = {"stage": config.stage, "depth": config.model.depth, "width": config.model.width,
           "steps": config.train.steps}
  validation = validate.load(paths[0]) if len(paths) == 1 else None
  return {**facts, "validation": validation} if validation else facts


def make_localizer() -> (localizer_lib.Localizer | noise_method.NoiseLocalizer
                          | camera_classifier.CameraLocalizer):
  """The method of --method, or that of the checkpoints' training stage: a camera classifier
  maps the patches that predict another camera than most; the others the consistency map."""
  if shared_flags.METHOD.value == "noise":
    if (shared_flags.CHECKPOINT.value or shared_flags.NCUTS.value
        or shared_flags.NOISE_WEIGHT.value):
      raise app.UsageError("--method noise uses no model: drop --checkpoint, --ncuts and "
                           "--noise_weight")
    return noise_method.NoiseLocalizer()
  paths = checkpoints()
  try:
    configs = [checkpointing.restore_config(path) for path in paths]
    for path, config in zip(paths, configs):
      checkpointing.check_maps_images(config, path)
  except (FileNotFoundError, checkpointing.CheckpointError) as e:
    raise command.NothingDone(str(e)) from None
  for path, config in zip(paths[1:], configs[1:]):
    try:
      checkpointing.check_compatible(config.to_dict(), configs[0])
    except ValueError as e:
      raise command.NothingDone(f"{path}: cannot average with {paths[0]}: {e}") from None
  stage = configs[0].get("stage")
  if stage == "camera_classification" and (shared_flags.NCUTS.value
                                           or shared_flags.NOISE_WEIGHT.value):
    raise app.UsageError("a camera classifier gives no consistency matrix: drop --ncuts and "
                         "--noise_weight")
  # The image-consistency network's 83 head outputs are hidden units, not attributes.
  options = localizer_lib.Options(
      num_patches=shared_flags.NUM_PATCHES.value, stride=shared_flags.STRIDE.value,
      ncuts=shared_flags.NCUTS.value,
      attribute_maps=shared_flags.ATTR_MAPS.value and stage != "image_consistency",
      pair_memory_bytes=shared_flags.PAIR_MEMORY_MB.value * 2**20,
      noise_weight=shared_flags.NOISE_WEIGHT.value)
  try:
    models = [checkpointing.restore(path) for path in paths]
  except checkpointing.CheckpointError as e:
    raise command.NothingDone(str(e)) from None
  if stage == "camera_classification":
    return camera_classifier.CameraLocalizer(models, options)
  return localizer_lib.Localizer(models, options)
