"""ResNet v2 (pre-activation; He et al. 2016, "Identity mappings") in flax.nnx.

The layout follows TF-slim's `resnet_v2`, the backbone of the original TF1 checkpoint, so
its weights map one to one: the stride of a block sits on its last unit, strided convs pad
symmetrically (slim's `conv2d_same`), the root conv, the projection shortcuts and the last
conv of each residual branch carry biases (no batch norm follows them directly), and the
network ends with a pre-activation batch norm + ReLU ("postnorm") before global pooling.

Parameter tree (a unit is `blocks[i][j]`, slim's `block{i+1}/unit_{j+1}`):
  conv1                           root 7x7/2 conv
  blocks[i][j].preact             pre-activation BatchNorm
  blocks[i][j].shortcut           1x1 projection (None where the shortcut is an identity)
  blocks[i][j].convs[k]           slim's conv{k+1}
  blocks[i][j].norms[k]           slim's conv{k+1}/BatchNorm (all convs but the last)
  postnorm                        final BatchNorm
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from exif_jax.models import noise_residuals as residuals_lib

# depth -> (units per block, bottleneck units?)
STAGES: dict[int, tuple[tuple[int, ...], bool]] = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
    152: ((3, 8, 36, 3), True),
}
BOTTLENECK_EXPANSION = 4

# As in the Flax ImageNet example. slim's 0.997 averages over ~300 steps: too slow for short runs.
BN_MOMENTUM = 0.9
# TF's fused batch norm floors epsilon at 1.001e-5: the value the TF1 checkpoint ran with.
BN_EPSILON = 1.001e-5


def _conv(in_features: int, out_features: int, kernel_size: int, stride: int = 1, *,
          use_bias: bool, dtype: Any, rngs: nnx.Rngs) -> nnx.Conv:
  """A conv with slim's symmetric padding and He-normal init (slim's default)."""
  return nnx.Conv(
      in_features, out_features, (kernel_size, kernel_size), (stride, stride),
      padding=kernel_size // 2, use_bias=use_bias, dtype=dtype,
      kernel_init=nnx.initializers.he_normal(), rngs=rngs)


def _batch_norm(num_features: int, *, dtype: Any, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(num_features, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype,
                       rngs=rngs)


class ResidualUnit(nnx.Module):
  """Pre-activation unit: out = shortcut(x) + branch(relu(bn(x))).

  The branch is 3x3, 3x3 (basic) or 1x1, 3x3, 1x1 (bottleneck); the stride sits on its
  3x3 conv. The shortcut projects relu(bn(x)) where the width changes, else it subsamples x.
  """

  def __init__(self, in_features: int, out_features: int, stride: int, bottleneck: bool, *,
               dtype: Any, rngs: nnx.Rngs):
    self.stride = stride
    self.preact = _batch_norm(in_features, dtype=dtype, rngs=rngs)
    self.shortcut = (
        _conv(in_features, out_features, 1, stride, use_bias=True, dtype=dtype, rngs=rngs)
        if in_features != out_features else None)
    if bottleneck:
      inner = out_features // BOTTLENECK_EXPANSION
      layers = ((in_features, inner, 1, 1), (inner, inner, 3, stride), (inner, out_features, 1, 1))
    else:
      layers = ((in_features, out_features, 3, stride), (out_features, out_features, 3, 1))
    self.convs = nnx.List([
        _conv(i, o, k, s, use_bias=(n == len(layers) - 1), dtype=dtype, rngs=rngs)
        for n, (i, o, k, s) in enumerate(layers)])
    self.norms = nnx.List([
        _batch_norm(o, dtype=dtype, rngs=rngs) for _, o, _, _ in layers[:-1]])

  def __call__(self, x: jax.Array) -> jax.Array:
    preact = nnx.relu(self.preact(x))
    if self.shortcut is None:
      shortcut = x[:, ::self.stride, ::self.stride]  # slim's subsample: 1x1 max pool
    else:
      shortcut = self.shortcut(preact)
    y = preact
    for conv, norm in zip(self.convs, self.norms):
      y = nnx.relu(norm(conv(y)))
    return shortcut + self.convs[-1](y)


class ResNetV2(nnx.Module):
  """Images [N, H, W, 3] (already scaled) -> pooled features [N, out_features].

  `dtype` is the compute dtype (e.g. jnp.bfloat16); parameters stay float32. Batch norm
  uses batch statistics after `model.train()` and running averages after `model.eval()`.
  With `noise_residuals` the root conv sees fixed high-pass residuals of the image beside
  its colours.
  """

  def __init__(self, depth: int = 50, width: int = 64, *, noise_residuals: bool = False,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if depth not in STAGES:
      raise ValueError(f"ResNet v2 depth must be one of {sorted(STAGES)}, got {depth}")
    units, bottleneck = STAGES[depth]
    expansion = BOTTLENECK_EXPANSION if bottleneck else 1
    self.dtype = dtype
    self.noise_residuals = noise_residuals
    channels = 3 + (residuals_lib.NUM_CHANNELS if noise_residuals else 0)
    self.conv1 = _conv(channels, width, 7, 2, use_bias=True, dtype=dtype, rngs=rngs)
    blocks = []
    in_features = width
    for i, num_units in enumerate(units):
      out_features = width * 2**i * expansion
      block_stride = 1 if i == len(units) - 1 else 2
      block = []
      for j in range(num_units):
        stride = block_stride if j == num_units - 1 else 1
        block.append(ResidualUnit(in_features, out_features, stride, bottleneck, dtype=dtype,
                                  rngs=rngs))
        in_features = out_features
      blocks.append(nnx.List(block))
    self.blocks = nnx.List(blocks)
    self.postnorm = _batch_norm(in_features, dtype=dtype, rngs=rngs)
    self.out_features = in_features

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.noise_residuals:
      x = jnp.concatenate([x, residuals_lib.noise_residuals(x)], axis=-1)
    x = self.conv1(x.astype(self.dtype))
    x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    for block in self.blocks:
      for unit in block:
        x = unit(x)
    x = nnx.relu(self.postnorm(x))
    return jnp.mean(x, axis=(1, 2))

