"""exif-jax validate and export write what a model tells apart on held-out camera models."""

import json
import math

from conftest import run_module
from exif_jax.data import exif_attrs
from exif_jax.data import records
from exif_jax.training import validate


def _check(validation, shards_dir):
  held_out = sorted({photo.camera for photo in records.photo_index(shards_dir, "val")[0]})
  assert validation["held_out_cameras"] == held_out and held_out
  assert validation["dataset"] == str(shards_dir)
  assert validation["num_pairs"] > 0 and 0.0 <= validation["mean_auc"] <= 1.0
  assert set(validation["attributes"]) <= set(exif_attrs.ATTRIBUTES)
  for scores in validation["attributes"].values():
    assert 0.0 <= scores["auc"] <= 1.0 and 0.0 <= scores["balanced_accuracy"] <= 1.0
  aucs = [scores["auc"] for scores in validation["attributes"].values()]
  assert math.isclose(validation["mean_auc"], sum(aucs) / len(aucs))


def test_validate_writes_validation_json_beside_the_model(tiny_run, shards_dir):
  workdir, _ = tiny_run
  result = run_module("exif_jax", "validate", f"--checkpoint={workdir}",
                      f"--data_dir={shards_dir}")
  validation = json.loads((workdir / "validation.json").read_text())
  _check(validation, shards_dir)
  assert "held-out camera models" in result.stdout


def test_validate_on_the_training_cameras(tiny_run, shards_dir):
  workdir, _ = tiny_run
  result = run_module("exif_jax", "validate", f"--checkpoint={workdir}",
                      f"--data_dir={shards_dir}", "--split=train")
  validation = json.loads((workdir / "validation_train.json").read_text())
  training = sorted({photo.camera for photo in records.photo_index(shards_dir, "train")[0]})
  assert validation["training_cameras"] == training and "held_out_cameras" not in validation
  # Other photos, other pairs: not the held-out score under another name.
  assert validate.validate(workdir, shards_dir)["mean_auc"] != validation["mean_auc"]
  assert validation["num_pairs"] > 0 and "training camera models" in result.stdout


def test_export_carries_the_runs_last_validation(tiny_run, shards_dir, tmp_path):
  workdir, _ = tiny_run
  run_module("exif_jax.training.export", f"--checkpoint={workdir}", f"--out={tmp_path / 'm'}")
  validation = json.loads((tmp_path / "m" / "validation.json").read_text())
  _check(validation, shards_dir)
  last = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
          if "val/mean_auc" in line][-1]
  assert validation["mean_auc"] == last["val/mean_auc"]
