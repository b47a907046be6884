"""The decision rule: thresholds fitted on validation scores give the error rates they claim,
the shipped model's stored rates are what its thresholds give on its stored scores, and
`localize` verdicts follow a model's calibration.json."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import CHART_SPLICES, REPO
from eval import calibration
from exif_jax.training import checkpointing


def test_fit_meets_both_error_budgets_at_the_extremes():
  rng = np.random.default_rng(0)
  authentic, spliced = rng.normal(0.4, 0.1, 200), rng.normal(0.6, 0.1, 100)
  validation = {"set": {"scores": [*authentic, *spliced], "labels": [0] * 200 + [1] * 100}}
  fitted = calibration.fit(validation, 0.5, 0.3, max_false_positive_rate=0.05,
                           max_missed_rate=0.1)
  assert np.mean(authentic >= fitted.spliced_at) == fitted.false_positive_rate == 0.05
  # The lowest such threshold: one step down flags one more authentic image.
  assert np.mean(authentic >= np.nextafter(fitted.spliced_at, 0)) > 0.05
  assert np.mean(spliced < fitted.clear_below) == fitted.missed_rate <= 0.1
  assert fitted.clear_below <= fitted.spliced_at
  assert fitted.verdict(fitted.spliced_at) == calibration.SPLICED
  assert fitted.verdict(np.nextafter(fitted.clear_below, 0)) == calibration.CLEAR
  assert fitted.verdict((fitted.clear_below + fitted.spliced_at) / 2) == calibration.INCONCLUSIVE
  assert calibration.verdict(None, 0.9) == calibration.UNCALIBRATED


def test_a_separable_set_leaves_no_inconclusive_band():
  validation = {"set": {"scores": [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], "labels": [0, 0, 0, 1, 1, 1]}}
  fitted = calibration.fit(validation, 0.5, 1.0, max_false_positive_rate=0.0,
                           max_missed_rate=0.0)
  assert fitted.false_positive_rate == 0 and fitted.detection_rate == 1
  assert fitted.clear_below == fitted.spliced_at  # min(0.7, just above 0.3).
  assert fitted.clear_below == pytest.approx(0.3)


def test_the_shipped_rates_are_what_the_shipped_thresholds_give_on_the_shipped_scores():
  shipped = calibration.load(checkpointing.BUNDLED_MODEL)
  assert shipped is not None, "the bundled model ships its calibration"
  scores = np.concatenate([s["scores"] for s in shipped.validation.values()])
  labels = np.concatenate([s["labels"] for s in shipped.validation.values()])
  assert len(shipped.validation) >= 2 and (labels == 0).sum() >= 50 and (labels == 1).sum() >= 50
  measured = calibration.rates(scores, labels, shipped.spliced_at, shipped.clear_below)
  for name, value in measured.items():
    assert getattr(shipped, name) == pytest.approx(value), name
  assert 0 < shipped.pixel_threshold < 1


@pytest.mark.slow
def test_calibrate_then_localize_gives_verdicts_by_the_stored_thresholds(tmp_path):
  model = tmp_path / "model"
  shutil.copytree(checkpointing.BUNDLED_MODEL, model)
  (model / calibration.FILE).unlink()
  images, masks = CHART_SPLICES / "images", CHART_SPLICES / "masks"

  def run(*args):
    result = subprocess.run([sys.executable, "-m", "exif_jax", *map(str, args)], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result

  run("eval", "--checkpoint", model, "--images", images, "--masks", masks, "--out",
      tmp_path / "val")
  uncalibrated = json.loads((tmp_path / "val" / "results" / "spliced_00000.json").read_text())
  assert uncalibrated["verdict"] == calibration.UNCALIBRATED
  printed = run("calibrate", "--model", model, "--images", images, "--masks", masks,
                "--eval_out", tmp_path / "val", "--max_false_positive_rate", "0.5").stdout
  fitted = calibration.load(model)
  assert fitted.summary() in printed
  run("localize", images, "--checkpoint", model, "--out", tmp_path / "out")
  for result in (tmp_path / "out" / "results").glob("*.json"):
    record = json.loads(result.read_text())
    assert record["verdict"] == fitted.verdict(record["score"])
  settings = json.loads((tmp_path / "out" / "settings.json").read_text())
  assert settings["calibration"]["summary"] == fitted.summary()
