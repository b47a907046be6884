"""One image -> consistency map, detection score, optional NCuts and per-attribute maps."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

import jax
import numpy as np
from flax import nnx

from eval.localization import consistency as consistency_lib
from eval.localization import maps
from eval.localization import ncuts
from eval.localization import noise_levels
from exif_jax.data import exif_attrs
from exif_jax.training import checkpointing


@dataclasses.dataclass(frozen=True)
class Localization:
  """map: float32 HxW in [0, 1], high = inconsistent with the dominant region.

  attribute_maps: float32 [83, H', W'] (same orientation, per attribute) when requested;
  separating: the attributes whose maps differ most between regions, most first.
  """
  map: np.ndarray
  score: float
  no_signal: bool
  num_patches: int
  ncuts: np.ndarray | None = None
  attribute_maps: np.ndarray | None = None
  separating: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Options:
  num_patches: int = 500
  stride: int | None = None
  ncuts: bool = False
  attribute_maps: bool = False
  attribute_map_side: int = 128  # Per-attribute maps are for looking at, not scoring.
  num_separating: int = 3
  pair_memory_bytes: int = 256 * 2**20  # Pair activations live at most this much at a time.
  # > 0: the fused consistency, the learned P(same image) moved in log-odds by this times the
  # pair's noise-level evidence (noise_levels.fused_consistency); 0: the learned one alone.
  noise_weight: float = 0.0

  def patch_grid(self, image: np.ndarray) -> consistency_lib.PatchGrid:
    """The patches these options cut from `image`. Raises ValueError for an image smaller than
    one patch."""
    return consistency_lib.cut_grid(image, num_patches=self.num_patches, stride=self.stride)


# The options that change what a Localizer returns (pair_memory_bytes only changes blocking).
_RESULT_OPTIONS = ("num_patches", "stride", "ncuts", "attribute_maps", "attribute_map_side",
                   "num_separating")


def state_sha256(models: Sequence[nnx.Module]) -> str:
  """Identifies the weights (and batch-norm statistics) behind a set of maps; for an ensemble,
  the members in order."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves([nnx.state(model) for model in models]):
    digest.update(np.asarray(leaf).tobytes())
  return digest.hexdigest()


class Localizer:
  """Runs the jitted consistency model and turns its matrix into maps.

  `models`: one model, or several of one architecture whose consistency matrices are averaged.
  `settings` names the weights and options, so that a resumed batch can refuse to mix maps.
  """

  def __init__(self, models: nnx.Module | Sequence[nnx.Module], options: Options = Options()):
    models = consistency_lib.members(models)
    self.consistency = consistency_lib.ConsistencyModel(
        models, pair_memory_bytes=options.pair_memory_bytes)
    self.options = options
    self.settings = {"model_sha256": state_sha256(models), **{
        name: getattr(options, name) for name in _RESULT_OPTIONS}}
    if len(models) > 1:
      self.settings["ensemble_size"] = len(models)
    if options.noise_weight:
      self.settings["noise_weight"] = options.noise_weight

  def prepare(self, image: np.ndarray) -> consistency_lib.PatchGrid:
    """The host work on `image` (its patches), which may run in another thread ahead of
    __call__. Raises ValueError for an image smaller than one patch."""
    return self.options.patch_grid(image)

  def __call__(self, image: np.ndarray,
               prepared: consistency_lib.PatchGrid | None = None) -> Localization:
    """image: uint8 HxWx3; prepared: its `prepare`, when done ahead. Raises ValueError for an
    image smaller than one patch."""
    options = self.options
    grid = self.prepare(image) if prepared is None else prepared
    result = self.consistency.of_patches(grid)
    matrix = result.matrix
    if options.noise_weight:
      log_odds = noise_levels.pair_log_odds(*noise_levels.patch_noise(grid.patches))
      matrix = noise_levels.fused_consistency(matrix, log_odds, options.noise_weight)
    merged = maps.consistency_map(matrix, result.coords, image.shape[:2])
    fields = dict(map=merged.map.astype(np.float32), score=merged.score,
                  no_signal=merged.no_signal, num_patches=len(result.coords))
    if options.ncuts:
      fields["ncuts"] = ncuts.normalized_cuts(matrix, result.coords, image.shape[:2]).map
    if options.attribute_maps:
      fields["attribute_maps"], fields["separating"] = self._attribute_maps(
          result, merged.members, image.shape[:2])
    return Localization(**fields)

  def _attribute_maps(self, result: consistency_lib.Consistency, members: np.ndarray,
                      image_shape) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per attribute: 1 - P(same value as the dominant region), averaged over patches.

    Attributes whose map spreads most (high std) are the ones that tell the regions apart.
    """
    if not members.any():
      members = np.ones_like(members)
    per_patch = self.consistency.attribute_means(result.projections, members).T  # [83, N]
    side = self.options.attribute_map_side
    scale = side / max(image_shape)
    out_shape = (max(1, round(image_shape[0] * scale)), max(1, round(image_shape[1] * scale)))
    attribute_maps = 1 - np.asarray(maps.patch_average(
        per_patch, result.coords, image_shape, out_shape))
    order = np.argsort(-attribute_maps.reshape(len(attribute_maps), -1).std(axis=1))
    separating = tuple(exif_attrs.ATTRIBUTES[i] for i in order[:self.options.num_separating])
    return attribute_maps.astype(np.float32), separating


def load(path: str | None = None, options: Options = Options()) -> Localizer:
  """The Localizer of the model saved at `path` (the bundled model when None). A stage-1
  checkpoint, whose same-image classifier is untrained, is refused with
  checkpointing.CheckpointError."""
  path = checkpointing.BUNDLED_MODEL if path is None else path
  checkpointing.check_maps_images(checkpointing.restore_config(path), path)
  return Localizer(checkpointing.restore(path), options)
