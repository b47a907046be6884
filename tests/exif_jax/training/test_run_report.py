"""What a training run says and leaves beside its checkpoints: the summary, validation lines,
WORKDIR/config.json (and the refusal of a rerun that changes the model), a profiler trace."""

import json
import re
import subprocess

import pytest

from conftest import REPO
from conftest import train_command


@pytest.mark.slow
def test_run_reports_saves_its_config_and_traces_the_profiled_steps(shards_dir, tmp_path):
  workdir = tmp_path / "run"
  result = subprocess.run(train_command(workdir, shards_dir, "--config.train.profile_steps=2,3"),
                          cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert re.search(r"^4 cpu devices on 1 hosts, mesh \{'data': 4\}; batch 8 global, 2 per "
                   r"device; 6 steps; photos: \d+ train, \d+ val$", result.stdout, re.M)
  for step in (3, 6):
    assert re.search(rf"^step {step}: val loss \d+\.\d{{4}}, mean AUC \d\.\d{{4}}, mean "
                     r"accuracy \d\.\d{4}$", result.stdout, re.M), result.stdout

  saved = json.loads((workdir / "config.json").read_text())
  assert saved["train"]["profile_steps"] == "2,3"
  assert saved["model"]["post_processing_classes"]  # Resolved: derived from the data.

  traces = list((workdir / "profile").glob("plugins/profile/*/*.xplane.pb"))
  assert len(traces) == 1
  assert b"train_step" in traces[0].read_bytes()

  refused = subprocess.run(train_command(workdir, shards_dir, "--config.model.width=8"),
                           cwd=REPO, capture_output=True, text=True, check=False)
  assert refused.returncode == 2
  assert refused.stderr == (f"error: {workdir / 'config.json'}: checkpoint is incompatible "
                            "with the config: model.width: checkpoint 4, config 8\n")


@pytest.mark.parametrize("steps", ["3", "3,2", "0,2", "a,b"])
def test_bad_profile_steps_are_refused_in_one_line(tmp_path, steps):
  result = subprocess.run(
      train_command(tmp_path / "run", tmp_path, f"--config.train.profile_steps={steps}"),
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 2
  assert result.stderr == (f"error: config.train.profile_steps='{steps}': expected \"A,B\", "
                           "steps 1 <= A <= B\n")
