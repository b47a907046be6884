"""The Camera-Classification baseline at test time (paper 4.2): each grid patch's camera model;
the camera most patches predict is the natural region, the patches that predict another are
the splice, and an image whose patches all predict one camera is untampered (map 0, score 0).

Per patch the map is 0.5 * [its camera is not the mode] + 0.5 * (1 - P(mode camera)). A patch
that predicts another camera finds the mode less likely than that one, so P(mode) < 0.5 and
its value lies in (0.75, 1]; one that predicts the mode lies in [0, 0.5). Thresholded at the
paper's 0.5 (MCC, F1) the map is the paper's binary assignment, and within each side it ranks
patches by how unlikely they find the mode camera, which the ranking metrics (p-mAP, and the
detection mAP of the map's mean) use, where a binary map would tie every pixel of a region.
Overlapping patches are averaged as in the consistency map (maps.patch_average).

It returns the Localizer's `Localization`, so maps, scores, metrics and the report are those of
the EXIF model.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import numpy as np
from flax import nnx

from eval.localization import consistency as consistency_lib
from eval.localization import localizer as localizer_lib
from eval.localization import maps
from eval.localization import patch_grid


def patch_heat(probabilities: np.ndarray) -> tuple[np.ndarray, bool]:
  """[N, C] per-patch camera probabilities -> (per-patch map values [N] (module docstring),
  whether every patch predicts the mode camera). Ties for the mode go to the lower class."""
  predicted = probabilities.argmax(axis=1)
  mode = np.bincount(predicted, minlength=probabilities.shape[1]).argmax()
  dissent = predicted != mode
  return 0.5 * dissent + 0.5 * (1 - probabilities[:, mode]), not dissent.any()


class CameraLocalizer:
  """Callable like localizer.Localizer: uint8 HxWx3 image -> Localization.

  `models`: one camera classifier, or several trained on the same cameras, whose patch
  probabilities are averaged.
  """

  def __init__(self, models: nnx.Module | Sequence[nnx.Module],
               options: localizer_lib.Options = localizer_lib.Options(), *,
               feature_batch: int = 64):
    models = consistency_lib.members(models)
    if any(model.camera is None for model in models):
      raise ValueError("not a camera classifier: the model has no camera head")
    for model in models:
      model.eval()
    graphdefs, self._states = zip(*(nnx.split(model) for model in models))
    if any(graphdef != graphdefs[0] for graphdef in graphdefs):
      raise ValueError("ensemble members differ in architecture; average only trainings of "
                       "one model config")
    self._graphdef = graphdefs[0]
    self.options = options
    self.feature_batch = feature_batch
    # Recorded in OUT/settings.json, so that a rerun never mixes these maps with others.
    self.settings = {"method": "camera_classification",
                     "model_sha256": localizer_lib.state_sha256(models),
                     "num_patches": options.num_patches, "stride": options.stride}
    if len(models) > 1:
      self.settings["ensemble_size"] = len(models)

  @functools.partial(jax.jit, static_argnums=0)
  def _probabilities(self, state, patches):
    model = nnx.merge(self._graphdef, state)
    return jax.nn.softmax(model.camera_logits(model.features(patches)))

  def probabilities(self, patches: np.ndarray) -> np.ndarray:
    """[N, C] float32: the members' mean camera probabilities of [N, 128, 128, 3] patches."""
    batches = []
    for batch, count in patch_grid.batches(patches, self.feature_batch):
      members = [self._probabilities(state, batch) for state in self._states]
      batches.append(np.mean([np.asarray(p[:count]) for p in members], axis=0))
    return np.concatenate(batches)

  def prepare(self, image: np.ndarray) -> consistency_lib.PatchGrid:
    """The host work on `image` (its patches), which may run in another thread ahead of
    __call__. Raises ValueError for an image smaller than one patch."""
    return self.options.patch_grid(image)

  def __call__(self, image: np.ndarray,
               prepared: consistency_lib.PatchGrid | None = None) -> localizer_lib.Localization:
    """image: uint8 HxWx3; prepared: its `prepare`, when done ahead. Raises ValueError for an
    image smaller than one patch."""
    grid = self.prepare(image) if prepared is None else prepared
    coords = grid.coords
    per_patch, agree = patch_heat(self.probabilities(grid.patches))
    if agree:
      heat = np.zeros(image.shape[:2], np.float32)
    else:
      heat = np.asarray(maps.patch_average(per_patch[None], coords, image.shape[:2],
                                           image.shape[:2])[0], np.float32)
    return localizer_lib.Localization(map=np.clip(heat, 0, 1), score=maps.detection_score(heat),
                                      no_signal=agree, num_patches=len(coords))
