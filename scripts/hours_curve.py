"""Stage 1's held-out curve against CPU-hours and pairs seen, for several training runs.

  python scripts/hours_curve.py --run NAME=WORKDIR[:CPU_S_PER_STEP] [--run ...] --png OUT.png

WORKDIR is a stage-1 workdir: its metrics.jsonl holds the held-out AUCs of every evaluation
and the CPU-hours the trainer logs (train/cpu_hours). For a workdir trained before that was
logged, CPU_S_PER_STEP gives the process CPU seconds a step of that run cost, measured on the
machine that trained it. Prints a markdown table and writes the plot: held-out AUCs of the
EXIF attributes (mean) and of the camera model against CPU-hours.
"""

from __future__ import annotations

import pathlib
import statistics

from absl import app, flags

from eval.reporting import line_chart
from exif_jax.data import all_pairs
from exif_jax.data import exif_attrs
from exif_jax.data import files
from exif_jax.training import checkpointing
from exif_jax.training import metrics_writer
from exif_jax.training import train

_RUNS = flags.DEFINE_multi_string("run", [], "NAME=WORKDIR[:CPU_S_PER_STEP].")
_PNG = flags.DEFINE_string("png", None, "Where to write the plot.")
_CAMERA = "Image Model"
_HOUR_BINS = 8  # Plot columns a CPU-hour.


def read_run(spec: str) -> tuple[str, list[dict[str, float]]]:
  """NAME and its evaluations: step, CPU-hours, pairs seen and the held-out AUCs."""
  name, workdir = spec.split("=", 1)
  cpu_s_per_step = None
  head, _, tail = workdir.rpartition(":")
  if head and tail.replace(".", "", 1).isdigit():
    workdir, cpu_s_per_step = head, float(tail)
  config = checkpointing.restore_config(workdir)
  if "sampler" not in config.data:  # Workdirs older than the setting trained pairs.
    with config.unlocked():
      config.data.sampler = "pairs"
  pairs_per_step = all_pairs.pairs_per_batch(config, config.train.batch_size)
  points, logged_hours = [], None  # The CPU-hours of the latest training log line.
  for record in metrics_writer.records(workdir):
    logged_hours = record.get(train.CPU_HOURS, logged_hours)
    if "val/mean_auc" not in record:
      continue
    step = record["step"]
    if cpu_s_per_step is None and logged_hours is None:
      raise ValueError(f"{workdir}: no {train.CPU_HOURS} logged by step {step}; give "
                       "NAME=WORKDIR:CPU_S_PER_STEP")
    points.append({
        "step": step, "cpu_hours": (step * cpu_s_per_step / 3600 if cpu_s_per_step is not None
                                    else logged_hours),
        "pairs_seen": step * pairs_per_step,
        "exif_auc": statistics.mean(  # The attributes with both answers among the pairs.
            record[f"val/auc/{a}"] for a in exif_attrs.EXIF_TAGS if f"val/auc/{a}" in record),
        "camera_model_auc": record[f"val/auc/{_CAMERA}"]})
  return name, points


def table(runs: dict[str, list[dict[str, float]]]) -> str:
  lines = ["| run | step | CPU-hours | pairs seen | held-out EXIF AUC (mean) | camera model AUC |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
  for name, points in runs.items():
    lines += [f"| {name} | {p['step']} | {p['cpu_hours']:.2f} | {p['pairs_seen']:,} | "
              f"{p['exif_auc']:.3f} | {p['camera_model_auc']:.3f} |" for p in points]
  return "\n".join(lines) + "\n"


def chart(runs: dict[str, list[dict[str, float]]]) -> bytes:
  """Each run's points in columns of 1/_HOUR_BINS CPU-hour (the nearest evaluation)."""
  last = max(p["cpu_hours"] for points in runs.values() for p in points)
  columns = range(1, int(last * _HOUR_BINS + 0.5) + 1)
  def at(points, key):
    by_column = {round(p["cpu_hours"] * _HOUR_BINS): p[key] for p in points}
    return [by_column.get(c) for c in columns]
  labels = [f"{c / _HOUR_BINS:g}" if c % (_HOUR_BINS // 4) == 0 else "" for c in columns]
  return line_chart.png([
      line_chart.Panel(title=f"{title} vs CPU-hours", x_labels=labels,
                       series={name: at(points, key) for name, points in runs.items()},
                       y_range=(0.45, 0.6))
      for title, key in (("held-out EXIF AUC", "exif_auc"),
                         ("camera model AUC", "camera_model_auc"))])


def main(argv):
  del argv
  runs = dict(read_run(spec) for spec in _RUNS.value)
  print(table(runs), end="")
  if _PNG.value:
    files.write_atomic(pathlib.Path(_PNG.value), chart(runs))


if __name__ == "__main__":
  app.run(main)
