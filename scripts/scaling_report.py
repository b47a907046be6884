"""The scaling curve's table, JSON and plot, from the runs' own files and splice metrics.

A run (scripts/train_bundled_model.sh) leaves stage1/metrics.jsonl (held-out attribute AUCs at
every evaluation step) and stage2/metrics.jsonl (the same-image classifier's AUC); each set of
splices it is measured on gives a metrics.json.
"""

from __future__ import annotations

import pathlib
import statistics
from typing import Any

from eval.reporting import line_chart
from exif_jax.data import files
from exif_jax.training import checkpointing
from exif_jax.training import metrics_writer

SPLICE_METRICS = ("p-mAP", "pixel_mAP", "detection_auc")
CAMERA_AUC = "val/auc/Image Model"  # Held-out camera model pairs: the stage-1 camera cue.


def _evaluations(workdir: pathlib.Path) -> list[dict[str, Any]]:
  return [record for record in metrics_writer.records(workdir) if "val/mean_auc" in record]


def read_run(run: pathlib.Path, splices: dict[str, dict[str, float]], *, num_photos: int,
             seed: int) -> dict[str, Any]:
  """One row: the splice metrics of each set (`splices`: set name -> its metrics.json), the
  final stage-1 and stage-2 AUCs and the stage-1 curve."""
  batch_size = checkpointing.restore_config(run / "stage1").train.batch_size
  stage1 = _evaluations(run / "stage1")
  stage2 = _evaluations(run / "stage2")
  return {
      "path": str(run), "num_photos": num_photos, "seed": seed,
      **{f"{name}/{metric}": metrics[metric] for name, metrics in splices.items()
         for metric in SPLICE_METRICS},
      "stage1_mean_auc": stage1[-1]["val/mean_auc"],
      "stage1_camera_model_auc": stage1[-1].get(CAMERA_AUC),
      "stage2_auc": stage2[-1]["val/mean_auc"],
      "curve": [{"pairs_seen": e["step"] * batch_size, "stage1_mean_auc": e["val/mean_auc"]}
                for e in stage1],
  }


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
  return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def _mean_sd_cell(values: list[float]) -> str:
  if not values:
    return ""
  mean, sd = _mean_sd(values)
  return f"{mean:.3f}" if sd is None else f"{mean:.3f} ({sd:.3f})"


def _by_photos(runs: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
  groups: dict[int, list[dict[str, Any]]] = {}
  for run in sorted(runs, key=lambda r: (r["num_photos"], r["seed"])):
    groups.setdefault(run["num_photos"], []).append(run)
  return groups


def _splice_columns(noise: dict[str, dict[str, float]]) -> list[str]:
  return [f"{name}/{metric}" for name in noise for metric in SPLICE_METRICS]


def table(runs: list[dict[str, Any]], noise: dict[str, dict[str, float]]) -> str:
  """Markdown: a row a run, a mean (sd) row a photo count, the noise method's row. `noise`:
  splice set name -> the noise method's metrics on it."""
  columns = (*_splice_columns(noise), "stage1_camera_model_auc", "stage1_mean_auc",
             "stage2_auc")
  lines = ["| training photos | seed | " + " | ".join(columns) + " |",
           "| ---: | --- |" + " ---: |" * len(columns)]
  def cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
  for count, group in _by_photos(runs).items():
    for run in group:
      lines.append(f"| {count} | {run['seed']} | "
                   + " | ".join(cell(run[c]) for c in columns) + " |")
    if len(group) > 1:
      lines.append(f"| {count} | mean (sd) | " + " | ".join(
          _mean_sd_cell([r[c] for r in group if r[c] is not None]) for c in columns) + " |")
  flat_noise = {f"{name}/{m}": v for name, metrics in noise.items() for m, v in metrics.items()}
  lines.append("| `--method noise` | no training | "
               + " | ".join(cell(flat_noise.get(c)) for c in columns) + " |")
  return "\n".join(lines) + "\n"


def chart(runs: list[dict[str, Any]], noise: dict[str, dict[str, float]]) -> bytes:
  """A panel a splice set: its metrics (seed mean, sd bars) against training photos, the noise
  method dashed. Last: stage 1's held-out mean AUC against pairs seen, a line a photo count."""
  groups = _by_photos(runs)
  panels = []
  for name, reference in noise.items():
    stats = {m: [_mean_sd([r[f"{name}/{m}"] for r in g]) for g in groups.values()]
             for m in SPLICE_METRICS}
    panels.append(line_chart.Panel(
        title=f"{name} splices vs photos", x_labels=[str(c) for c in groups],
        series={m: [mean for mean, _ in stats[m]] for m in SPLICE_METRICS},
        spread={m: [sd for _, sd in stats[m]] for m in SPLICE_METRICS},
        references={m: reference[m] for m in SPLICE_METRICS if m in reference}))
  pairs = sorted({point["pairs_seen"] for run in runs for point in run["curve"]})
  curves = {}
  for count, group in groups.items():
    at = [{p["pairs_seen"]: p["stage1_mean_auc"] for p in run["curve"]} for run in group]
    curves[f"{count} photos"] = [
        statistics.mean(a[p] for a in at) if all(p in a for a in at) else None for p in pairs]
  panels.append(line_chart.Panel(
      title="stage-1 held-out AUC vs pairs seen",
      x_labels=[f"{p // 1000}k" if p >= 1000 else str(p) for p in pairs],
      series=curves, y_range=(0.4, 0.9)))
  return line_chart.png(panels)


def write(out: pathlib.Path, runs: list[dict[str, Any]],
          noise: dict[str, dict[str, float]]) -> None:
  out.mkdir(parents=True, exist_ok=True)
  files.write_json(out / "scaling.json", {"runs": runs, "noise_method": noise})
  files.write_atomic(out / "scaling.md", table(runs, noise))
  files.write_atomic(out / "scaling.png", chart(runs, noise))
