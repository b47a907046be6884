"""Two real processes on localhost train together through jax.distributed (gloo on CPU)."""

import json
import os
import subprocess
import sys

import numpy as np
import portpicker
import pytest

from conftest import REPO


@pytest.mark.slow
def test_two_processes_match_the_single_process_run(shards_dir, tiny_run, tmp_path):
  single_dir, _ = tiny_run
  port = portpicker.pick_unused_port()
  workdir = tmp_path / "two_hosts"
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  logs = [tmp_path / f"process_{i}.log" for i in range(2)]
  # Output to files: a full pipe would block one process while the other waits for it.
  processes = [subprocess.Popen(
      [sys.executable, "-m", "exif_jax.main", "--config=configs/tiny.py",
       f"--workdir={workdir}", f"--config.data.data_dir={shards_dir}",
       "--config.distributed=True", f"--config.coordinator_address=localhost:{port}",
       "--config.num_processes=2", f"--config.process_id={i}"],
      cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
      for i, log in enumerate(logs)]
  for process in processes:
    process.wait(timeout=600)
  outputs = [log.read_text() for log in logs]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
  assert "process 1 of 2, 2 local / 4 global devices" in outputs[1]

  def losses(directory):
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    return [r["train/loss"] for r in map(json.loads, lines) if "train/loss" in r]

  two_hosts = losses(workdir)
  assert len(two_hosts) == 3
  # Same pairs, same parameters; only float32 summation order differs (gloo vs in-process
  # all-reduce). Another slice of the data would move the loss by ~1e-2.
  np.testing.assert_allclose(two_hosts, losses(single_dir), rtol=1e-3)
  assert (workdir / "checkpoints" / "6" / "model").is_dir()
  # Each host saved the position of its own slice of the data.
  assert sorted(p.name for p in (workdir / "checkpoints" / "6" / "data").glob("*.json")) == [
      "process_0-of-2.json", "process_1-of-2.json"]
