"""The robustness sweep: every input evaluated again at each perturbation level.

OUT holds the unperturbed evaluation (batch's output contract). Each level is an evaluation
of its own into OUT/perturb/<kind>-<level>/ (the same contract at the perturbed size; its
settings.json records the perturbation), so a rerun resumes every level and never mixes two.
The perturbed inputs are made in memory, image by image. Then OUT gets:

OUT/robustness.json  {"unperturbed": M, KIND: {LEVEL: M, ...}, ...}, each M the metrics.json
                     of that evaluation; LEVEL as written by "%g"
OUT/robustness.png   the chart of that table (levels in the order asked), shown by report.html
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Sequence

from eval import calibration as calibration_lib
from eval.data import datasets
from eval.localization import localizer as localizer_lib
from eval.reporting import report
from eval.reporting import robustness_chart
from eval.runs import batch
from eval.runs import out_folder
from eval.runs import perturbations as perturbations_lib
from exif_jax.data import files

PERTURB = "perturb"
TABLE = "robustness.json"


def level_folder(out: pathlib.Path, perturbation: perturbations_lib.Perturbation
                 ) -> pathlib.Path:
  return out / PERTURB / perturbation.name


def _metrics(out: pathlib.Path) -> dict[str, Any]:
  path = out / "metrics.json"
  return json.loads(path.read_text()) if path.exists() else {}


def sweep(examples: list[datasets.Example], localizer: localizer_lib.Localizer,
          out: pathlib.Path, perturbations: Sequence[perturbations_lib.Perturbation], *,
          max_pixels: int, title: str,
          calibration: calibration_lib.Calibration | None = None,
          model_facts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
  """Evaluates `examples` as they are and at every perturbation; returns all the records.

  Raises out_folder.OutError as batch.run, for OUT or a level's folder.
  """
  unperturbed = batch.run(examples, localizer, out, max_pixels=max_pixels, title=title,
                          calibration=calibration, model_facts=model_facts)
  records = list(unperturbed)
  for perturbation in perturbations:
    records += batch.run(
        [perturbations_lib.PerturbedExample.of(e, perturbation) for e in examples], localizer,
        level_folder(out, perturbation), max_pixels=max_pixels,
        title=f"{title}, {perturbation.name}",
        input_settings={"perturbation": perturbation.settings}, calibration=calibration,
        model_facts=model_facts)
  table: dict[str, Any] = {"unperturbed": _metrics(out)}
  for perturbation in perturbations:
    table.setdefault(perturbation.kind, {})[f"{perturbation.level:g}"] = _metrics(
        level_folder(out, perturbation))
  with out_folder.locked(out):
    files.write_json(out / TABLE, table)
    files.write_atomic(out / report.ROBUSTNESS_CHART, robustness_chart.png(table))
    report.write(out, unperturbed, title=title,
                 settings=out_folder.read_settings(out / out_folder.SETTINGS))
  return records
