"""The paper's Tables 1 and 2 from finished evaluations:
python -m eval.reporting.paper_table --run METHOD@DATASET=OUT [--run ...] [--threshold 0.5|best]
    [--format text|markdown|json]

Each OUT is the --out folder of one `eval` run, of one method on one benchmark with its masks,
so that it holds metrics.json. Rows are the methods and, per dataset, the columns are the
detection mAP (Table 1) and p-mAP, MCC and F1 (Table 2), in the order the runs are given. MCC
and F1 are means over the images of the per-image score of the map thresholded at 0.5 for
every image, as the paper's Table 2 (mcc@0.5 and f1@0.5 in metrics.json); --threshold best
takes each image's best threshold (mcc@best, f1@best: the per-image oracle of Salloum et al.,
the paper's Table 3). A number a run cannot have shows as "-": detection needs spliced and
authentic images, localization spliced images with masks.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Sequence

from absl import app
from absl import flags

from exif_jax.cli import command
from exif_jax.data import files

_RUN = flags.DEFINE_multi_string(
    "run", [], "METHOD@DATASET=OUT: the --out folder of an `eval` run of METHOD (the row) on "
    "DATASET (the column group), e.g. 'EXIF-Consistency@Columbia=eval_out'. Repeat per run.")
_THRESHOLD = flags.DEFINE_enum(
    "threshold", "0.5", ["0.5", "best"], "MCC and F1 of the maps thresholded at 0.5 (the "
    "paper's Table 2) or at each image's best threshold (its Table 3's oracle).")
_FORMAT = flags.DEFINE_enum("format", "text", ["text", "markdown", "json"], "Output format.")

COLUMNS = ("mAP", "p-mAP", "MCC", "F1")
METRICS_FILE = "metrics.json"


def metric_names(threshold: str) -> dict[str, str]:
  """Column -> its name in metrics.json."""
  return {"mAP": "detection_mAP", "p-mAP": "p-mAP", "MCC": f"mcc@{threshold}",
          "F1": f"f1@{threshold}"}


@dataclasses.dataclass(frozen=True)
class Run:
  method: str
  dataset: str
  out: pathlib.Path


def parse_run(spec: str) -> Run:
  """METHOD@DATASET=OUT -> Run; ValueError naming the spec when it is not of that form."""
  names, separator, out = spec.partition("=")
  method, at, dataset = names.rpartition("@")
  if not (separator and at and method.strip() and dataset.strip() and out):
    raise ValueError(f"--run {spec!r}: expected METHOD@DATASET=OUT")
  return Run(method.strip(), dataset.strip(), pathlib.Path(out))


def read_metrics(out: pathlib.Path) -> dict[str, Any]:
  """OUT/metrics.json; ValueError naming the file when it is missing or not metrics."""
  path = out / METRICS_FILE
  try:
    metrics = json.loads(path.read_text())
  except FileNotFoundError:
    raise ValueError(f"{files.display_name(path)}: missing; evaluate with --masks or "
                     "--dataset to have metrics") from None
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    reason = e.strerror if isinstance(e, OSError) else "not JSON"
    raise ValueError(f"{files.display_name(path)}: {reason}") from None
  if not isinstance(metrics, dict) or "num_detection_images" not in metrics:
    raise ValueError(f"{files.display_name(path)}: not the metrics of an exif-jax evaluation")
  return metrics


def build(runs: Sequence[Run], threshold: str = "0.5") -> dict[str, Any]:
  """The table as data: methods and datasets in the order first given, and per method and
  dataset each column's number (None where the run has none) and the image counts."""
  names = metric_names(threshold)
  table: dict[str, dict[str, dict[str, Any]]] = {}
  for run in runs:
    cells = table.setdefault(run.method, {})
    if run.dataset in cells:
      raise ValueError(f"--run {run.method}@{run.dataset} is given twice")
    metrics = read_metrics(run.out)
    cells[run.dataset] = {
        **{column: metrics.get(name) for column, name in names.items()},
        "num_detection_images": metrics["num_detection_images"],
        "num_localization_images": metrics.get("num_localization_images", 0),
        "out": str(run.out)}
  datasets = list(dict.fromkeys(run.dataset for run in runs))
  return {"threshold": threshold, "columns": list(COLUMNS), "metrics": names,
          "methods": list(table), "datasets": datasets, "table": table}


def _cell(table: dict[str, Any], method: str, dataset: str, column: str) -> str:
  value = table["table"][method].get(dataset, {}).get(column)
  return "-" if value is None else f"{value:.3f}"


def text(table: dict[str, Any]) -> str:
  """Aligned columns under one heading per dataset, as the paper prints them."""
  width = max([len("method")] + [len(m) for m in table["methods"]])
  group = max(len("  ".join(f"{c:>5}" for c in COLUMNS)),
              *(len(d) for d in table["datasets"]))
  lines = [" " * width + "".join(f"   {d:<{group}}" for d in table["datasets"]),
           f"{'method':<{width}}" + "".join(
               "   " + "  ".join(f"{c:>5}" for c in COLUMNS).ljust(group)
               for _ in table["datasets"])]
  for method in table["methods"]:
    lines.append(f"{method:<{width}}" + "".join(
        "   " + "  ".join(f"{_cell(table, method, d, c):>5}" for c in COLUMNS).ljust(group)
        for d in table["datasets"]))
  note = f"MCC, F1: maps thresholded at {table['threshold']}"
  return "\n".join(line.rstrip() for line in lines) + f"\n{note}\n"


def markdown(table: dict[str, Any]) -> str:
  """A Markdown table, one column per dataset and metric."""
  header = ["method"] + [f"{d} {c}" for d in table["datasets"] for c in COLUMNS]
  rows = [[m] + [_cell(table, m, d, c) for d in table["datasets"] for c in COLUMNS]
          for m in table["methods"]]
  lines = ["| " + " | ".join(header) + " |",
           "| --- |" + " ---: |" * (len(header) - 1)]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines) + f"\n\nMCC, F1: maps thresholded at {table['threshold']}.\n"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _RUN.value:
    raise app.UsageError("give at least one --run METHOD@DATASET=OUT")
  try:
    runs = [parse_run(spec) for spec in _RUN.value]
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  try:
    table = build(runs, _THRESHOLD.value)
  except ValueError as e:
    raise command.NothingDone(str(e)) from None
  if _FORMAT.value == "json":
    print(json.dumps(table, indent=1))
  else:
    print(text(table) if _FORMAT.value == "text" else markdown(table), end="")
  return command.OK


if __name__ == "__main__":
  command.run(main)
