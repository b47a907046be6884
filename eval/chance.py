"""Chance level of the localization metrics: smooth random maps scored against the real masks.

p-mAP and the "best threshold" metrics are far above 0 for a map that knows nothing (p-mAP
also takes the better of map and inverted map), so a result means something only beside this
baseline on the same masks. Detection chance is 0.5 by definition and is not computed.

  python -m eval.chance IMAGES_DIR MASKS_DIR [--draws 5]

prints JSON: the mean over draws of each dataset localization metric (seed 0).
"""

from __future__ import annotations

import json
from typing import Sequence

import cv2
import numpy as np
from absl import app
from absl import flags

from eval import metrics as metrics_lib
from eval.data import datasets
from eval.localization import maps

_DRAWS = flags.DEFINE_integer("draws", 5, "Random maps per image.")

SMOOTHNESS = 1 / 16  # Gaussian sigma as a fraction of the long side: blobs of patch scale.


def smooth_random_map(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
  """float32 map in [0, 1]: Gaussian-filtered white noise, as blobby as a consistency map."""
  noise = rng.standard_normal(shape[:2]).astype(np.float32)
  return maps.stretched(cv2.GaussianBlur(noise, (0, 0), max(shape[:2]) * SMOOTHNESS))


def chance_metrics(examples: Sequence[datasets.Example], draws: int = 5,
                   seed: int = 0) -> dict[str, float]:
  """Mean over `draws` of the dataset localization metrics of random maps on the masks."""
  masks = [mask for mask in (example.mask for example in examples)
           if mask is not None and mask.any() and not mask.all()]
  if not masks:
    raise ValueError("no image with a two-class mask")
  results = []
  for draw in range(draws):
    rng = np.random.default_rng([seed, draw])
    dataset = metrics_lib.DatasetMetrics()
    for mask in masks:
      dataset.add(smooth_random_map(mask.shape, rng), mask=mask)
    results.append(dataset.result())
  return {name: float(np.mean([r[name] for r in results])) for name in results[0]
          if not name.startswith("num_") and "detection" not in name} | {
              "num_localization_images": len(masks), "draws": draws}


def main(argv):
  if len(argv) != 3:
    raise app.UsageError("give IMAGES_DIR MASKS_DIR (masks matched to images by stem)")
  examples = datasets.folder_pair(argv[1], argv[2])
  print(json.dumps(chance_metrics(examples, _DRAWS.value), indent=1))


if __name__ == "__main__":
  app.run(main)
