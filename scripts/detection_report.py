"""How well image-level statistics of the maps in `exif-jax eval` OUT folders detect splices,
and what a model's calibration does on them:

  python -m scripts.detection_report --eval_out OUT [--eval_out OUT ...] [--model DIR]

Prints JSON per OUT: the detection ROC AUC of each candidate statistic of the map (the
mean, the paper's score and maps.detection_score; the standard deviation; upper percentiles;
the share above 0.5), and with --model the error rates of its calibration.json's thresholds
on that set's detection scores. Labels come from the result records (`spliced`).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
from sklearn import metrics

from eval import calibration
from eval.localization import maps
from eval.runs import results

STATISTICS = {
    "mean": maps.detection_score,
    "std": np.std,
    "p90": lambda heat: np.percentile(heat, 90),
    "p99": lambda heat: np.percentile(heat, 99),
    "share_above_0.5": lambda heat: np.mean(heat > 0.5),
}


def labelled_maps(out: pathlib.Path) -> tuple[list[np.ndarray], np.ndarray]:
  """The maps of the images of OUT whose label is known, and the labels (1 spliced)."""
  heats, labels = [], []
  for path in sorted((out / "results").glob("*.json")):
    record = json.loads(path.read_text())
    if "score" in record and record.get("spliced") is not None:
      heats.append(np.load(results.map_path(out, record["stem"])))
      labels.append(int(record["spliced"]))
  return heats, np.array(labels)


def report(out: pathlib.Path, fitted: calibration.Calibration | None) -> dict:
  heats, labels = labelled_maps(out)
  result = {"images": len(labels), "spliced": int(labels.sum()), "auc": {
      name: float(metrics.roc_auc_score(labels, [statistic(h) for h in heats]))
      for name, statistic in STATISTICS.items()}}
  if fitted is not None:
    scores = np.array([maps.detection_score(h) for h in heats])
    result["calibration"] = calibration.rates(scores, labels, fitted.spliced_at,
                                              fitted.clear_below)
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--eval_out", action="append", required=True, type=pathlib.Path)
  parser.add_argument("--model", help="A model folder with calibration.json.")
  args = parser.parse_args()
  fitted = calibration.load(args.model) if args.model else None
  print(json.dumps({str(out): report(out, fitted) for out in args.eval_out}, indent=1))


if __name__ == "__main__":
  main()
