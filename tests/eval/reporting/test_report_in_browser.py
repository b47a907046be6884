"""report.html renders offline in headless Chromium: every embedded image decodes, and the
page with ground truth and a validated model shows what it should."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_module
from eval.reporting import attribute_groups

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Counts what the browser shows; the title carries it into the DOM dump.
_COUNT_SHOWN = (
    "<script>window.onload = () => { const images = [...document.images]; const captions = "
    "[...document.querySelectorAll('figcaption')].map(c => c.textContent); "
    "document.title = JSON.stringify({decoded: images.filter(i => i.naturalWidth > 0).length, "
    "total: images.length, scales: images.filter(i => i.alt.startsWith('colour scale') && "
    "i.naturalWidth > 0).length, truth: captions.filter(c => c === 'ground truth, outlined')"
    ".length, metrics: document.querySelector('#metrics') !== null, captions}); };</script>")
_BROWSER = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="needs Chromium (apt-get install chromium)")


def _rendered(out, tmp_path) -> dict:
  """What headless Chromium shows of OUT/report.html; asserts a screenshot is not blank."""
  page = tmp_path / "page.html"
  page.write_text((out / "report.html").read_text().replace("</body>", _COUNT_SHOWN + "</body>"))
  dom = subprocess.run([*_BROWSER, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                       check=True, timeout=120).stdout
  shot = tmp_path / "report.png"
  subprocess.run([*_BROWSER, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                 capture_output=True, check=True, timeout=120)
  assert np.asarray(Image.open(shot).convert("L")).std() > 10  # Not a blank page.
  title = dom.split("<title>")[1].split("</title>")[0]
  return json.loads(title.replace("&quot;", '"').replace("&amp;", "&"))


@needs_chromium
def test_report_renders_in_headless_chromium(bundled_examples_out, tmp_path):
  shown = _rendered(bundled_examples_out, tmp_path)
  assert shown["total"] >= 12 and shown["decoded"] == shown["total"], shown
  assert shown["scales"] == 1 and not shown["metrics"]


@pytest.fixture(scope="module")
def validated_masks_out(shards_dir, tmp_path_factory):
  """OUT of `localize examples/images --masks examples/masks` with a copy of the bundled
  model that `exif-jax validate` gave a validation.json."""
  root = tmp_path_factory.mktemp("validated")
  model = root / "model"
  shutil.copytree(REPO / "exif_jax" / "bundled_model", model)
  run_module("exif_jax", "validate", f"--checkpoint={model}", f"--data_dir={shards_dir}")
  run_module("exif_jax", "localize", str(REPO / "examples" / "images"), "--masks",
             str(REPO / "examples" / "masks"), f"--checkpoint={model}", "--out",
             str(root / "out"), "--num_patches", "64")
  return root / "out", json.loads((model / "validation.json").read_text())


def test_localize_with_masks_outlines_the_truth_and_shows_the_metrics(validated_masks_out):
  out, validation = validated_masks_out
  page = (out / "report.html").read_text()
  assert "It tells apart" in page and f"{validation['mean_auc']:.3f}" in page
  assert page.count("ground truth, outlined</figcaption>") == 4  # The 4 spliced examples.
  assert '<section id="metrics">' in page and "p-mAP" in page


@needs_chromium
def test_validated_report_renders_with_truth_metrics_and_only_told_apart_attributes(
    validated_masks_out, tmp_path):
  out, validation = validated_masks_out
  shown = _rendered(out, tmp_path)
  assert shown["decoded"] == shown["total"] and shown["scales"] == 1, shown
  assert shown["truth"] == 4 and shown["metrics"]
  told = {attribute_groups.plain_name(name) for name in attribute_groups.told_apart(validation)}
  drawn = {caption.split(" (")[0] for caption in shown["captions"]} - {
      "original", "ground truth, outlined"}
  attributes = {c for c in drawn if not c.startswith(("map", "no pixel"))}
  assert attributes <= told, attributes - told
