"""Image -> N x N patch consistency matrix, jitted and memory-bounded.

Each patch goes through the backbone once and is projected once by the split first head layer
(`model.project`); a pair then costs only relu(A_i + B_j) and the head layers after it. Pairs
are evaluated in row blocks whose size follows a memory budget, so a 4000x3000 photo with ~500
patches never materialises more than `pair_memory_bytes` of activations at a time.

Several models of one architecture (trainings with other seeds) form an ensemble: their states
are stacked and every jitted function is vmapped over them, and the matrix is the mean of their
P(same image). Trainings that each light up some splices and miss others agree on average.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from eval import patch_grid
from exif_jax import exif_attrs


@dataclasses.dataclass(frozen=True)
class Consistency:
  """coords: [N, 2] patch top-left (y, x); matrix: [N, N] P(same image), symmetric.

  attributes: [N, N, 83] per-attribute P(same value), or None when not requested.
  """
  coords: np.ndarray
  matrix: np.ndarray
  attributes: np.ndarray | None


def members(models: nnx.Module | Sequence[nnx.Module]) -> list[nnx.Module]:
  """One model or an ensemble's models, as the list of members."""
  return [models] if isinstance(models, nnx.Module) else list(models)


class ConsistencyModel:
  """Jitted feature, projection and pair functions over one restored model or an ensemble."""

  def __init__(self, models: nnx.Module | Sequence[nnx.Module], *, feature_batch: int = 64,
               pair_memory_bytes: int = 256 * 2**20):
    models = members(models)
    for model in models:
      model.eval()
    graphdefs, states = zip(*(nnx.split(model) for model in models))
    shapes = [jax.tree.map(jnp.shape, state) for state in states]
    if any(g != graphdefs[0] or s != shapes[0] for g, s in zip(graphdefs, shapes)):
      raise ValueError("ensemble members differ in architecture; average only trainings of "
                       "one model config")
    self._graphdef = graphdefs[0]
    self._states = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    self.num_models = len(models)
    self.feature_batch = feature_batch
    self.pair_memory_bytes = pair_memory_bytes
    self._first_width = models[0].head[0].out_features

  @functools.partial(jax.jit, static_argnums=0)
  def _project(self, states, patches):
    """[K, B, d] projections A and B of a batch by each of the K models."""
    def project(state):
      model = nnx.merge(self._graphdef, state)
      return model.project(model.features(patches))
    return jax.vmap(project)(states)

  @functools.partial(jax.jit, static_argnums=(0, 4))
  def _pairs(self, states, a_rows, b, with_attributes: bool):
    """The models' mean P(same image) [R, N] (and per-attribute [R, N, 83]) of a row block."""
    def pairs(state, a_rows, b):
      model = nnx.merge(self._graphdef, state)
      logits = model.pair_logits(a_rows[:, None, :], b[None, :, :])
      same_image = jax.nn.sigmoid(model.consistency_logit(logits))
      return same_image, (jax.nn.sigmoid(logits) if with_attributes else None)
    same_image, attributes = jax.vmap(pairs)(states, a_rows, b)
    return same_image.mean(0), (attributes.mean(0) if with_attributes else None)

  def project(self, patches: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """(A, B), [K, N, d] each, for every patch, in fixed-size batches: one compilation."""
    outputs = []
    for batch, count in patch_grid.batches(patches, self.feature_batch):
      a, b = self._project(self._states, batch)
      outputs.append((a[:, :count], b[:, :count]))
    return (jnp.concatenate([a for a, _ in outputs], axis=1),
            jnp.concatenate([b for _, b in outputs], axis=1))

  def rows_per_block(self, num_patches: int, with_attributes: bool) -> int:
    per_row = (self.num_models * num_patches * 4 *
               (self._first_width + (exif_attrs.NUM_ATTRIBUTES if with_attributes else 0)))
    return int(max(1, min(num_patches, self.pair_memory_bytes // per_row)))

  def pairs(self, a: jax.Array, b: jax.Array, *, with_attributes: bool = False
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """All ordered pairs of the [K, N, d] projections -> the models' mean ([N, N] P(same image),
    [N, N, 83] or None)."""
    n = a.shape[1]
    rows = self.rows_per_block(n, with_attributes)
    padded = -(-n // rows) * rows
    a = jnp.pad(a, ((0, 0), (0, padded - n), (0, 0)))  # Equal blocks: one compilation.
    matrix, attributes = [], []
    for start in range(0, padded, rows):
      same, attrs = self._pairs(self._states, a[:, start:start + rows], b, with_attributes)
      matrix.append(np.asarray(same))
      if with_attributes:
        attributes.append(np.asarray(attrs))
    return (np.concatenate(matrix)[:n],
            np.concatenate(attributes)[:n] if with_attributes else None)

  def __call__(self, image: np.ndarray, *, num_patches: int = 500, stride: int | None = None,
               with_attributes: bool = False) -> Consistency:
    coords = patch_grid.grid_coords(image.shape[:2], num_patches=num_patches, stride=stride)
    a, b = self.project(patch_grid.cut_patches(image, coords))
    matrix, attributes = self.pairs(a, b, with_attributes=with_attributes)
    # (i, j) and (j, i) see the patches in swapped head slots; the paper's c_ij is symmetric.
    matrix = (matrix + matrix.T) / 2
    if with_attributes:
      attributes = (attributes + attributes.transpose(1, 0, 2)) / 2
    return Consistency(coords, matrix, attributes)
