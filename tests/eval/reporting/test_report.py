"""report.html: the heatmap ramp, as arrays and as the saved PNG, and what the page says."""

import base64
import html.parser
import io
import json

import numpy as np
from PIL import Image

from eval.reporting import report
from exif_jax.data import exif_attrs


def test_heatmap_ramp_runs_dark_to_bright_and_clips():
  colours = report.heatmap_rgb(np.linspace(-0.5, 1.5, 201)).astype(int)
  np.testing.assert_array_equal(colours[0], [0, 0, 4])      # Below 0 clips to the dark end.
  np.testing.assert_array_equal(colours[-1], [252, 255, 164])  # Above 1 to the bright end.
  brightness = colours.sum(axis=1)
  assert (np.diff(brightness[50:151]) >= 0).all() and brightness[150] > brightness[50] + 500


def test_the_saved_heatmap_png_decodes_to_the_ramp_colours(tmp_path):
  """OUT/maps/*.png is a palette image (fast to encode); viewers must see heatmap_rgb."""
  heat = np.random.RandomState(0).uniform(-0.2, 1.2, (37, 53)).astype(np.float32)
  report.heatmap_image(heat).save(tmp_path / "map.png")
  with Image.open(tmp_path / "map.png") as saved:
    np.testing.assert_array_equal(np.asarray(saved.convert("RGB")), report.heatmap_rgb(heat))


# --- The page's content, from an OUT made by hand.

SUMMARY = "spliced: score >= 0.612 (measured on validation splices)"


class _Page(html.parser.HTMLParser):
  """A report's text and its images, decoded, by alt text."""

  def __init__(self, text: str):
    super().__init__()
    self.text, self.images = [], {}
    self.feed(text)
    self.text = " ".join(" ".join(self.text).split())

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag == "img":
      png = base64.b64decode(attrs["src"].split(",", 1)[1])
      self.images[attrs["alt"]] = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

  def handle_data(self, data):
    self.text.append(data)


def _out(tmp_path, *, validation=True, calibration=True, metrics=True):
  """OUT of two images: `hot` with a bright square (masked in truth/), `cold` all low."""
  out = tmp_path / "out"
  rng = np.random.default_rng(0)
  for stem, scale in (("hot", 1.0), ("cold", 0.3)):
    for folder in ("thumbs", "maps", "attr_maps", "truth"):
      (out / folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(80, 160, (96, 128, 3), np.uint8)).save(
        out / "thumbs" / f"{stem}.jpg")
    heat = np.full((96, 128), 0.2, np.float32)
    heat[30:60, 40:90] = 0.9
    np.save(out / "maps" / f"{stem}.npy", heat * scale)
    np.savez(out / "attr_maps" / f"{stem}.npz",
             maps=rng.uniform(0, 1, (exif_attrs.NUM_ATTRIBUTES, 16, 16)).astype(np.float32))
    Image.fromarray(heat > 0.5).save(out / "truth" / f"{stem}.png")
  records = [{"stem": stem, "name": stem, "image": f"/photos/{stem}.jpg", "score": score,
              "verdict": "inconclusive", "no_signal": False, "separating": [], "spliced": True}
             for stem, score in (("hot", 0.6), ("cold", 0.1))]
  facts = {"stage": "exif", "depth": 18, "width": 16, "steps": 4000}
  if validation:
    facts["validation"] = {
        "mean_auc": 0.7, "num_pairs": 1280, "dataset": "/data/shards",
        "held_out_cameras": ["nikone995", "canonpowershots40"],
        "attributes": {"Image Model": {"auc": 0.8, "balanced_accuracy": 0.7},
                       "EXIF FNumber": {"auc": 0.6, "balanced_accuracy": 0.55},
                       "GPS GPSLongitude": {"auc": 0.52, "balanced_accuracy": 0.5},
                       "EXIF UserComment": {"auc": 0.5, "balanced_accuracy": 0.5}}}
  (out / "model.json").write_text(json.dumps(facts))
  if metrics:
    (out / "metrics.json").write_text(json.dumps(
        {"p-mAP": 0.812, "pixel_mAP": 0.5, "mcc@best": 0.4, "f1@best": 0.6, "mcc@0.5": 0.3,
         "f1@0.5": 0.5, "detection_mAP": 0.7, "detection_auc": 0.65,
         "num_localization_images": 2, "num_detection_images": 2}))
  settings = {"model_sha256": "ab" * 32, "max_pixels": 10**8, "attribute_maps": True}
  if calibration:
    settings["calibration"] = {"spliced_at": 0.612, "clear_below": 0.3,
                               "pixel_threshold": 0.35, "summary": SUMMARY}
  return out, records, settings


