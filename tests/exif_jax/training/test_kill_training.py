"""A training process killed with SIGKILL mid-run resumes to the uninterrupted parameters."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from conftest import kill_when
from conftest import params
from exif_jax.training import checkpointing


def train_command(workdir, shards):
  return [sys.executable, "-m", "exif_jax.main", "--config", "configs/tiny.py",
          "--workdir", str(workdir), f"--config.data.data_dir={shards}"]


@pytest.mark.slow
def test_killed_training_resumes_bit_exact(shards_dir, tiny_run, tmp_path):
  _, reference = tiny_run
  workdir = tmp_path / "run"
  first = workdir / "checkpoints" / "2"
  kill_when(train_command(workdir, shards_dir), first.is_dir)
  assert first.is_dir(), "the run stopped before its first checkpoint"
  assert not (workdir / "checkpoints" / "6").exists(), "the run finished before the kill"

  rerun = subprocess.run(train_command(workdir, shards_dir), cwd=REPO, capture_output=True,
                         text=True, check=False)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "resumed from step" in rerun.stderr
  resumed = checkpointing.restore(workdir)
  for a, b in zip(params(resumed), params(reference), strict=True):
    np.testing.assert_array_equal(a, b)
