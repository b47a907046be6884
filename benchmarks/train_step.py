"""Train-step speed: python benchmarks/train_step.py [--batch_resnet50 8] [--steps 5].

Prints JSON per config: step time, pairs/s, model FLOPs per step (XLA cost analysis),
achieved FLOP/s and its ratio to a float32 matmul peak measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np
import optax
from flax import nnx

from benchmarks import common
from configs import cpu
from configs import exif_resnet50
from exif_jax import sharding
from exif_jax import train


def random_batch(batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  return {"patch_a": rng.integers(0, 256, (batch_size, 128, 128, 3), np.uint8),
          "patch_b": rng.integers(0, 256, (batch_size, 128, 128, 3), np.uint8),
          "labels": rng.integers(-1, 2, (batch_size, 83), np.int8),
          "same_image": rng.integers(0, 2, (batch_size,), np.int8)}


def measure(config, steps: int, peak: float) -> dict[str, float]:
  mesh = sharding.make_mesh()
  model = train.create_model(config)
  optimizer = nnx.Optimizer(model, optax.adam(1e-4), wrt=nnx.Param)
  model.train()
  graphdef, state = nnx.split((model, optimizer))
  step = train.make_train_step(graphdef, config, mesh)
  state = sharding.replicate(state, mesh)
  batch = sharding.global_batch(random_batch(config.train.batch_size), mesh)
  flops = common.compiled_flops(step, state, batch)
  holder = {"state": state}

  def one_step():
    holder["state"], metrics = step(holder["state"], batch)
    return metrics["loss"]

  seconds = common.seconds_per_call(one_step, steps)
  return {"batch_size": config.train.batch_size, "step_s": seconds,
          "pairs_per_s": config.train.batch_size / seconds, "flops_per_step": flops,
          "achieved_flops_per_s": flops / seconds, "fraction_of_matmul_peak": flops / seconds / peak}


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--batch_resnet50", type=int, default=8)
  parser.add_argument("--steps", type=int, default=5)
  args = parser.parse_args()
  peak = common.matmul_peak_flops()
  resnet50 = exif_resnet50.get_config()
  resnet50.train.batch_size = args.batch_resnet50
  if jax.default_backend() == "cpu":
    resnet50.model.dtype = "float32"  # bfloat16 matmuls are emulated on most CPUs.
  result = {"device": jax.devices()[0].device_kind, "num_devices": jax.device_count(),
            "matmul_peak_flops_per_s": peak,
            "cpu": measure(cpu.get_config(), args.steps, peak),
            "exif_resnet50": measure(resnet50, args.steps, peak)}
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
