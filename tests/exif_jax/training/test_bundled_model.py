"""The model shipped in the package: it restores alone, maps the examples and localizes splices
between held-out chart cameras."""

import numpy as np
from PIL import Image
import pytest

from configs import cpu
from conftest import CHART_SPLICES, REPO, localize_with_bundled_model
from eval import metrics
from exif_jax.training import checkpointing
from exif_jax.training import train


@pytest.fixture(scope="module")
def chart_splices_out(tmp_path_factory):
  return localize_with_bundled_model(CHART_SPLICES / "images",
                                     tmp_path_factory.mktemp("chart_splices") / "out")


def test_bundled_model_is_the_cpu_config_after_stage_two():
  config = checkpointing.restore_config(checkpointing.BUNDLED_MODEL)
  assert config.stage == "classifier"
  # Same model fields, the post-processing head's derived from the data sets.
  checkpointing.check_compatible(config.to_dict(), train.with_derived_fields(cpu.get_config()))
  assert config.model.post_processing_classes == [7, 6, 5]
  size = sum(p.stat().st_size for p in checkpointing.BUNDLED_MODEL.rglob("*") if p.is_file())
  assert size <= 25 * 2**20


def test_localize_without_checkpoint_uses_the_bundled_model(bundled_examples_out):
  out = bundled_examples_out
  stems = sorted(p.name for p in (REPO / "examples" / "images").iterdir())  # Suffix included.
  assert sorted(p.stem for p in (out / "maps").glob("*.npy")) == stems
  for stem in stems:
    heat = np.load(out / "maps" / f"{stem}.npy")
    assert heat.dtype == np.float32 and np.isfinite(heat).all()
    assert 0 <= heat.min() and heat.max() <= 1
  report = (out / "report.html").read_text()
  assert report.count("data:image/png;base64,") >= 2 * len(stems)


def test_bundled_model_heats_the_pasted_regions_of_the_chart_splices(chart_splices_out):
  """The chart splices are hotter inside their masks than outside, on average over the four:
  the weights are the trained ones and the maps are aligned with the image (the same maps
  transposed reach a quarter of the margin). Each training of the recipe misses some splice,
  so no single one is held to it."""
  masks = sorted((CHART_SPLICES / "masks").glob("*.png"))
  assert len(masks) == 4
  margins, ap_over_chance = [], []
  for mask_path in masks:
    mask = np.asarray(Image.open(mask_path)) > 127
    heat = np.load(chart_splices_out / "maps" / f"{mask_path.stem}.png.npy")
    margins.append(heat[mask].mean() - heat[~mask].mean())
    # Ranking pixels by heat against chance (AP = the mask's area).
    ap_over_chance.append(metrics.average_precision(mask, heat) / mask.mean())
  assert np.mean(margins) > 0.03, margins
  assert np.mean(ap_over_chance) > 2.5, ap_over_chance