def _page(out, records, settings) -> _Page:
  return _Page(report.write(out, records, title="t", settings=settings).read_text())


def test_header_names_the_model_its_validation_and_its_verdict_rule(tmp_path):
  page = _page(*_out(tmp_path))
  assert "ResNet-18 v2 (width 16), 4000 training steps" in page.text
  assert "on 1280 pairs of patches from 2 camera models it never trained on" in page.text
  assert "mean AUC 0.700" in page.text and "/data/shards" in page.text
  assert "It tells apart (AUC ≥ 0.55): camera model: model; lens and exposure: f-number" in (
      page.text)
  assert SUMMARY in page.text
  assert "Reading: every map is on the same scale" in page.text
  assert [alt for alt in page.images if alt.startswith("colour")] == [
      "colour scale: 0 consistent to 1 inconsistent"]


def test_maps_share_one_scale_and_masks_are_outlines(tmp_path):
  page = _page(*_out(tmp_path))
  hot, cold = (page.images[f"map (0-1 scale; from {low} to {high})"]
               for low, high in (("0.20", "0.90"), ("0.06", "0.27")))
  assert hot.mean() > cold.mean() + 20  # Not each stretched to its own range.
  outline = np.all(page.images["map at or above 0.35, outlined"] == report.MAP_OUTLINE, axis=-1)
  assert 0 < outline.mean() < 0.15  # A line around the region, over the photo: no box.
  assert "no pixel at or above 0.35" in page.text  # `cold` stays below the threshold.
  truth = [image for alt, image in page.images.items() if alt == "ground truth, outlined"]
  assert truth and np.all(truth[0] == report.TRUTH_OUTLINE, axis=-1).any()
  assert "mask at 0.5" not in page.text


def test_only_attributes_above_the_auc_rule_are_drawn(tmp_path):
  page = _page(*_out(tmp_path))
  assert "model (Image Model)" in page.images and "f-number (EXIF FNumber)" in page.images
  assert not [alt for alt in page.images if "GPS" in alt or "comment" in alt.lower()]
  assert "validation AUC ≥ 0.55" in page.text


def test_without_validation_no_attribute_map_and_the_reason(tmp_path):
  page = _page(*_out(tmp_path, validation=False, calibration=False, metrics=False))
  assert not [alt for alt in page.images if "(Image" in alt or "(EXIF" in alt]
  assert "No attribute maps: without the model's validation.json" in page.text
  assert "Verdicts: uncalibrated" in page.text and "map at or above 0.50, outlined" in (
      page.images)
  assert "Metrics" not in page.text


def test_dataset_metrics_head_the_page(tmp_path):
  page = _page(*_out(tmp_path))
  assert "p-mAP 0.812" in page.text and "detection_auc 0.650" in page.text
  assert "Over 2 images with a two-class mask and 2 with a known label" in page.text


def test_noise_method_says_what_it_is(tmp_path):
  out, records, _ = _out(tmp_path, validation=False)
  (out / "model.json").unlink()
  page = _page(out, records, {"method": "noise", "max_pixels": 10**8})
  assert "training-free" in page.text and "no attribute maps" in page.text
  assert "No attribute maps: without" not in page.text


def test_a_fused_run_says_so_and_why_it_has_no_verdicts(tmp_path):
  out, records, settings = _out(tmp_path, calibration=False)
  page = _page(out, records, {**settings, "noise_weight": 0.5})
  assert "fused with the patches' noise levels (--noise_weight 0.5)" in page.text
  assert "no calibration fitted with this --noise_weight" in page.text
  assert "fused" not in _page(out, records, settings).text
