"""The classical noise-level method on real images the repository ships."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import CHART_SPLICES, REPO, SHARED_DATA
from eval import metrics
from eval.localization import noise_levels
from eval.localization import noise_method


def load(kind: str, stem: str) -> np.ndarray:
  return np.asarray(Image.open(CHART_SPLICES / kind / f"{stem}.png").convert("RGB"))


def test_pasted_region_of_another_camera_is_hotter():
  """spliced_00000 pastes a Pentax photo into an Epson one: their noise differs."""
  mask = load("masks", "spliced_00000")[..., 0] > 127
  result = noise_method.NoiseLocalizer()(load("images", "spliced_00000"))
  assert result.map.shape == mask.shape and result.map.dtype == np.float32
  assert 0 <= result.map.min() and result.map.max() <= 1
  assert result.map[mask].mean() > result.map[~mask].mean() + 0.2
  assert metrics.average_precision(mask, result.map) > 3 * mask.mean()


def test_added_noise_lights_up_where_it_was_added():
  image = load("images", "authentic_00000").astype(np.float32)
  noisy = image.copy()
  rng = np.random.default_rng(0)
  noisy[100:260, 200:400] += rng.normal(0, 6, noisy[100:260, 200:400].shape)
  noisy = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
  mask = np.zeros(image.shape[:2], bool)
  mask[100:260, 200:400] = True
  localize = noise_method.NoiseLocalizer()
  result = localize(noisy)
  assert result.map[mask].mean() > result.map[~mask].mean() + 0.3
  assert result.score > localize(image.astype(np.uint8)).score


def test_flat_image_has_no_signal():
  result = noise_method.NoiseLocalizer()(np.full((200, 300, 3), 128, np.uint8))
  assert result.no_signal and result.score == 0 and not result.map.any()


def test_block_count_is_bounded_on_large_images():
  image = np.random.default_rng(1).integers(0, 255, (3000, 4000, 3), np.uint8)
  result = noise_method.NoiseLocalizer()(image)
  assert result.num_patches <= noise_levels.MAX_BLOCKS_PER_SIDE**2
  assert result.map.shape == (3000, 4000)


def test_image_smaller_than_a_block_is_refused():
  with pytest.raises(ValueError, match="at least 32x32"):
    noise_method.NoiseLocalizer()(np.zeros((20, 300, 3), np.uint8))


@pytest.mark.slow
def test_localize_and_eval_run_the_noise_method_through_the_output_contract(tmp_path):
  out = tmp_path / "localize"
  command = [sys.executable, "-m", "eval.commands.localize", str(CHART_SPLICES / "images"), "--out",
             str(out), "--method", "noise"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  settings = json.loads((out / "settings.json").read_text())
  assert settings["method"] == "noise" and "model_sha256" not in settings
  stems = sorted(p.name for p in (CHART_SPLICES / "images").glob("*.png"))  # Suffix included.
  assert sorted(p.stem for p in (out / "maps").glob("*.npy")) == stems
  expected = noise_method.NoiseLocalizer()(load("images", "spliced_00000")).map
  np.testing.assert_array_equal(np.load(out / "maps" / "spliced_00000.png.npy"), expected)
  assert "No model" in (out / "report.html").read_text()

  evaluated = tmp_path / "eval"
  command = [sys.executable, "-m", "eval.commands.run_eval",
             "--images", str(CHART_SPLICES / "images"), "--masks", str(CHART_SPLICES / "masks"),
             "--out", str(evaluated), "--method", "noise"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  metrics_json = json.loads((evaluated / "metrics.json").read_text())
  assert 0 <= metrics_json["p-mAP"] <= 1 and "detection_auc" in metrics_json

  with_model = [sys.executable, "-m", "eval.commands.localize", str(CHART_SPLICES / "images"),
                "--out", str(out), "--num_patches", "16"]
  result = subprocess.run(with_model, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode != 0 and "other settings" in result.stderr  # Never mixed.


def test_noise_method_refuses_model_flags(tmp_path):
  command = [sys.executable, "-m", "eval.commands.localize", str(CHART_SPLICES / "images"), "--out",
             str(tmp_path / "out"), "--method", "noise", "--ncuts"]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode != 0 and "--method noise uses no model" in result.stderr
  assert not (tmp_path / "out").exists()


@pytest.mark.shared_data
def test_shared_tampered_fixture_is_hotter_inside_the_pasted_star():
  tampered = SHARED_DATA / "fixtures" / "tampered"
  image = np.asarray(Image.open(tampered / "yorkin_test1_fake.tiff").convert("RGB"))
  mask = np.asarray(Image.open(tampered / "yorkin_test1_mask.png").convert("L")) > 127
  heat = noise_method.NoiseLocalizer()(image).map
  assert heat[mask].mean() > heat[~mask].mean() + 0.3
