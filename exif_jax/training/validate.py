"""exif-jax validate --checkpoint MODEL --data_dir SHARDS [--split train] [--out FILE]: what a
model tells apart on camera models it never trained on, written as MODEL/validation.json.

Training's validation (train.evaluate: pairs of patches from the held-out camera models of a
dataset written by `exif-jax prep`) on a restored model, so that a report can say how far each
attribute's map is to be trusted: per attribute the ROC AUC and the balanced accuracy (chance
0.5 for both), the mean AUC, the number of pairs, the dataset and its held-out camera models.
A stage-2 model is validated on its stage-1 attributes, which its maps show. `exif-jax export`
writes the same file from the last validation of training.

`--split train` scores pairs of the training camera models instead (MODEL/validation_train.json):
a model that tells its training cameras apart far better than held-out ones lacks photos,
not capacity; one at the same level on both lacks capacity or hours.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import optax
from absl import app
from absl import flags
from etils import epath
from flax import nnx

from exif_jax.cli import command
from exif_jax.data import files
from exif_jax.data import records
from exif_jax.training import checkpointing
from exif_jax.training import metrics_writer
from exif_jax.training import sharding
from exif_jax.training import train

FILE = "validation.json"
SPLITS = ("val", "train")


def load(model_dir: epath.PathLike) -> dict[str, Any] | None:
  """The validation.json stored with a model, None when it has none."""
  path = epath.Path(model_dir) / FILE
  return json.loads(path.read_text()) if path.exists() else None


def facts(results: dict[str, float], data_dir: epath.PathLike, split: str = "val"
          ) -> dict[str, Any]:
  """validation.json from train.evaluate's results on `split` of the dataset at `data_dir`
  (recorded as given, so that a shipped file names no machine's folders); its camera models
  (held_out_cameras, or training_cameras for split "train") are null when that dataset is gone
  (an export long after training)."""
  attributes = {
      name: {"auc": auc, "balanced_accuracy": results[f"val/accuracy/{name}"]}
      for name, auc in ((key.removeprefix("val/auc/"), value) for key, value in results.items()
                        if key.startswith("val/auc/"))}
  path = epath.Path(data_dir)
  cameras = (sorted({photo.camera for photo in records.photo_index(path, split)[0]})
             if path.exists() else None)
  return {"mean_auc": results["val/mean_auc"], "num_pairs": results.get("val/num_pairs"),
          "dataset": os.fspath(path),
          "held_out_cameras" if split == "val" else "training_cameras": cameras,
          "attributes": attributes}


def validate(checkpoint: epath.PathLike, data_dir: epath.PathLike, split: str = "val"
             ) -> dict[str, Any]:
  """facts() of the model at `checkpoint` on `split` of `data_dir`."""
  if split not in SPLITS:
    raise ValueError(f"split {split!r}: expected one of {SPLITS}")
  config = checkpointing.restore_config(checkpoint)
  if config.stage == "classifier":  # Its attribute heads are stage 1's, frozen.
    config.stage = "exif"
  config.data.data_dir = os.fspath(data_dir)
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.eval.batch_size, mesh)
  model = checkpointing.restore(checkpoint)
  # train.evaluate's step takes the training state, a model and its optimizer.
  graphdef, state = nnx.split((model, nnx.Optimizer(model, optax.sgd(0.0), wrt=nnx.Param)))
  state = jax.device_put(state, sharding.replicated(mesh))
  results = train.evaluate(train.make_eval_step(graphdef, config, mesh), state, config, mesh,
                           split)
  return facts(results, data_dir, split)


def from_training(checkpoint: epath.PathLike) -> dict[str, Any] | None:
  """facts() of the run's last validation at or before the checkpoint's step, as its
  WORKDIR/metrics.jsonl holds it; None when it holds none."""
  folder = checkpointing.step_dir(checkpoint)
  metrics = folder.parent.parent / metrics_writer.METRICS
  if not metrics.exists():
    return None
  lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
  validations = [line for line in lines
                 if "val/mean_auc" in line and line["step"] <= int(folder.name)]
  if not validations:
    return None
  return facts(validations[-1], checkpointing.restore_config(folder).data.data_dir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  checkpoint, split = flags.FLAGS.checkpoint, flags.FLAGS.split
  try:
    result = validate(checkpoint, flags.FLAGS.data_dir, split)
  except (FileNotFoundError, checkpointing.CheckpointError, ValueError) as e:
    raise command.NothingDone(str(e)) from None
  default = FILE if split == "val" else FILE.replace(".json", f"_{split}.json")
  path = epath.Path(flags.FLAGS.out or epath.Path(checkpoint) / default)
  files.write_json(path, result)
  cameras = result.get("held_out_cameras") or result.get("training_cameras") or ()
  kind = "held-out" if split == "val" else "training"
  print(f"mean AUC {result['mean_auc']:.3f} on {result['num_pairs']} pairs of "
        f"{len(cameras)} {kind} camera models -> {files.display_name(os.fspath(path))}")


def define_flags():
  """Defined only when run as a program: export and the evaluation runs import this module
  beside their own --checkpoint and --out."""
  flags.DEFINE_string("checkpoint", None,
                      "A training workdir, exported model folder or step folder.", required=True)
  flags.DEFINE_string("data_dir", None, "A dataset written by exif-jax prep whose val split "
                      "holds camera models the model never trained on.", required=True)
  flags.DEFINE_enum("split", "val", SPLITS, "val: the held-out camera models; train: the "
                    "training camera models (MODEL/validation_train.json), to tell a model that "
                    "lacks photos (train far above val) from one that lacks capacity or hours.")
  flags.DEFINE_string("out", None, "Where to write it (default: CHECKPOINT/validation.json, "
                      "or validation_train.json with --split train).")


if __name__ == "__main__":
  define_flags()
  command.run(main)
