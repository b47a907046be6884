"""Measures the fused consistency: the learned P(same image) of two patches, moved in log-odds
by their noise-level distance with weight W (noise_levels.fused_consistency), for several W.

  python scripts/noise_fusion_sweep.py --set natural_s2=DIR --set charts_s2=DIR \
      --cache CACHE --weights 0,0.5,1,2,4 [--checkpoint MODEL]

DIR holds images/ and masks/ (as `exif-jax synth` writes them). Each image's learned matrix and
patch noise are computed once and kept in CACHE, so further weights cost only the maps. Prints
one JSON line per set and weight (W = "noise" is the noise term alone, the learned matrix
replaced by 0.5).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from absl import app, flags

from eval import metrics as metrics_lib
from eval.data import datasets
from eval.localization import consistency as consistency_lib
from eval.localization import maps
from eval.localization import noise_levels
from exif_jax.training import checkpointing

_SETS = flags.DEFINE_multi_string("set", [], "NAME=DIR with DIR/images and DIR/masks.")
_CACHE = flags.DEFINE_string("cache", None, "Folder for the per-image matrices.", required=True)
_WEIGHTS = flags.DEFINE_list("weights", ["0", "0.5", "1", "2", "4", "noise"], "Weights W.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Model (the bundled one by default).")
_NUM_PATCHES = flags.DEFINE_integer("num_patches", 500, "Patches per image.")
_METRICS = ("p-mAP", "pixel_mAP", "detection_auc")


def _cached(example: datasets.Example, cache: pathlib.Path, model) -> dict[str, np.ndarray]:
  path = cache / f"{example.stem}.npz"
  if not path.exists():
    image = example.load_image()
    grid = consistency_lib.cut_grid(image, num_patches=_NUM_PATCHES.value)
    log_sigma, usable = noise_levels.patch_noise(grid.patches)
    matrix = model().of_patches(grid).matrix
    np.savez(path, coords=grid.coords, matrix=matrix, log_sigma=log_sigma, usable=usable,
             shape=np.array(image.shape[:2]))
  with np.load(path) as data:
    return dict(data)


def _fused(entry: dict[str, np.ndarray], weight: str) -> np.ndarray:
  log_odds = noise_levels.pair_log_odds(entry["log_sigma"], entry["usable"])
  if weight == "noise":
    return noise_levels.fused_consistency(np.full_like(entry["matrix"], 0.5), log_odds, 1.0)
  return noise_levels.fused_consistency(entry["matrix"], log_odds, float(weight))


def main(argv):
  del argv
  path = _CHECKPOINT.value or checkpointing.BUNDLED_MODEL
  consistency = None

  def model():
    nonlocal consistency
    if consistency is None:
      consistency = consistency_lib.ConsistencyModel(checkpointing.restore(path))
    return consistency

  for spec in _SETS.value:
    name, folder = spec.split("=", 1)
    examples = datasets.folder_pair(pathlib.Path(folder) / "images",
                                    pathlib.Path(folder) / "masks")
    cache = pathlib.Path(_CACHE.value) / name
    cache.mkdir(parents=True, exist_ok=True)
    entries = [(example, _cached(example, cache, model)) for example in examples]
    for weight in _WEIGHTS.value:
      dataset = metrics_lib.DatasetMetrics()
      for example, entry in entries:
        result = maps.consistency_map(_fused(entry, weight), entry["coords"],
                                      tuple(entry["shape"]))
        dataset.add(result.map, mask=example.mask, label=example.spliced, score=result.score)
      metrics = dataset.result()
      shown = {key: round(metrics.get(key, float("nan")), 4) for key in _METRICS}
      print(json.dumps({"set": name, "weight": weight, **shown}), flush=True)


if __name__ == "__main__":
  app.run(main)
