"""Small line charts drawn with Pillow: panels side by side, categorical x, one line a series.

Enough for the robustness sweep and the scaling curve without a plotting library: a series may
carry a spread (drawn as error bars) and a panel horizontal reference lines (dashed).
"""

from __future__ import annotations

import dataclasses
import io
from typing import Mapping, Sequence

from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

PALETTE = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
           (140, 86, 75))
_PANEL = (260, 200)  # Width, height of one panel in px.
_MARGIN = (36, 22, 14, 34)  # Left, top, right, bottom inside a panel: labels and title.
_LEGEND = 22
_GRID = (225, 225, 225)
_INK = (40, 40, 40)

Values = Sequence[float | None]  # One value a x label; None where the series has none.


@dataclasses.dataclass(frozen=True)
class Panel:
  """A titled panel: `series` name -> values, `spread` name -> +-values (error bars),
  `references` name -> a level drawn dashed across the panel in that series' colour."""
  title: str
  x_labels: Sequence[str]
  series: Mapping[str, Values]
  spread: Mapping[str, Values] = dataclasses.field(default_factory=dict)
  references: Mapping[str, float] = dataclasses.field(default_factory=dict)
  y_range: tuple[float, float] = (0.0, 1.0)


def _dashed(draw: ImageDraw.ImageDraw, x0: float, x1: float, y: float, colour) -> None:
  for x in range(int(x0), int(x1), 8):
    draw.line([(x, y), (min(x + 4, x1), y)], fill=colour, width=1)


def _panel(draw: ImageDraw.ImageDraw, left: int, top: int, panel: Panel,
           colours: Mapping[str, tuple[int, int, int]], font: ImageFont.ImageFont) -> None:
  """One panel at offset (`left`, `top`): axes, grid, x labels, series, error bars and
  references."""
  x0, y0 = left + _MARGIN[0], top + _MARGIN[1]
  x1, y1 = left + _PANEL[0] - _MARGIN[2], top + _PANEL[1] - _MARGIN[3]
  low, high = panel.y_range
  def y_of(value: float) -> float:
    return y1 - (y1 - y0) * (value - low) / (high - low)
  draw.text((left + _PANEL[0] // 2, top + 4), panel.title, fill=_INK, font=font,
            anchor="mt")
  for tick in range(6):
    value = low + (high - low) * tick / 5
    draw.line([(x0, y_of(value)), (x1, y_of(value))], fill=_GRID)
    draw.text((x0 - 4, y_of(value)), f"{value:.2f}", fill=_INK, font=font, anchor="rm")
  draw.rectangle([x0, y0, x1, y1], outline=_INK)
  step = (x1 - x0) / max(len(panel.x_labels) - 1, 1)
  xs = [x0 + step * i for i in range(len(panel.x_labels))]
  for x, label in zip(xs, panel.x_labels):
    draw.text((x, y1 + 6), label, fill=_INK, font=font, anchor="mt")
  for name, level in panel.references.items():
    _dashed(draw, x0, x1, y_of(level), colours[name])
  for name, values in panel.series.items():
    spread = panel.spread.get(name, [None] * len(values))
    points = [(x, v, s) for x, v, s in zip(xs, values, spread) if v is not None]
    if len(points) > 1:
      draw.line([(x, y_of(v)) for x, v, _ in points], fill=colours[name], width=2)
    for x, v, s in points:
      draw.ellipse([x - 3, y_of(v) - 3, x + 3, y_of(v) + 3], fill=colours[name])
      if s:
        draw.line([(x, y_of(v - s)), (x, y_of(v + s))], fill=colours[name], width=1)


def png(panels: Sequence[Panel], colours: Mapping[str, tuple[int, int, int]] | None = None
        ) -> bytes:
  """The panels side by side with one legend, as PNG bytes. Series without a given colour
  take the PALETTE's in the order they first appear."""
  names = list(dict.fromkeys(n for p in panels for n in (*p.series, *p.references)))
  free = iter(c for c in PALETTE if c not in (colours or {}).values())
  colours = {name: (colours or {}).get(name) or next(free) for name in names}
  font = ImageFont.load_default()
  width = _PANEL[0] * len(panels)
  entries, x, row = [], _MARGIN[0], 0  # (name, x, legend row): wrapped to the image's width.
  for name in names:
    length = 24 + round(font.getlength(name))
    if x > _MARGIN[0] and x + length > width:
      x, row = _MARGIN[0], row + 1
    entries.append((name, x, row))
    x += length
  top = _LEGEND * (row + 1)
  image = Image.new("RGB", (width, _PANEL[1] + top), "white")
  draw = ImageDraw.Draw(image)
  for name, x, row in entries:
    y = 12 + _LEGEND * row
    draw.rectangle([x, y - 5, x + 10, y + 5], fill=colours[name])
    draw.text((x + 14, y), name, fill=_INK, font=font, anchor="lm")
  for i, panel in enumerate(panels):
    _panel(draw, i * _PANEL[0], top, panel, colours, font)
  buffer = io.BytesIO()
  image.save(buffer, format="PNG")
  return buffer.getvalue()
