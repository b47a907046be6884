"""Normalized Cuts on the patch affinity matrix: the paper's alternative to Mean Shift (3.5).

Spectral clustering into two segments with the consistency matrix as the affinity, as the
original release does with scikit-learn. The smaller segment is called spliced: a splice is
usually the minority of the image, and the two segments are otherwise symmetric.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from sklearn.cluster import SpectralClustering

from eval.localization import maps


@dataclasses.dataclass(frozen=True)
class NCutsSegmentation:
  """labels: int8 [N], 1 = patch in the spliced (smaller) segment.

  map: float32 [H, W] in [0, 1], the fraction of the patches covering each pixel that are in
  the spliced segment; `map > 0.5` is the binary segmentation.
  """
  labels: np.ndarray
  map: np.ndarray


def normalized_cuts(consistency: np.ndarray, coords: np.ndarray, image_shape: Sequence[int],
                    *, random_state: int = 0) -> NCutsSegmentation:
  """Two-way spectral segmentation of the patches, painted at the input's resolution.

  Ties in segment size go to the segment with the lower mean internal consistency. A constant
  matrix has nothing to cut: every patch is labelled 0.
  """
  maps.check_consistency(consistency, coords)
  consistency = np.asarray(consistency, np.float64)
  affinity = np.clip((consistency + consistency.T) / 2, 0, 1)
  if np.ptp(affinity) == 0:
    labels = np.zeros(len(affinity), np.int8)
  else:
    clusters = SpectralClustering(n_clusters=2, affinity="precomputed",
                                  random_state=random_state).fit_predict(affinity)
    sizes = np.bincount(clusters, minlength=2)
    internal = [affinity[np.ix_(clusters == k, clusters == k)].mean() for k in range(2)]
    spliced = min(range(2), key=lambda k: (sizes[k], internal[k]))
    labels = (clusters == spliced).astype(np.int8)
  heat = maps.patch_average(labels[None], coords, image_shape, image_shape[:2])[0]
  return NCutsSegmentation(labels=labels, map=np.asarray(heat))
