"""`exif-jax train` with a flag, config, workdir or dataset it cannot use: one `error:` line
naming it, exit status 2, and no workdir; a dataset without validation photos trains without
validation."""

import json
import subprocess
import sys

import pytest

from conftest import PHOTOS
from conftest import REPO
from conftest import run_data_prep
from conftest import train_command
from exif_jax.training import checkpointing

# id: (config file, data_dir, workdir, flags, what the line says). Paths are formatted with
# {shards} (the tiny dataset), {tmp} (holding `file`, a regular file; `empty`, an empty folder;
# `info_only`, a dataset_info.json without shards) and {bundled} (a checkpoint of another model).
CASES = {
    "missing config file": ("nosuch.py", "{shards}", "{tmp}/run", [],
                            "--config nosuch.py: no such file"),
    "config file not Python": ("README.md", "{shards}", "{tmp}/run", [],
                               "--config README.md: not a config file (SyntaxError: "),
    "config file without get_config": ("configs/common.py", "{shards}", "{tmp}/run", [],
                                       "--config configs/common.py: not a config file (no "
                                       "get_config()"),
    "unknown field": ("configs/tiny.py", "{shards}", "{tmp}/run", ["--config.nosuch=1"],
                      "--config.nosuch: no such field in the config of configs/tiny.py"),
    "unknown nested field": ("configs/tiny.py", "{shards}", "{tmp}/run",
                             ["--config.train.nosuch=1"], "--config.train.nosuch: no such field"),
    "train batch size 0": ("configs/tiny.py", "{shards}", "{tmp}/run",
                           ["--config.train.batch_size=0"],
                           "config.train.batch_size=0: expected at least 1"),
    "train batch size negative": ("configs/tiny.py", "{shards}", "{tmp}/run",
                                  ["--config.train.batch_size=-8"],
                                  "config.train.batch_size=-8: expected at least 1"),
    "eval batch size 0": ("configs/tiny.py", "{shards}", "{tmp}/run",
                          ["--config.eval.batch_size=0"],
                          "config.eval.batch_size=0: expected at least 1"),
    "eval batch size negative": ("configs/tiny.py", "{shards}", "{tmp}/run",
                                 ["--config.eval.batch_size=-8"],
                                 "config.eval.batch_size=-8: expected at least 1"),
    "steps 0": ("configs/tiny.py", "{shards}", "{tmp}/run", ["--config.train.steps=0"],
                "config.train.steps=0: expected at least 1"),
    "learning rate NaN": ("configs/tiny.py", "{shards}", "{tmp}/run",
                          ["--config.train.learning_rate=nan"],
                          "config.train.learning_rate=nan: expected a finite number above 0"),
    "learning rate negative": ("configs/tiny.py", "{shards}", "{tmp}/run",
                               ["--config.train.learning_rate=-0.001"],
                               "config.train.learning_rate=-0.001: expected a finite number"),
    "learning rate 0": ("configs/tiny.py", "{shards}", "{tmp}/run",
                        ["--config.train.learning_rate=0"],
                        "config.train.learning_rate=0.0: expected a finite number"),
    "workdir a file": ("configs/tiny.py", "{shards}", "{tmp}/file", [],
                       "--workdir {tmp}/file: not a folder"),
    "workdir under a file": ("configs/tiny.py", "{shards}", "{tmp}/file/run", [],
                             "--workdir {tmp}/file/run: {tmp}/file is not a folder"),
    "workdir empty": ("configs/tiny.py", "{shards}", "", [],
                      "--workdir is empty: give a run folder"),
    "data_dir missing": ("configs/tiny.py", "{tmp}/nosuch", "{tmp}/run", [],
                         "config.data.data_dir: {tmp}/nosuch: no such dataset directory"),
    "data_dir empty": ("configs/tiny.py", "", "{tmp}/run", [],
                       "config.data.data_dir is empty: give a dataset folder"),
    "data_dir not a dataset": ("configs/tiny.py", "{tmp}/empty", "{tmp}/run", [],
                               "config.data.data_dir: {tmp}/empty/dataset_info.json: missing"),
    "data_dir without shards": ("configs/tiny.py", "{tmp}/info_only", "{tmp}/run", [],
                                "config.data.data_dir={tmp}/info_only: no training photos"),
    "classifier without init_from": ("configs/tiny.py", "{shards}", "{tmp}/run",
                                     ["--config.stage=classifier"],
                                     "stage 'classifier' needs config.init_from"),
    "classifier from a missing checkpoint": ("configs/tiny.py", "{shards}", "{tmp}/run",
                                             ["--config.stage=classifier",
                                              "--config.init_from={tmp}/nosuch"],
                                             "config.init_from={tmp}/nosuch: {tmp}/nosuch: no "
                                             "checkpoint"),
    "classifier from another model": ("configs/tiny.py", "{shards}", "{tmp}/run",
                                      ["--config.stage=classifier",
                                       "--config.init_from={bundled}"],
                                      "config.init_from={bundled}: checkpoint is incompatible "
                                      "with the config: model."),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_flag_config_workdir_or_dataset_is_one_line_before_the_workdir(
    case, shards_dir, tmp_path):
  config, data_dir, workdir, flags, expected = case
  (tmp_path / "file").write_text("a file")
  (tmp_path / "empty").mkdir()
  (tmp_path / "info_only").mkdir()
  (tmp_path / "info_only" / "dataset_info.json").write_text("{}")
  paths = {"shards": shards_dir, "tmp": tmp_path, "bundled": checkpointing.BUNDLED_MODEL}
  workdir, data_dir = workdir.format(**paths), data_dir.format(**paths)
  command = train_command(workdir, data_dir, *(f.format(**paths) for f in flags), config=config)
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert result.stderr.splitlines()[-1].startswith(f"error: {expected.format(**paths)}"), (
      result.stderr)
  made = [tmp_path / "run", REPO / "config.json", REPO / "checkpoints"]
  assert not any(path.exists() for path in made)
  assert (tmp_path / "file").read_text() == "a file"


def test_a_missing_config_file_without_overrides_is_one_line(tmp_path):
  """config_flags raises a missing file's error only where the config is first used."""
  result = subprocess.run([sys.executable, "-m", "exif_jax.main", "--config", "nosuch.py",
                           "--workdir", str(tmp_path / "run")],
                          cwd=REPO, capture_output=True, text=True, check=False)
  assert (result.returncode, result.stderr) == (2, "error: --config nosuch.py: no such file\n")
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_dataset_without_validation_photos_trains_without_validation(tmp_path):
  shards = tmp_path / "shards"
  prep = run_data_prep(PHOTOS, shards, "--patches_per_photo=4", "--val_fraction=0",
                       "--photos_per_shard=12", "--processes=2")
  assert prep.returncode == 0, prep.stderr[-3000:]
  workdir = tmp_path / "run"
  command = train_command(workdir, shards, "--config.train.steps=3")
  for _ in range(2):  # The rerun finds the last step done and ends too.
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"no validation photos in {shards} (its val split is empty): training without " \
           "validation\n" in result.stdout
    assert "val loss" not in result.stdout
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records if "train/loss" in r] == [2, 3]
  assert not any(key.startswith("val/") for r in records for key in r)
  assert (workdir / "checkpoints" / "3").is_dir()
