"""The hours curve: a real run's evaluations against CPU-hours and pairs seen, table and plot."""

import io
import json

import numpy as np
from PIL import Image

from eval.reporting import line_chart
from exif_jax.data import exif_attrs
from exif_jax.training import train
from scripts import hours_curve


def test_points_follow_the_runs_own_evaluations(tiny_run):
  workdir, _ = tiny_run
  name, points = hours_curve.read_run(f"tiny={workdir}:1800")
  evaluations = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
                 if "val/mean_auc" in line]
  assert name == "tiny" and [p["step"] for p in points] == [e["step"] for e in evaluations]
  last, evaluation = points[-1], evaluations[-1]
  assert last["cpu_hours"] == last["step"] / 2  # 1800 CPU-seconds a step.
  assert last["pairs_seen"] == last["step"] * 8  # configs/tiny.py: 8 pairs a step.
  assert last["camera_model_auc"] == evaluation["val/auc/Image Model"]
  exif = [evaluation[f"val/auc/{tag}"] for tag in exif_attrs.EXIF_TAGS
          if f"val/auc/{tag}" in evaluation]
  assert np.isclose(last["exif_auc"], np.mean(exif))

  table = hours_curve.table({"tiny": points}).splitlines()
  assert len(table) == 2 + len(points)
  assert table[-1].startswith(f"| tiny | {last['step']} | {last['cpu_hours']:.2f} |")


def test_without_a_rate_the_logged_cpu_hours_are_read(tiny_run):
  workdir, _ = tiny_run
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  _, points = hours_curve.read_run(f"tiny={workdir}")
  last_logged = [r[train.CPU_HOURS] for r in records if train.CPU_HOURS in r][-1]
  assert points[-1]["cpu_hours"] == last_logged > 0  # Step 6: trained, then validated.
  assert 0 < points[0]["cpu_hours"] < last_logged  # Step 3: the log line of step 2.


def test_chart_has_a_panel_for_each_auc_and_a_line_a_run(tiny_run):
  workdir, _ = tiny_run
  runs = dict([hours_curve.read_run(f"a={workdir}:450"), hours_curve.read_run(f"b={workdir}:900")])
  image = np.asarray(Image.open(io.BytesIO(hours_curve.chart(runs))).convert("RGB"))
  assert image.shape[1] == 2 * 260
  colours = {tuple(c) for c in image.reshape(-1, 3)}
  assert set(line_chart.PALETTE[:2]) <= colours
