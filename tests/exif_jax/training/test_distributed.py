"""Two real processes on localhost train together through jax.distributed (gloo on CPU)."""

import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import portpicker
import pytest

from conftest import REPO
from conftest import train_command
from exif_jax.cli import command


def start_two_processes(workdir, shards_dir, logs):
  """The tiny config's run as processes 0 and 1 of a jax.distributed job, 2 devices each."""
  port = portpicker.pick_unused_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  # Output to files: a full pipe would block one process while the other waits for it.
  return [subprocess.Popen(
      train_command(workdir, shards_dir, "--config.distributed=True",
                    f"--config.coordinator_address=localhost:{port}",
                    "--config.num_processes=2", f"--config.process_id={i}"),
      cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
      for i, log in enumerate(logs)]


def losses(workdir):
  """{step: train/loss} of WORKDIR/metrics.jsonl; a step logged again keeps its last value."""
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return {r["step"]: r["train/loss"] for r in map(json.loads, lines) if "train/loss" in r}


def wait_for(processes, logs):
  """Each process's exit status and output, once both have ended."""
  for process in processes:
    process.wait(timeout=600)
  return [process.returncode for process in processes], [log.read_text() for log in logs]


@pytest.mark.slow
def test_two_processes_match_the_single_process_run(shards_dir, tiny_run, tmp_path):
  single_dir, _ = tiny_run
  workdir = tmp_path / "two_hosts"
  logs = [tmp_path / f"process_{i}.log" for i in range(2)]
  statuses, outputs = wait_for(start_two_processes(workdir, shards_dir, logs), logs)
  for status, output in zip(statuses, outputs):
    assert status == 0, output[-3000:]
  assert "4 cpu devices on 2 hosts, mesh {'data': 4}" in outputs[0]

  two_hosts = losses(workdir)
  assert len(two_hosts) == 3
  # Same pairs, same parameters; only float32 summation order differs (gloo vs in-process
  # all-reduce). Another slice of the data would move the loss by ~1e-2.
  np.testing.assert_allclose(list(two_hosts.values()), list(losses(single_dir).values()),
                             rtol=1e-3)
  assert (workdir / "checkpoints" / "6" / "model").is_dir()
  # Each host saved the position of its own slice of the data.
  assert sorted(p.name for p in (workdir / "checkpoints" / "6" / "data").glob("*.json")) == [
      "process_0-of-2.json", "process_1-of-2.json"]


@pytest.mark.slow
def test_sigterm_to_one_process_saves_one_step_on_both_and_resumes(shards_dir, tiny_run,
                                                                   tmp_path):
  single_dir, _ = tiny_run
  workdir = tmp_path / "two_hosts"
  logs = [tmp_path / f"process_{i}.log" for i in range(2)]
  processes = start_two_processes(workdir, shards_dir, logs)
  deadline = time.monotonic() + 600
  while (not (workdir / "checkpoints" / "2").is_dir() and time.monotonic() < deadline
         and all(process.poll() is None for process in processes)):
    time.sleep(0.01)
  processes[1].send_signal(signal.SIGTERM)  # As a preempted host gets it.
  statuses, outputs = wait_for(processes, logs)
  assert statuses == [command.PREEMPTED] * 2, outputs[0][-3000:] + outputs[1][-3000:]
  # JAX's preemption service told process 0 too, and both saved the same step.
  saved = {int(m) for output in outputs for m in re.findall(r"preempted: saved step (\d+)", output)}
  assert len(saved) == 1, saved
  step = saved.pop()
  assert 2 < step < 6, f"saved step {step}: the signal came before step 2's save or too late"

  statuses, outputs = wait_for(start_two_processes(workdir, shards_dir, logs), logs)
  assert statuses == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
  assert f"resumed from step {step}" in outputs[0]
  assert (workdir / "checkpoints" / "6" / "model").is_dir()
  # As the uninterrupted single process, up to float32 summation order (see above): the
  # losses of steps 1-2 and of steps 5-6 (step 4's mean covers only the steps after the
  # resume when it was step 3).
  single = losses(single_dir)
  np.testing.assert_allclose([losses(workdir)[s] for s in (2, 6)], [single[s] for s in (2, 6)],
                             rtol=1e-3)
