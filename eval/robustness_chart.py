"""The robustness sweep's chart: metrics against level, one panel per kind, drawn with Pillow.

Each panel starts with the unperturbed row ("none") and then the kind's levels in the order
given; the y axis spans [0, 1], the range of every metric plotted.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

METRICS = {"p-mAP": (31, 119, 180), "pixel_mAP": (214, 39, 40),
           "detection_auc": (44, 160, 44)}
_PANEL = (260, 200)  # Width, height of one panel in px.
_MARGIN = (36, 22, 14, 34)  # Left, top, right, bottom inside a panel: labels and title.
_LEGEND = 22
_UNITS = {"jpeg": "quality", "resize": "factor", "blur": "sigma, px"}  # Each kind's level.
_GRID = (225, 225, 225)
_INK = (40, 40, 40)


def _panel(draw: ImageDraw.ImageDraw, left: int, kind: str, points: list[tuple[str, dict]],
           font: ImageFont.ImageFont) -> None:
  """One kind's panel at x offset `left`: axes, grid, level labels and a line per metric."""
  x0, y0 = left + _MARGIN[0], _LEGEND + _MARGIN[1]
  x1, y1 = left + _PANEL[0] - _MARGIN[2], _LEGEND + _PANEL[1] - _MARGIN[3]
  title = f"{kind} ({_UNITS[kind]})" if kind in _UNITS else kind
  draw.text((left + _PANEL[0] // 2, _LEGEND + 4), title, fill=_INK, font=font, anchor="mt")
  for tick in range(6):
    y = y1 - (y1 - y0) * tick / 5
    draw.line([(x0, y), (x1, y)], fill=_GRID)
    draw.text((x0 - 4, y), f"{tick / 5:.1f}", fill=_INK, font=font, anchor="rm")
  draw.rectangle([x0, y0, x1, y1], outline=_INK)
  step = (x1 - x0) / max(len(points) - 1, 1)
  xs = [x0 + step * i for i in range(len(points))]
  for x, (label, _) in zip(xs, points):
    draw.text((x, y1 + 6), label, fill=_INK, font=font, anchor="mt")
  for metric, colour in METRICS.items():
    line = [(x, y1 - (y1 - y0) * row[metric]) for x, (_, row) in zip(xs, points)
            if metric in row]
    if len(line) > 1:
      draw.line(line, fill=colour, width=2)
    for x, y in line:
      draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)


def png(table: dict[str, Any]) -> bytes:
  """The chart of a robustness.json table as PNG bytes."""
  kinds = [kind for kind in table if kind != "unperturbed"]
  image = Image.new("RGB", (_PANEL[0] * len(kinds), _PANEL[1] + _LEGEND), "white")
  draw = ImageDraw.Draw(image)
  font = ImageFont.load_default()
  x = _MARGIN[0]
  for metric, colour in METRICS.items():
    draw.rectangle([x, 7, x + 10, 17], fill=colour)
    draw.text((x + 14, 12), metric, fill=_INK, font=font, anchor="lm")
    x += 24 + round(draw.textlength(metric, font=font))
  for i, kind in enumerate(kinds):
    points = [("none", table["unperturbed"]), *table[kind].items()]
    _panel(draw, i * _PANEL[0], kind, points, font)
  buffer = io.BytesIO()
  image.save(buffer, format="PNG")
  return buffer.getvalue()
