"""The scaling curve's table and plot: seed means and spreads, the noise row, one PNG."""

import io
import statistics

import numpy as np
from PIL import Image

from eval import line_chart
from scripts import scaling_report


def run(num_photos, seed, p_map, curve):
  return {"path": f"runs/{num_photos}-seed{seed}", "num_photos": num_photos, "seed": seed,
          "p-mAP": p_map, "pixel_mAP": p_map / 2, "detection_auc": 0.6,
          "stage1_mean_auc": curve[-1], "stage1_camera_model_auc": None, "stage2_auc": 0.55,
          "curve": [{"pairs_seen": 32_000 * (i + 1), "stage1_mean_auc": a}
                    for i, a in enumerate(curve)]}


RUNS = [run(124, 0, 0.60, [0.55, 0.60]), run(124, 1, 0.64, [0.57, 0.62]),
        run(494, 0, 0.70, [0.58, 0.66])]
NOISE = {"p-mAP": 0.792, "pixel_mAP": 0.611, "detection_auc": 0.603}


def test_table_has_a_row_a_run_the_seed_spread_and_the_noise_method():
  lines = scaling_report.table(RUNS, NOISE).splitlines()
  assert [line.split(" | ")[:2] for line in lines[2:]] == [
      ["| 124", "0"], ["| 124", "1"], ["| 124", "mean (sd)"], ["| 494", "0"],
      ["| `--method noise`", "no training"]]
  spread = statistics.stdev([0.60, 0.64])
  assert f"0.620 ({spread:.3f})" in lines[4]
  assert lines[-1].split(" | ")[2:5] == ["0.792", "0.611", "0.603"]


def test_chart_draws_both_panels_with_the_metric_colours():
  image = np.asarray(Image.open(io.BytesIO(scaling_report.chart(RUNS, NOISE))).convert("RGB"))
  assert image.shape[1] == 2 * 260
  colours = {tuple(c) for c in image.reshape(-1, 3)}
  assert set(line_chart.PALETTE[:5]) <= colours  # 3 metrics, then a line a photo count.
  left, right = image[:, :260], image[:, 260:]
  assert (left == line_chart.PALETTE[0]).all(-1).sum() > (right == line_chart.PALETTE[0]).all(-1).sum()
