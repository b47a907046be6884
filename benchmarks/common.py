"""Shared measurement helpers for the benchmark scripts (each prints one JSON object)."""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp


def seconds_per_call(fn: Callable[[], object], repeats: int) -> float:
  """Median wall time of fn() after one warm-up call, blocking on its result."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return sorted(times)[len(times) // 2]


def matmul_peak_flops(size: int = 2048, repeats: int = 5) -> float:
  """FLOP/s of a large float32 matmul on the default device: the roofline to compare with."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  return 2 * size**3 / seconds_per_call(lambda: matmul(a), repeats)


def flops(compiled: jax.stages.Compiled) -> float:
  """Model FLOPs of one call, from XLA's cost analysis of the compiled program."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, list):
    analysis = analysis[0]
  return float(analysis.get("flops", 0.0))
