"""The chance baseline: smooth random maps against the real masks of the chart splices."""

import json
import subprocess
import sys

import numpy as np

from conftest import CHART_SPLICES, REPO
from eval import chance
from eval.data import datasets


def test_smooth_random_map_spans_zero_to_one_and_is_smooth():
  heat = chance.smooth_random_map((300, 400), np.random.default_rng(0))
  assert heat.shape == (300, 400) and heat.dtype == np.float32
  assert heat.min() == 0 and heat.max() == 1
  noise = np.random.default_rng(0).random((300, 400))
  assert np.abs(np.diff(heat, axis=1)).mean() < 0.05 * np.abs(np.diff(noise, axis=1)).mean()


def test_chance_metrics_on_real_masks():
  examples = datasets.folder_pair(CHART_SPLICES / "images", CHART_SPLICES / "masks")
  first = chance.chance_metrics(examples, draws=2, seed=0)
  assert first["num_localization_images"] == 4 and first["draws"] == 2
  # p-mAP takes the better of the map and its inverse: chance is above 0.5, well below 1.
  assert 0.5 <= first["p-mAP"] < 0.75
  assert 0 <= first["pixel_mAP"] < 0.5
  assert not any("detection" in name for name in first)
  assert chance.chance_metrics(examples, draws=2, seed=0) == first
  assert chance.chance_metrics(examples, draws=2, seed=1) != first


def test_command_line_prints_the_metrics_as_json():
  result = subprocess.run(
      [sys.executable, "-m", "eval.chance", str(CHART_SPLICES / "images"),
       str(CHART_SPLICES / "masks"), "--draws", "1"],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  printed = json.loads(result.stdout)
  assert printed["draws"] == 1 and 0.5 <= printed["p-mAP"] < 0.75
  usage = subprocess.run([sys.executable, "-m", "eval.chance"], cwd=REPO, capture_output=True,
                         text=True, check=False)
  assert usage.returncode != 0 and "IMAGES_DIR MASKS_DIR" in usage.stderr
