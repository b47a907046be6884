"""The fusion sweep on the chart splices: weight 0 is the learned map, the cache is reused."""

import json
import subprocess
import sys

import pytest

from conftest import CHART_SPLICES, REPO


def sweep(tmp_path, weights: str) -> list[dict]:
  command = [sys.executable, "scripts/noise_fusion_sweep.py", "--set", f"charts={CHART_SPLICES}",
             "--cache", str(tmp_path / "cache"), "--weights", weights, "--num_patches", "100"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.slow
def test_sweep_measures_each_weight_and_reuses_the_cache(tmp_path):
  rows = sweep(tmp_path, "0,2,noise")
  assert [row["weight"] for row in rows] == ["0", "2", "noise"]
  assert all(0 <= row["p-mAP"] <= 1 and 0 <= row["detection_auc"] <= 1 for row in rows)
  assert rows[0] != rows[1]  # The noise term moves the maps.
  cached = sorted(p.name for p in (tmp_path / "cache" / "charts").iterdir())
  assert cached == sorted(f"{p.stem}.npz" for p in (CHART_SPLICES / "images").glob("*.png"))

  evaluated = tmp_path / "eval"
  command = [sys.executable, "-m", "exif_jax", "eval", "--images", str(CHART_SPLICES / "images"),
             "--masks", str(CHART_SPLICES / "masks"), "--out", str(evaluated), "--num_patches",
             "100", "--noattr_maps"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((evaluated / "metrics.json").read_text())
  assert abs(rows[0]["p-mAP"] - metrics["p-mAP"]) < 1e-3  # Weight 0: the learned map of eval.

  written = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "charts").iterdir()}
  assert sweep(tmp_path, "2") == [rows[1]]
  assert {p: p.stat().st_mtime_ns for p in written} == written  # Read, not recomputed.
