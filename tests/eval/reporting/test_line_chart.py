"""Line charts: a legend too long for one row wraps, and every series keeps its colour."""

import io

import numpy as np
from PIL import Image

from eval.reporting import line_chart


def _chart(names: list[str]) -> np.ndarray:
  panel = line_chart.Panel(title="t", x_labels=["a", "b"],
                           series={name: [0.2 + 0.1 * i, 0.5] for i, name in enumerate(names)})
  return np.asarray(Image.open(io.BytesIO(line_chart.png([panel]))).convert("RGB"))


def test_a_long_legend_wraps_and_names_every_series():
  short = _chart(["a", "b"])
  names = [f"a_rather_long_series_name_{i}" for i in range(6)]
  long = _chart(names)
  assert long.shape[1] == short.shape[1] == 260  # The width stays one panel's.
  assert long.shape[0] > short.shape[0]  # Rows of legend above the same panel.
  legend = {tuple(c) for c in long[:long.shape[0] - short.shape[0] + 22].reshape(-1, 3)}
  assert set(line_chart.PALETTE) <= legend  # Each series' swatch is drawn, none cut off.
