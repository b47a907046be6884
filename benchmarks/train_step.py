"""Train-step speed: python benchmarks/train_step.py [--batch_resnet50 8] [--steps 5]
[--patches_per_photo 4].

Prints JSON per config (the CPU config as shipped, with noise residuals at its root conv, with
the all-pairs sampler, and the paper's ResNet-50 at a small batch): step time, supervised
pairs/s and patches/s, model FLOPs per step (XLA cost analysis), achieved FLOP/s and its ratio
to a float32 matmul peak measured in the same run. Every pair is supervised (its
post-processing labels are always known): B per step with pairs, B (B - 1) / 2 with all pairs.
Random inputs: no data on disk is read.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import jax  # pylint: disable=g-import-not-at-top
from flax import nnx

from benchmarks import common
from configs import cpu
from configs import exif_resnet50
from exif_jax.data import all_pairs
from exif_jax.training import sharding
from exif_jax.training import train


def measure(config, steps: int, peak: float) -> dict[str, float]:
  """Times the real jitted train step (Adam, donated replicated state, sharded batch)."""
  mesh = sharding.make_mesh()
  model, optimizer = train.create_train_state(config, mesh)
  model.train()
  graphdef, state = nnx.split((model, optimizer))
  batch = sharding.global_batch(train.random_batch(config, config.train.batch_size), mesh)
  start = time.perf_counter()
  step = train.make_train_step(graphdef, config, mesh).lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  flops = common.flops(step)
  holder = {"state": state}

  def one_step():
    holder["state"], metrics = step(holder["state"], batch)
    return metrics["loss"]

  seconds = common.seconds_per_call(one_step, steps)
  return {"depth": config.model.depth, "width": config.model.width,
          "noise_residuals": config.model.noise_residuals, "dtype": config.model.dtype,
          "batch_size": config.train.batch_size,
          "sampler": config.data.sampler, "compile_s": compile_s, "step_s": seconds,
          "pairs_per_s": all_pairs.pairs_per_batch(config, config.train.batch_size) / seconds,
          "patches_per_s": sum(len(v) for k, v in batch.items() if k.startswith("patch")) / seconds,
          "flops_per_step": flops,
          "achieved_flops_per_s": flops / seconds,
          "fraction_of_matmul_peak": flops / seconds / peak}


def cpu_config(**model_overrides):
  config = cpu.get_config()
  config.model.update(model_overrides)
  return config


def cpu_all_pairs_config(patches_per_photo: int):
  """The CPU config (virtual cameras included) on all-pairs batches of as many patches a
  step as its pair batches: the same backbone cost per step."""
  config = cpu_config()
  config.data.update({"sampler": "all_pairs", "patches_per_photo": patches_per_photo})
  config.train.batch_size *= 2
  all_pairs.check_config(config)
  return config


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--batch_resnet50", type=int, default=8)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--patches_per_photo", type=int, default=4)
  parser.add_argument("--configs", default="cpu,cpu_noise_residuals,cpu_all_pairs,exif_resnet50",
                      help="Comma-separated rows to measure.")
  args = parser.parse_args()
  peak = common.matmul_peak_flops()
  resnet50 = exif_resnet50.get_config()
  resnet50.train.batch_size = args.batch_resnet50
  if jax.default_backend() == "cpu":
    resnet50.model.dtype = "float32"  # bfloat16 matmuls are emulated on most CPUs.
  rows = {"cpu": cpu_config, "cpu_noise_residuals": lambda: cpu_config(noise_residuals=True),
          "cpu_all_pairs": lambda: cpu_all_pairs_config(args.patches_per_photo),
          "exif_resnet50": lambda: resnet50}
  result = {"device": jax.devices()[0].device_kind, "num_devices": jax.device_count(),
            "matmul_peak_flops_per_s": peak}
  for name in args.configs.split(","):
    if name not in rows:
      parser.error(f"--configs: unknown row {name!r}; rows: {', '.join(rows)}")
    result[name] = measure(rows[name](), args.steps, peak)
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
