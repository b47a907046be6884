"""The fused consistency: the noise level of two patches as one more "same or not" term."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import CHART_SPLICES, REPO
from eval import calibration
from eval.localization import localizer as localizer_lib
from eval.localization import noise_levels
from exif_jax.training import checkpointing


def chart_image(stem: str = "authentic_00000") -> np.ndarray:
  return np.asarray(Image.open(CHART_SPLICES / "images" / f"{stem}.png").convert("RGB"))


def with_noise(image: np.ndarray, box: tuple[slice, slice], sigma: float) -> np.ndarray:
  noisy = image.astype(np.float32)
  noisy[box] += np.random.default_rng(0).normal(0, sigma, noisy[box].shape)
  return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def test_patch_noise_reads_noise_added_to_a_real_patch():
  patch = chart_image()[100:228, 200:328]
  noisier = with_noise(patch, (slice(None), slice(None)), 8)
  saturated = np.full_like(patch, 255)
  log_sigma, usable = noise_levels.patch_noise(np.stack([patch, noisier, saturated]))
  assert usable.tolist() == [True, True, False]
  assert log_sigma[1] > log_sigma[0] + np.log(1.5)
  log_odds = noise_levels.pair_log_odds(log_sigma, usable)
  np.testing.assert_array_equal(log_odds, log_odds.T)
  np.testing.assert_array_equal(np.diag(log_odds), 0)
  assert log_odds[0, 1] < -0.5  # Noise levels apart: evidence against one source.
  assert not log_odds[2].any()  # A saturated patch tells nothing.


def test_fusion_moves_only_the_pairs_whose_noise_differs():
  learned = np.array([[0.9, 0.6, 0.7], [0.6, 0.9, 0.4], [0.7, 0.4, 0.9]], np.float32)
  log_odds = noise_levels.pair_log_odds(np.log(np.array([1.0, 1.0, 3.0])), np.ones(3, bool))
  np.testing.assert_allclose(noise_levels.fused_consistency(learned, log_odds, 0.0), learned,
                             rtol=1e-5)
  weak, strong = (noise_levels.fused_consistency(learned, log_odds, w) for w in (0.5, 2.0))
  np.testing.assert_allclose(strong[:2, :2], learned[:2, :2], rtol=1e-5)  # Same noise.
  assert learned[0, 2] > weak[0, 2] > strong[0, 2]
  assert learned[1, 2] > weak[1, 2] > strong[1, 2]


def test_fused_map_finds_noise_the_learned_consistency_alone_does_not():
  image = chart_image()
  box = (slice(0, 200), slice(0, 250))
  noisy = with_noise(image, box, 8)
  mask = np.zeros(image.shape[:2], bool)
  mask[box] = True
  model = checkpointing.restore(checkpointing.BUNDLED_MODEL)

  def contrast(weight: float) -> float:
    localize = localizer_lib.Localizer(
        model, localizer_lib.Options(num_patches=100, attribute_maps=False,
                                     noise_weight=weight))
    heat = localize(noisy).map
    assert ("noise_weight" in localize.settings) == bool(weight)
    return float(heat[mask].mean() - heat[~mask].mean())

  learned, fused = contrast(0.0), contrast(2.0)
  assert fused > 0.1 and fused > learned + 0.05


def run_cli(*args, status=0) -> subprocess.CompletedProcess:
  result = subprocess.run([sys.executable, "-m", "exif_jax", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, check=False)
  assert result.returncode == status, result.stderr[-3000:]
  return result


def test_noise_method_refuses_a_noise_weight(tmp_path):
  result = run_cli("localize", CHART_SPLICES / "images", "--out", tmp_path / "out", "--method",
                   "noise", "--noise_weight", "1", status=2)
  assert "--method noise uses no model" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_verdicts_of_a_fusion_come_from_a_calibration_with_its_weight(tmp_path):
  model = tmp_path / "model"
  shutil.copytree(checkpointing.BUNDLED_MODEL, model)
  images, masks = CHART_SPLICES / "images", CHART_SPLICES / "masks"
  common = ("--checkpoint", model, "--num_patches", "100", "--noattr_maps")
  run_cli("eval", "--images", images, "--masks", masks, "--out", tmp_path / "fused",
          "--noise_weight", "0.5", *common)
  shutil.copytree(tmp_path / "fused", tmp_path / "learned")  # The same maps, said to be W = 0.
  settings_path = tmp_path / "learned" / "settings.json"
  settings = json.loads(settings_path.read_text())
  del settings["noise_weight"]
  settings_path.write_text(json.dumps(settings))
  mixed = run_cli("calibrate", "--model", model, "--images", images, "--masks", masks,
                  "--eval_out", tmp_path / "fused", "--images", images, "--masks", masks,
                  "--eval_out", tmp_path / "learned", status=2)
  assert "different --noise_weight" in mixed.stderr
  run_cli("calibrate", "--model", model, "--images", images, "--masks", masks, "--eval_out",
          tmp_path / "fused", "--max_false_positive_rate", "0.5")
  fitted = calibration.load(model)
  assert fitted.noise_weight == 0.5 and "noise fused at weight 0.5" in fitted.summary()

  run_cli("localize", images, "--out", tmp_path / "plain", *common)
  run_cli("localize", images, "--out", tmp_path / "same", "--noise_weight", "0.5", *common)
  for name in ("spliced_00000.png", "authentic_00000.png"):
    plain = json.loads((tmp_path / "plain" / "results" / f"{name}.json").read_text())
    same = json.loads((tmp_path / "same" / "results" / f"{name}.json").read_text())
    assert plain["verdict"] == calibration.UNCALIBRATED  # Fitted on other scores.
    assert same["verdict"] == fitted.verdict(same["score"])
  settings = json.loads((tmp_path / "same" / "settings.json").read_text())
  assert settings["noise_weight"] == 0.5 and settings["calibration"]["noise_weight"] == 0.5


def test_negative_weight_is_a_usage_error(tmp_path):
  result = run_cli("localize", CHART_SPLICES / "images", "--out", tmp_path / "out",
                   "--noise_weight=-1", status=2)
  assert "noise_weight" in result.stderr and len(result.stderr.strip().splitlines()) == 1
