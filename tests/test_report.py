"""Report colouring: the heatmap ramp."""

import numpy as np

from eval import report


def test_heatmap_ramp_runs_dark_to_bright_and_clips():
  colours = report.heatmap_rgb(np.linspace(-0.5, 1.5, 201)).astype(int)
  np.testing.assert_array_equal(colours[0], [0, 0, 4])      # Below 0 clips to the dark end.
  np.testing.assert_array_equal(colours[-1], [252, 255, 164])  # Above 1 to the bright end.
  brightness = colours.sum(axis=1)
  assert (np.diff(brightness[50:151]) >= 0).all() and brightness[150] > brightness[50] + 500
