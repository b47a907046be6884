"""Broken checkpoints are one-line errors naming the path, from the library and the CLI."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import CHART_SPLICES, REPO
from exif_jax.training import checkpointing

STEP = "checkpoints/0"


def break_model_dir(step):
  shutil.rmtree(step / "model")


def drop_metadata(step):
  (step / "model" / "_METADATA").unlink()


def scramble_metadata(step):
  (step / "model" / "_METADATA").write_bytes(bytes(range(256)) * 4)


def scramble_manifest(step):
  """Orbax fails at the first array and closes its event loop while the others read on."""
  (step / "model" / "manifest.ocdbt").write_bytes(bytes(range(256)))


def scramble_array_data(step):
  for data in (step / "model" / "ocdbt.process_0" / "d").iterdir():
    data.write_bytes(bytes(range(256)) * 4)


def drop_array_data(step):
  shutil.rmtree(step / "model" / "ocdbt.process_0")


def null_config(step):
  (step / "config" / "metadata").write_text("null")


def invalid_json(step):
  (step / "config" / "metadata").write_text("{not json")


def edit_model(**fields):
  def edit(step):
    path = step / "config" / "metadata"
    config = json.loads(path.read_text())
    config["model"].update(fields)
    path.write_text(json.dumps(config))
  return edit


def nan_weights(step):
  """Weights that are not finite, written as a save writes them (a corrupt file reads so)."""
  work = step.parent.parent
  model, config = checkpointing.restore(work), checkpointing.restore_config(work)
  kernel = model.head[0].kernel
  kernel.value = kernel.value.at[0, 0].set(float("nan"))
  shutil.rmtree(work / "checkpoints")
  checkpointing.save_model(work, model, config)


BREAKS = {
    "no_model_folder": (break_model_dir, "no model/ folder"),
    "no_metadata": (drop_metadata, "unreadable or not this model's weights"),
    "random_metadata": (scramble_metadata, "unreadable or not this model's weights"),
    "random_manifest": (scramble_manifest, "Error decoding manifest"),
    "random_array_data": (scramble_array_data, "Error reading"),
    "no_array_data": (drop_array_data, "Error reading"),
    "null_config": (null_config, "no model section"),
    "invalid_json": (invalid_json, "unreadable config"),
    "huge_width": (edit_model(width=10**9), "model.width is 1000000000"),
    "unknown_depth": (edit_model(depth=7), "model.depth 7 is not one of"),
    "huge_camera_list": (edit_model(camera_names=["cam"] * 10**6),
                         "model.camera_names is not a list of at most"),
    "huge_post_processing_set": (edit_model(post_processing_classes=[4, 10**9, 3]),
                                 r"model.post_processing_classes\[1\] is 1000000000"),
    "width_of_another_model": (edit_model(width=8), "not this model's weights"),
    "nan_weights": (nan_weights, "corrupt weights, non-finite values in 1 arrays"),
}


@pytest.fixture
def broken(request, tmp_path):
  work = tmp_path / "bundled"
  shutil.copytree(checkpointing.BUNDLED_MODEL, work)
  breaker, reason = BREAKS[request.param]
  breaker(work / STEP)
  return work, reason


@pytest.mark.parametrize("broken", sorted(BREAKS), indirect=True)
def test_restore_names_the_path_and_the_reason(broken):
  work, reason = broken
  with pytest.raises(checkpointing.CheckpointError, match=reason) as error:
    checkpointing.restore(work)
  message = str(error.value)
  assert str(work / STEP) in message and "\n" not in message
  assert "bound method" not in message and "tensorstore_spec" not in message


@pytest.mark.parametrize("broken", ["random_metadata", "random_manifest", "random_array_data",
                                    "no_array_data", "huge_width", "nan_weights"],
                         indirect=True)
def test_localize_with_a_broken_checkpoint_is_one_line(broken, tmp_path):
  """Only the line: not the reads Orbax left running either ("Event loop is closed")."""
  work, reason = broken
  command = [sys.executable, "-m", "eval.commands.localize", str(CHART_SPLICES / "images"),
             "--checkpoint", str(work), "--out", str(tmp_path / "out")]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith(f"error: {work / STEP}") and reason in lines[0]
