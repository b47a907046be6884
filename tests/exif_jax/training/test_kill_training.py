"""A training process killed with SIGKILL, or preempted with SIGTERM, mid-run resumes to the
uninterrupted parameters."""

import re
import signal
import subprocess

import numpy as np
import pytest

from conftest import REPO
from conftest import kill_when
from conftest import params
from conftest import train_command
from exif_jax.cli import command
from exif_jax.training import checkpointing


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
  assert "resumed from step" in rerun.stdout
  resumed = checkpointing.restore(workdir)
  for a, b in zip(params(resumed), params(reference), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sigterm_saves_the_step_it_lands_in_and_resumes_bit_exact(shards_dir, tiny_run,
                                                                   tmp_path):
  _, reference = tiny_run
  workdir = tmp_path / "run"
  stopped = kill_when(train_command(workdir, shards_dir),
                      (workdir / "checkpoints" / "2").is_dir, sig=signal.SIGTERM)
  assert stopped.returncode == command.PREEMPTED, stopped.stderr[-3000:]
  saved = re.search(r"preempted: saved step (\d+) in \S+; rerun the same command to resume",
                    stopped.stderr)
  assert saved, stopped.stderr[-3000:]
  step = int(saved.group(1))
  assert 2 < step < 6, f"saved step {step}: the signal came before step 2's save or too late"
  assert (workdir / "checkpoints" / str(step) / "model").is_dir()

  rerun = subprocess.run(train_command(workdir, shards_dir), cwd=REPO, capture_output=True,
                         text=True, check=False)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert f"resumed from step {step}" in rerun.stdout
  for a, b in zip(params(checkpointing.restore(workdir)), params(reference), strict=True):
    np.testing.assert_array_equal(a, b)
