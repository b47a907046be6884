"""The robustness sweep (`eval --perturb`) on the chart splices, through the real CLI."""

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from conftest import CHART_SPLICES, run_module
from eval.data import datasets
from eval.runs import perturbations

SWEEP = ["--perturb", "jpeg=90,50", "--perturb", "resize=0.5", "--perturb", "blur=2"]
LEVELS = {"jpeg": ["90", "50"], "resize": ["0.5"], "blur": ["2"]}
METRICS = ("p-mAP", "pixel_mAP", "detection_auc")


def eval_args(out, *extra):
  return ["--images", str(CHART_SPLICES / "images"), "--masks", str(CHART_SPLICES / "masks"),
          "--out", str(out), "--num_patches", "16", *extra]


@pytest.fixture(scope="module")
def sweep_out(tmp_path_factory):
  """OUT of a sweep of the bundled model over the chart splices (4 spliced, 2 authentic)."""
  out = tmp_path_factory.mktemp("sweep") / "out"
  run_module("eval.commands.run_eval", *eval_args(out, *SWEEP))
  return out


def test_robustness_json_has_every_level_with_its_metrics(sweep_out):
  table = json.loads((sweep_out / "robustness.json").read_text())
  assert table.keys() == {"unperturbed", *LEVELS}
  assert table["unperturbed"] == json.loads((sweep_out / "metrics.json").read_text())
  for kind, levels in LEVELS.items():
    assert table[kind].keys() == set(levels)
    for level in levels:
      folder = sweep_out / "perturb" / f"{kind}-{level}"
      assert table[kind][level] == json.loads((folder / "metrics.json").read_text())
      assert table[kind][level]["num_localization_images"] == 4
      assert table[kind][level]["num_detection_images"] == 6
      assert all(0 <= table[kind][level][name] <= 1 for name in METRICS)
      recorded = json.loads((folder / "settings.json").read_text())["perturbation"]
      assert (recorded["kind"], recorded["level"]) == (kind, float(level))
  # The levels were evaluated on perturbed pixels: their maps differ from the unperturbed ones.
  for level in ("jpeg-50", "blur-2"):
    assert not np.array_equal(np.load(sweep_out / "perturb" / level / "maps" / "spliced_00000.npy"),
                              np.load(sweep_out / "maps" / "spliced_00000.npy"))


def test_maps_and_masks_are_at_the_perturbed_size(sweep_out):
  for example in datasets.folder_pair(CHART_SPLICES / "images", CHART_SPLICES / "masks"):
    height, width = example.load_image().shape[:2]
    for name, size in (("jpeg-50", (height, width)),
                       ("resize-0.5", (round(height / 2), round(width / 2)))):
      level = sweep_out / "perturb" / name
      assert np.load(level / "maps" / f"{example.stem}.npy").shape == size
      assert Image.open(level / "maps" / f"{example.stem}.png").size == size[::-1]
    if example.mask_path is not None:
      half = perturbations.PerturbedExample.of(example, perturbations.Perturbation("resize", 0.5))
      assert half.mask.shape == (round(height / 2), round(width / 2))
      assert half.load_image().shape[:2] == half.mask.shape
      # Nearest neighbour keeps the spliced fraction and the mask binary.
      assert half.mask.dtype == bool
      assert abs(half.mask.mean() - example.mask.mean()) < 0.01


def test_rerun_resumes_every_level(sweep_out):
  outputs = sorted([*sweep_out.glob("maps/*"), *sweep_out.glob("perturb/*/maps/*"),
                    *sweep_out.glob("results/*"), *sweep_out.glob("perturb/*/results/*")])
  assert len(outputs) == 5 * 6 * 3  # 5 evaluations of 6 images: .npy, .png, result.
  before = {path: path.stat().st_mtime_ns for path in outputs}
  run_module("eval.commands.run_eval", *eval_args(sweep_out, *SWEEP))
  assert {path: path.stat().st_mtime_ns for path in outputs} == before


def test_report_embeds_the_chart(sweep_out):
  page = (sweep_out / "report.html").read_text()
  found = re.search(r'<section id="robustness">.*?src="data:image/png;base64,([^"]+)"', page)
  assert found, "no robustness chart in report.html"
  png = base64.b64decode(found.group(1))
  assert png == (sweep_out / "robustness.png").read_bytes()
  chart = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
  assert chart.shape[1] > 3 * chart.shape[0]  # Three panels side by side, one per kind.
  assert (chart != 255).any(axis=-1).mean() > 0.02  # Something is drawn.


def test_noise_method_sweeps_too(tmp_path):
  out = tmp_path / "out"
  run_module("eval.commands.run_eval",
             *eval_args(out, "--method", "noise", "--perturb", "resize=0.5"))
  table = json.loads((out / "robustness.json").read_text())
  assert json.loads((out / "perturb" / "resize-0.5" / "settings.json").read_text())[
      "method"] == "noise"
  assert all(name in table["resize"]["0.5"] for name in METRICS)


@pytest.mark.parametrize("values", [
    ["jpeg=0"], ["jpeg=75.5"], ["resize=1"], ["resize=0"], ["blur=-1"], ["blur=x"],
    ["sharpen=1"], ["jpeg"], ["jpeg="], ["jpeg=75,75"], ["jpeg=90", "jpeg=50"]])
def test_bad_levels_are_refused(values):
  with pytest.raises(ValueError, match=r"^--perturb [^\n]+$"):
    perturbations.parse(values)


def test_bad_flag_is_a_usage_error_before_any_work(tmp_path):
  out = tmp_path / "out"
  for extra in (["--perturb", "resize=2"], ["--perturb", "jpeg=50", "--perturb", "jpeg=90"]):
    result = run_module("eval.commands.run_eval", *eval_args(out, *extra), status=2)
    assert result.stderr.startswith("error: --perturb") and result.stderr.count("\n") == 1
  no_masks = ["--images", str(CHART_SPLICES / "images"), "--out", str(out), "--perturb", "blur=1"]
  result = run_module("eval.commands.run_eval", *no_masks, status=2)
  assert "--masks" in result.stderr
  assert not out.exists()


def test_parse_keeps_the_order_given():
  parsed = perturbations.parse(["jpeg=95,75", "resize=0.75", "blur=1.5"])
  assert [p.name for p in parsed] == ["jpeg-95", "jpeg-75", "resize-0.75", "blur-1.5"]
