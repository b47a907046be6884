"""Localization splits patches and pair rows over every local device (4 fake CPU devices here);
the matrix, maps and score are those of one device."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import CHART_SPLICES
from conftest import REPO
from eval.localization import consistency
from eval.localization import localizer as localizer_lib
from exif_jax.training import checkpointing

PHOTO = CHART_SPLICES / "images" / "spliced_00000.png"  # A map with clear contrast.
NUM_PATCHES = 100


@pytest.fixture(scope="module")
def bundled():
  return checkpointing.restore(checkpointing.BUNDLED_MODEL)


@pytest.fixture(scope="module")
def photo():
  return np.asarray(Image.open(PHOTO).convert("RGB"))


def test_four_devices_give_the_matrix_and_attribute_means_of_one(bundled, photo):
  one = consistency.ConsistencyModel(bundled, devices=jax.devices()[:1])
  four = consistency.ConsistencyModel(bundled)
  assert four.mesh.size == jax.local_device_count() == 4
  assert four.feature_batch % 4 == 0 and four.rows_per_block(NUM_PATCHES) % 4 == 0
  results = [model(photo, num_patches=NUM_PATCHES) for model in (one, four)]
  a = results[1].projections[0]
  assert a.sharding.is_fully_replicated and len(a.sharding.device_set) == 4
  assert np.ptp(results[0].matrix) > 0.1  # Patches the model tells apart: a real comparison.
  np.testing.assert_allclose(results[1].matrix, results[0].matrix, rtol=1e-5, atol=1e-6)
  region = np.arange(len(results[0].coords)) % 3 == 0
  np.testing.assert_allclose(four.attribute_means(results[1].projections, region),
                             one.attribute_means(results[0].projections, region),
                             rtol=1e-5, atol=1e-6)


def test_localize_on_one_device_matches_all_four(bundled, photo, tmp_path):
  """The CLI in a process with one CPU device against this process's four."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  out = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, "-m", "exif_jax", "localize", str(PHOTO), "--out", str(out),
       "--num_patches", str(NUM_PATCHES)], cwd=REPO, env=env, capture_output=True, text=True,
      check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  record = json.loads((out / "results" / f"{PHOTO.name}.json").read_text())
  four = localizer_lib.Localizer(
      bundled, localizer_lib.Options(num_patches=NUM_PATCHES, attribute_maps=True))
  assert four.consistency.mesh.size == 4
  expected = four(photo)
  assert not expected.no_signal and np.ptp(expected.map) > 0.1
  assert record["score"] == pytest.approx(expected.score, abs=1e-5)
  assert record["separating"] == list(expected.separating)
  np.testing.assert_allclose(np.load(out / "maps" / f"{PHOTO.name}.npy"), expected.map,
                             atol=1e-5)
  np.testing.assert_allclose(np.load(out / "attr_maps" / f"{PHOTO.name}.npz")["maps"],
                             expected.attribute_maps, atol=1e-5)
