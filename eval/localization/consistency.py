"""Image -> N x N patch consistency matrix, jitted and memory-bounded.

Each patch goes through the backbone once and is projected once by the split first head layer
(`model.project`); a pair then costs only relu(A_i + B_j) and the head layers after it. Pairs
are evaluated in blocks whose size follows a memory budget, so an image never materialises
more than `pair_memory_bytes` of pair activations at a time, whatever its patch count (the
N x N matrix itself is kept whole: Mean Shift and Normalized Cuts read all of it).

The per-attribute predictions are wanted only as means over the dominant region's patches,
known after Mean Shift on the matrix, so they are not kept with it: `attribute_means` pairs the
projections again, only the pairs with a region patch on one side, and reduces each block as
it goes.

Every local device takes part: patches and pair rows are split over a 1-D mesh (the `data`
axis of exif_jax.training.sharding), the model states replicated. Batch and block sizes are
multiples of the device count, and the memory budget holds for a whole block across devices.
Each patch and each pair row is computed on its own, so the result does not depend on the
device count. The
programs hold no collective: projections gather through the host (a few MB), and a tile's sums
over its rows come back per device. So no device waits in a rendezvous for another, which on
fake CPU devices with several programs queued can exceed XLA's timeout and abort.

Several models of one architecture (trainings with other seeds) form an ensemble: their states
are stacked and every jitted function is vmapped over them, and the matrix is the mean of their
P(same image). Trainings that each light up some splices and miss others agree on average.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from eval.localization import patch_grid
from exif_jax.data import exif_attrs
from exif_jax.training import sharding


@dataclasses.dataclass(frozen=True)
class Consistency:
  """coords: [N, 2] patch top-left (y, x); matrix: [N, N] P(same image), symmetric.

  projections: (A, B), [K, N, d] each, every patch's first head layer halves under each of the
  K models: what `ConsistencyModel.attribute_means` pairs again.
  """
  coords: np.ndarray
  matrix: np.ndarray
  projections: tuple[jax.Array, jax.Array]


def members(models: nnx.Module | Sequence[nnx.Module]) -> list[nnx.Module]:
  """One model or an ensemble's models, as the list of members."""
  return [models] if isinstance(models, nnx.Module) else list(models)


