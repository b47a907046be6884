"""Evaluation on real images with a trained tiny checkpoint: the output contract end to end."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES, PHOTOS, REPO
from eval import consistency
from eval import datasets
from eval import synth_splices


@pytest.fixture(scope="module")
def splices(tmp_path_factory):
  """4 spliced + 2 authentic images between different cameras, at most 384 px."""
  out = tmp_path_factory.mktemp("splices") / "set"
  photos = sorted((FIXTURES / "camera").glob("*.jpg"))
  synth_splices.make_splices(photos, out, num_spliced=4, num_authentic=2, seed=0, max_size=384)
  return out


def run_module(module, *args):
  result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def test_run_eval_writes_the_output_contract_and_resumes(tiny_run, splices, tmp_path):
  workdir, _ = tiny_run
  images = splices / "images"
  shutil.copytree(images, tmp_path / "images")
  (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG not really")
  out = tmp_path / "out"
  args = ["--checkpoint", str(workdir), "--images", str(tmp_path / "images"),
          "--masks", str(splices / "masks"), "--out", str(out), "--num_patches", "64"]
  first = run_module("eval.run_eval", *args)
  assert "skipped" in first.stderr and "broken.png" in first.stderr
  examples = datasets.folder(splices)
  for example in examples:
    heat = np.load(out / "maps" / f"{example.stem}.npy")
    image = np.asarray(Image.open(example.image_path))
    assert heat.shape == image.shape[:2] and heat.dtype == np.float32
    assert np.isfinite(heat).all() and 0 <= heat.min() and heat.max() <= 1
    assert Image.open(out / "maps" / f"{example.stem}.png").size == image.shape[1::-1]
    attr = np.load(out / "attr_maps" / f"{example.stem}.npz")
    assert attr["maps"].shape[0] == 83
  scores = list(csv.DictReader((out / "scores.csv").open()))
  assert sorted(r["stem"] for r in scores) == sorted(e.stem for e in examples)
  metrics = json.loads((out / "metrics.json").read_text())
  for name in ("p-mAP", "pi_mcc@0.5", "pi_f1@best", "detection_mAP", "detection_auc"):
    assert 0 <= metrics[name] <= 1, name
  assert metrics["num_localization_images"] == 4
  page = (out / "report.html").read_text()
  assert all(e.stem in page for e in examples) and "broken" in page

  # Rerun after losing one image's result: only that image is computed again.
  (out / "results" / f"{examples[0].stem}.json").unlink()
  second = run_module("eval.run_eval", *args)
  assert f"1 of {len(examples) + 1} images to do" in second.stderr  # The broken one is done.
  assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)


def test_localize_reports_each_bad_input_and_goes_on(tiny_run, tmp_path):
  workdir, _ = tiny_run
  folder = tmp_path / "in"
  folder.mkdir()
  shutil.copy(FIXTURES / "camera" / "casio_ex-s1.jpg", folder)
  Image.new("RGB", (300, 200), (120, 130, 140)).save(folder / "flat.png")
  Image.new("RGB", (100, 60)).save(folder / "tiny.png")
  (folder / "text.jpg").write_text("not an image")
  out = tmp_path / "out"
  result = run_module("eval.localize", str(folder), str(tmp_path / "missing.jpg"),
                      "--checkpoint", str(workdir), "--out", str(out), "--num_patches", "32")
  lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:-1]}
  assert "no signal" in lines["flat"]
  assert "smaller than" in lines["tiny"]
  assert "not an image" in lines["text"]
  assert "no such file" in lines["missing"]
  assert float(lines["casio_ex-s1"].split()[1]) >= 0
  np.testing.assert_array_equal(np.load(out / "maps" / "flat.npy"), 0)
  page = (out / "report.html").read_text()
  assert "no signal" in page and "No map: " in page


def test_pair_chunks_do_not_change_the_matrix(tiny_run):
  _, model = tiny_run
  image = np.asarray(Image.open(PHOTOS / "exif_samples" / sorted(
      p.name for p in (PHOTOS / "exif_samples").iterdir() if p.suffix.lower() == ".jpg")[0]))
  image = image[:400, :400]
  whole = consistency.ConsistencyModel(model)(image, num_patches=49)
  chunked_model = consistency.ConsistencyModel(model, pair_memory_bytes=1)
  assert chunked_model.rows_per_block(49, with_attributes=False) == 1
  chunked = chunked_model(image, num_patches=49)
  np.testing.assert_allclose(chunked.matrix, whole.matrix, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(whole.matrix, whole.matrix.T)
  assert ((0 <= whole.matrix) & (whole.matrix <= 1)).all()
