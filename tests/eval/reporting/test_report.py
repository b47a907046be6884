"""Report colouring: the heatmap ramp, as arrays and as the saved PNG."""

import numpy as np
from PIL import Image

from eval.reporting import report


def test_heatmap_ramp_runs_dark_to_bright_and_clips():
  colours = report.heatmap_rgb(np.linspace(-0.5, 1.5, 201)).astype(int)
  np.testing.assert_array_equal(colours[0], [0, 0, 4])      # Below 0 clips to the dark end.
  np.testing.assert_array_equal(colours[-1], [252, 255, 164])  # Above 1 to the bright end.
  brightness = colours.sum(axis=1)
  assert (np.diff(brightness[50:151]) >= 0).all() and brightness[150] > brightness[50] + 500


def test_the_saved_heatmap_png_decodes_to_the_ramp_colours(tmp_path):
  """OUT/maps/*.png is a palette image (fast to encode); viewers must see heatmap_rgb."""
  heat = np.random.RandomState(0).uniform(-0.2, 1.2, (37, 53)).astype(np.float32)
  report.heatmap_image(heat).save(tmp_path / "map.png")
  with Image.open(tmp_path / "map.png") as saved:
    np.testing.assert_array_equal(np.asarray(saved.convert("RGB")), report.heatmap_rgb(heat))
