"""Report colouring: the heatmap ramp and the per-image stretch of the overlay."""

import numpy as np

from eval import report


def test_heatmap_ramp_runs_dark_to_bright_and_clips():
  colours = report.heatmap_rgb(np.linspace(-0.5, 1.5, 201)).astype(int)
  np.testing.assert_array_equal(colours[0], [0, 0, 4])      # Below 0 clips to the dark end.
  np.testing.assert_array_equal(colours[-1], [252, 255, 164])  # Above 1 to the bright end.
  brightness = colours.sum(axis=1)
  assert (np.diff(brightness[50:151]) >= 0).all() and brightness[150] > brightness[50] + 500


def test_stretched_map_spans_zero_to_one_and_a_flat_map_stays_flat():
  heat = np.array([[0.42, 0.45], [0.48, 0.51]], np.float32)
  np.testing.assert_allclose(report.stretched(heat), [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)
  np.testing.assert_array_equal(report.stretched(np.full((3, 3), 0.5)), 0)
