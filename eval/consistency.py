"""Image -> N x N patch consistency matrix, jitted and memory-bounded.

Each patch goes through the backbone once and is projected once by the split first head layer
(`model.project`); a pair then costs only relu(A_i + B_j) and the head layers after it. Pairs
are evaluated in row blocks whose size follows a memory budget, so a 4000x3000 photo with ~500
patches never materialises more than `pair_memory_bytes` of activations at a time.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from eval import patch_grid


@dataclasses.dataclass(frozen=True)
class Consistency:
  """coords: [N, 2] patch top-left (y, x); matrix: [N, N] P(same image), symmetric.

  attributes: [N, N, 83] per-attribute P(same value), or None when not requested.
  """
  coords: np.ndarray
  matrix: np.ndarray
  attributes: np.ndarray | None


class ConsistencyModel:
  """Jitted feature, projection and pair functions over one restored model."""

  def __init__(self, model: nnx.Module, *, feature_batch: int = 64,
               pair_memory_bytes: int = 256 * 2**20):
    model.eval()
    self._graphdef, self._state = nnx.split(model)
    self.feature_batch = feature_batch
    self.pair_memory_bytes = pair_memory_bytes
    self._first_width = model.head[0].out_features

  @functools.partial(jax.jit, static_argnums=0)
  def _project(self, state, patches):
    model = nnx.merge(self._graphdef, state)
    return model.project(model.features(patches))

  @functools.partial(jax.jit, static_argnums=(0, 4))
  def _pairs(self, state, a_rows, b, with_attributes: bool):
    model = nnx.merge(self._graphdef, state)
    logits = model.pair_logits(a_rows[:, None, :], b[None, :, :])
    same_image = jax.nn.sigmoid(model.consistency_logit(logits))
    return same_image, (jax.nn.sigmoid(logits) if with_attributes else None)

  def project(self, patches: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """(A, B) for every patch, in fixed-size batches so the function compiles once."""
    outputs = []
    for batch, count in patch_grid.batches(patches, self.feature_batch):
      a, b = self._project(self._state, batch)
      outputs.append((a[:count], b[:count]))
    return (jnp.concatenate([a for a, _ in outputs]),
            jnp.concatenate([b for _, b in outputs]))

  def rows_per_block(self, num_patches: int, with_attributes: bool) -> int:
    per_row = num_patches * (self._first_width + (83 if with_attributes else 0)) * 4
    return int(max(1, min(num_patches, self.pair_memory_bytes // per_row)))

  def pairs(self, a: jax.Array, b: jax.Array, *, with_attributes: bool = False
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """All ordered pairs of the projections -> ([N, N] P(same image), [N, N, 83] or None)."""
    n = a.shape[0]
    rows = self.rows_per_block(n, with_attributes)
    padded = -(-n // rows) * rows
    a = jnp.pad(a, ((0, padded - n), (0, 0)))  # Equal blocks: one compilation.
    matrix, attributes = [], []
    for start in range(0, padded, rows):
      same, attrs = self._pairs(self._state, a[start:start + rows], b, with_attributes)
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