class ConsistencyModel:
  """Jitted feature, projection and pair functions over one restored model or an ensemble,
  sharded over `devices` (all local devices unless given)."""

  def __init__(self, models: nnx.Module | Sequence[nnx.Module], *, feature_batch: int = 64,
               pair_memory_bytes: int = 256 * 2**20,
               devices: Sequence[jax.Device] | None = None):
    models = members(models)
    for model in models:
      model.eval()
    graphdefs, states = zip(*(nnx.split(model) for model in models))
    shapes = [jax.tree.map(jnp.shape, state) for state in states]
    if any(g != graphdefs[0] or s != shapes[0] for g, s in zip(graphdefs, shapes)):
      raise ValueError("ensemble members differ in architecture; average only trainings of "
                       "one model config")
    self.mesh = sharding.make_mesh(jax.local_devices() if devices is None else devices)
    self._replicated = sharding.replicated(self.mesh)
    self._graphdef = graphdefs[0]
    self._states = jax.device_put(jax.tree.map(lambda *leaves: jnp.stack(leaves), *states),
                                  self._replicated)
    self.num_models = len(models)
    self.feature_batch = _round_up(feature_batch, self.mesh.size)
    self.pair_memory_bytes = pair_memory_bytes
    self._first_width = models[0].head[0].out_features
    replicated, split = self._replicated, sharding.batch_sharding(self.mesh)
    rows = NamedSharding(self.mesh, P(None, sharding.DATA_AXIS))  # [K, rows, ...]
    self._project = _placed_jit(self._project_batch, (replicated, split), rows)
    self._pairs = _placed_jit(self._pair_block, (replicated, rows, replicated), split)
    self._attribute_tile_sums = _placed_jit(
        self._attribute_tile,
        (replicated, replicated, replicated, split, replicated, split, replicated),
        (split, split))

  def _project_batch(self, states, patches):
    """[K, B, d] projections A and B of a batch by each of the K models."""
    def project(state):
      model = nnx.merge(self._graphdef, state)
      return model.project(model.features(patches))
    return jax.vmap(project)(states)

  def _pair_block(self, states, a_rows, b):
    """The models' mean P(same image) [R, N] of a row block."""
    def pairs(state, a_rows, b):
      model = nnx.merge(self._graphdef, state)
      logits = model.pair_logits(a_rows[:, None, :], b[None, :, :])
      return jax.nn.sigmoid(model.consistency_logit(logits))
    return jax.vmap(pairs)(states, a_rows, b).mean(0)

  def _attribute_tile(self, states, a, b, rows, cols, row_weights, col_weights):
    """The models' mean per-attribute P(same value) P [R, C, A] of the pairs (a[rows] first,
    b[cols] second), reduced over each side: row_weights @ P per device's rows [D, C, A], to
    be summed over D, and P @ col_weights [R, A]."""
    def probabilities(state, a, b):
      model = nnx.merge(self._graphdef, state)
      return jax.nn.sigmoid(model.pair_logits(a[rows][:, None, :], b[cols][None, :, :]))
    p = jax.vmap(probabilities)(states, a, b).mean(0)
    per_device = (self.mesh.size, -1)
    highest = jax.lax.Precision.HIGHEST
    return (jnp.einsum("dr,drca->dca", row_weights.astype(p.dtype).reshape(per_device),
                       p.reshape(per_device + p.shape[1:]), precision=highest),
            jnp.einsum("rca,c->ra", p, col_weights.astype(p.dtype), precision=highest))

  def project(self, patches: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """(A, B), [K, N, d] each, for every patch, on every device; in fixed-size batches (one
    compilation), all dispatched before the first is gathered."""
    outputs = [(self._project(self._states, batch), count)
               for batch, count in patch_grid.batches(patches, self.feature_batch)]
    a, b = (np.concatenate([np.asarray(out[side])[:, :count] for out, count in outputs], axis=1)
            for side in (0, 1))
    return jax.device_put((a, b), self._replicated)

  def _pairs_within_budget(self) -> int:
    """How many pairs' activations (first head layer and attribute logits, every model) fit
    in pair_memory_bytes."""
    per_pair = self.num_models * 4 * (self._first_width + exif_attrs.NUM_ATTRIBUTES)
    return self.pair_memory_bytes // per_pair

  def rows_per_block(self, num_patches: int) -> int:
    """Rows of the matrix evaluated at once, over all devices."""
    return _equal_parts(num_patches, self._pairs_within_budget() // num_patches, self.mesh.size)

  def tile_side(self, num_patches: int) -> int:
    """Side of the square tiles of pairs `attribute_means` evaluates at once."""
    return _equal_parts(num_patches, math.isqrt(self._pairs_within_budget()), self.mesh.size)

  def pairs(self, a: jax.Array, b: jax.Array) -> np.ndarray:
    """All ordered pairs of the [K, N, d] projections -> the models' mean [N, N] P(same image).

    Every block is dispatched before the first is copied back: the devices run them back to
    back, each with its own activations (the outputs, N x N floats in all, are small). A
    block's rows go from the host to the device that computes them."""
    b = jax.device_put(b, self._replicated)
    n = a.shape[1]
    rows = self.rows_per_block(n)
    padded = -(-n // rows) * rows
    a = np.pad(np.asarray(a), ((0, 0), (0, padded - n), (0, 0)))  # Equal blocks: one compile.
    blocks = [self._pairs(self._states, a[:, start:start + rows], b)
              for start in range(0, padded, rows)]
    return np.concatenate([np.asarray(block) for block in blocks])[:n]

  def attribute_means(self, projections: tuple[jax.Array, jax.Array],
                      members: np.ndarray) -> np.ndarray:
    """[N, A]: per patch j and attribute, the mean over the member patches i (bool [N]) of the
    symmetrised P(same value) (P_ij + P_ji) / 2, as the models' mean.

    Only ordered pairs with a member on one side are needed, each once: member rows with every
    column, other rows with the members' columns. They are evaluated in square tiles within
    the memory budget, rows in members-first order; a tile adds P_ij to patch j's sum when i is
    a member, and to patch i's when j is one.
    """
    a, b = jax.device_put(projections, self._replicated)
    n = a.shape[1]
    members = np.asarray(members, bool)
    if members.shape != (n,) or not members.any():
      raise ValueError(f"members must mark at least one of the {n} patches")
    order = np.concatenate([np.flatnonzero(members), np.flatnonzero(~members)])
    num_members = int(members.sum())
    side = self.tile_side(n)
    valid = np.arange(side)
    tiles = []
    for rows, num_rows in patch_grid.batches(order, side):  # Padding: index 0, weight 0.
      # Members come first: a block holds one iff its first row does. Other rows need only
      # the members' columns.
      columns = order if members[rows[0]] else order[:num_members]
      for cols, num_cols in patch_grid.batches(columns, side):
        tiles.append((rows[:num_rows], cols[:num_cols], self._attribute_tile_sums(
            self._states, a, b, rows, cols, members[rows] & (valid < num_rows),
            members[cols] & (valid < num_cols))))
    sums = np.zeros((n, exif_attrs.NUM_ATTRIBUTES))
    for rows, cols, (into_cols, into_rows) in tiles:  # All dispatched; now gather.
      sums[cols] += np.asarray(into_cols).sum(0)[:len(cols)]
      sums[rows] += np.asarray(into_rows)[:len(rows)]
    return (sums / (2 * num_members)).astype(np.float32)

  def of_patches(self, grid: PatchGrid) -> Consistency:
    """The consistency of an image's cut patches: the part that runs on the devices."""
    a, b = self.project(grid.patches)
    matrix = self.pairs(a, b)
    # (i, j) and (j, i) see the patches in swapped head slots; the paper's c_ij is symmetric.
    matrix = (matrix + matrix.T) / 2
    return Consistency(grid.coords, matrix, (a, b))

  def __call__(self, image: np.ndarray, *, num_patches: int = 500,
               stride: int | None = None) -> Consistency:
    return self.of_patches(cut_grid(image, num_patches=num_patches, stride=stride))


@dataclasses.dataclass(frozen=True)
class PatchGrid:
  """coords: [N, 2] patch top-left (y, x); patches: [N, P, P, C] cut there, in the image's
  dtype. Host work only, so the next image's grid can be cut while the devices work."""
  coords: np.ndarray
  patches: np.ndarray


# Float32 N x N arrays alive at the peak of one image: the consistency matrix and what Mean
# Shift and the maps derive from it (peak RSS grew 182 MiB from 1500 to 3000 patches, about
# 7 matrices' worth; docs/reliability.md "Limits").
_MATRIX_COPIES = 8


def memory_needed(num_patches: int, patch_size: int = patch_grid.PATCH_SIZE) -> int:
  """Bytes one image of `num_patches` holds at least: its RGB patches and the N x N arrays
  (the pair activations are bounded apart, by pair_memory_bytes)."""
  return num_patches * patch_size**2 * 3 + _MATRIX_COPIES * 4 * num_patches**2


def _physical_memory() -> int:
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cut_grid(image: np.ndarray, *, num_patches: int = 500,
             stride: int | None = None) -> PatchGrid:
  """The patches of the evaluation grid. Raises ValueError for an image smaller than one
  patch, or whose grid could not fit in this machine's memory (checked before cutting)."""
  coords = patch_grid.grid_coords(image.shape[:2], num_patches=num_patches, stride=stride)
  needed, available = memory_needed(len(coords)), _physical_memory()
  if needed > available:
    raise ValueError(
        f"{len(coords)} patches need about {needed / 2**30:.0f} GiB (their N x N consistency "
        f"matrices), more than this machine's {available / 2**30:.0f} GiB: give fewer "
        "--num_patches or a larger --stride")
  return PatchGrid(coords, patch_grid.cut_patches(image, coords))


def _placed_jit(fn, in_shardings, out_shardings):
  """jax.jit of `fn` whose arguments are first put where in_shardings say: in a
  jax.distributed job jit refuses host arrays for a sharding that is not replicated."""
  jitted = jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings)
  def placed(*args):
    return jitted(*jax.device_put(args, in_shardings))
  placed.jitted = jitted  # For lowering, e.g. to count FLOPs.
  return placed


def _round_up(size: int, multiple: int) -> int:
  return -(-size // multiple) * multiple


def _equal_parts(total: int, most: int, multiple: int = 1) -> int:
  """The size of the fewest equal parts, each a multiple of `multiple` and of at most `most`
  (at least `multiple`), that cover `total`: padding the last part wastes less than
  `multiple` rows per part."""
  most = max(multiple, most // multiple * multiple)
  parts = -(-total // most)
  return _round_up(-(-total // parts), multiple)
