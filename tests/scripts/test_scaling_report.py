"""The scaling curve's table and plot: seed means and spreads, the noise row, a panel a set."""

import io
import statistics

import numpy as np
from PIL import Image

from eval.reporting import line_chart
from scripts import scaling_report


def run(num_photos, seed, p_map, curve):
  splices = {f"{name}/{metric}": value
             for name, shift in (("held_out", 0.0), ("natural", 0.05))
             for metric, value in (("p-mAP", p_map + shift), ("pixel_mAP", p_map / 2),
                                   ("detection_auc", 0.6))}
  return {"path": f"runs/{num_photos}-seed{seed}", "num_photos": num_photos, "seed": seed,
          **splices, "stage1_mean_auc": curve[-1], "stage1_camera_model_auc": None,
          "stage2_auc": 0.55, "curve": [{"pairs_seen": 32_000 * (i + 1), "stage1_mean_auc": a}
                                        for i, a in enumerate(curve)]}


RUNS = [run(124, 0, 0.60, [0.55, 0.60]), run(124, 1, 0.64, [0.57, 0.62]),
        run(494, 0, 0.70, [0.58, 0.66])]
NOISE = {"held_out": {"p-mAP": 0.792, "pixel_mAP": 0.611, "detection_auc": 0.603},
         "natural": {"p-mAP": 0.747, "pixel_mAP": 0.487, "detection_auc": 0.646}}


def test_table_has_a_row_a_run_the_seed_spread_and_the_noise_method():
  lines = scaling_report.table(RUNS, NOISE).splitlines()
  assert lines[0].split(" | ")[2:8] == [f"{name}/{metric}" for name in NOISE
                                        for metric in scaling_report.SPLICE_METRICS]
  assert [line.split(" | ")[:2] for line in lines[2:]] == [
      ["| 124", "0"], ["| 124", "1"], ["| 124", "mean (sd)"], ["| 494", "0"],
      ["| `--method noise`", "no training"]]
  spread = statistics.stdev([0.60, 0.64])
  assert lines[4].split(" | ")[2] == f"0.620 ({spread:.3f})"
  assert lines[4].split(" | ")[5] == f"0.670 ({spread:.3f})"  # natural/p-mAP
  assert lines[-1].split(" | ")[2:8] == ["0.792", "0.611", "0.603", "0.747", "0.487", "0.646"]


def test_chart_draws_a_panel_a_splice_set_and_the_stage_one_curve():
  image = np.asarray(Image.open(io.BytesIO(scaling_report.chart(RUNS, NOISE))).convert("RGB"))
  assert image.shape[1] == 3 * 260
  colours = {tuple(c) for c in image.reshape(-1, 3)}
  assert set(line_chart.PALETTE[:5]) <= colours  # 3 metrics, then a line a photo count.
  panels = [image[:, i * 260:(i + 1) * 260] for i in range(3)]
  metric_pixels = [(p == line_chart.PALETTE[0]).all(-1).sum() for p in panels]
  assert min(metric_pixels[:2]) > metric_pixels[2]
