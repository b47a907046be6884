"""The robustness sweep's chart: metrics against level, one panel per kind.

Each panel starts with the unperturbed row ("none") and then the kind's levels in the order
given; the y axis spans [0, 1], the range of every metric plotted.
"""

from __future__ import annotations

from typing import Any

from eval.reporting import line_chart

METRICS = ("p-mAP", "pixel_mAP", "detection_auc")
_UNITS = {"jpeg": "quality", "resize": "factor", "blur": "sigma, px"}  # Each kind's level.


def png(table: dict[str, Any]) -> bytes:
  """The chart of a robustness.json table as PNG bytes."""
  panels = []
  for kind in (kind for kind in table if kind != "unperturbed"):
    points = [("none", table["unperturbed"]), *table[kind].items()]
    panels.append(line_chart.Panel(
        title=f"{kind} ({_UNITS[kind]})" if kind in _UNITS else kind,
        x_labels=[label for label, _ in points],
        series={metric: [row.get(metric) for _, row in points] for metric in METRICS}))
  return line_chart.png(panels)
