"""Evaluation speed on one 960x720 image: python benchmarks/eval_speed.py [--image PATH].

Prints JSON per config (the paper's ResNet-50 with random weights and the CPU config with the
bundled model's weights, whose consistency matrices Mean Shift works on in use; `--configs` picks
them): seconds for each step, each timed on its own: the backbone (features and split projection of
every patch), the pairs (every ordered pair through the rest of the head and the classifier), Mean
Shift (response-map coordinates, modes, the dominant mode's matrix row), map upsampling (that row's
full-resolution map), the opt-in per-attribute maps (the pairs with a dominant-region patch on one
side, again, and their maps) and output writing (the map's .npy and PNG heatmap, the thumbnail);
`total_s`, the whole `Localizer` call without per-attribute maps plus writing its outputs, and each
step's share of it; the image's model FLOPs from XLA's cost analysis, the FLOP floor they imply at
a float32 matmul peak measured in the same run, and the total's ratio to that floor; the GFLOP/s of
the backbone and of the pairs, and of each stage of the backbone (`backbone_stages`) on one batch,
to show where the floor is lost. The baseline (skipped with `--no_baseline`) is the original dense
algorithm in numpy and scikit-learn on the same patches and features: every pair runs the whole
head on concat(f_i, f_j), response maps are accumulated patch by patch, sklearn's MeanShift finds
the modes. Its pair time is extrapolated from `--baseline_rows` rows of the matrix where the full
matrix would take minutes (said in the output). For the CPU config it also times the `Localizer`
call of an ensemble of `--ensemble_size` models (other seeds) against one member. `folder`:
benchmarks/eval_folder.py (images per second over a folder, `--folder`, with the bundled model, and
the share of the loop the devices wait for the host) in processes with each of `--folder_devices`
fake CPU devices.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image
from sklearn import cluster

from benchmarks import common
from configs import cpu
from configs import exif_resnet50
from eval.localization import consistency
from eval.localization import localizer
from eval.localization import maps
from eval.localization import patch_grid
from eval.runs import results
from exif_jax.models import siamese
from exif_jax.training import checkpointing
from exif_jax.training import train

# pylint: disable=protected-access  # The steps of Localizer and batch, timed one by one.

IMAGE_SHAPE = (720, 960)
CONFIGS = ("cpu", "cpu_ensemble", "exif_resnet50", "folder")
# The steps after the pairs that every localized image runs (attribute maps are opt-in).
POST_PAIR_STEPS = ("mean_shift", "map_upsampling", "output_writing")
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "photos"
DEFAULT_FOLDER = ROOT / "tests" / "data" / "camera"


def load_image(path: pathlib.Path | None) -> np.ndarray:
  """A real photo, centre-cropped and resized to 960x720 (the paper's evaluation size)."""
  if path is None:
    path = next(iter(sorted(DEFAULT_PHOTOS.rglob("*.jpg"))), None)
    if path is None:
      raise SystemExit(f"no photo in {DEFAULT_PHOTOS}; pass --image")
  with Image.open(path) as image:
    image = image.convert("RGB")
    height, width = IMAGE_SHAPE
    scale = max(width / image.width, height / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)),
                         Image.Resampling.LANCZOS)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)))


def model_flops(scorer: consistency.ConsistencyModel, patches: np.ndarray, a,
                b) -> dict[str, float]:
  """Backbone and pairs FLOPs of one image, as the jitted programs run them (padding
  included)."""
  batch = patches[:scorer.feature_batch]
  batch = np.pad(batch, ((0, scorer.feature_batch - len(batch)), (0, 0), (0, 0), (0, 0)))
  project = scorer._project.jitted.lower(scorer._states, batch).compile()
  num_batches = -(-len(patches) // scorer.feature_batch)
  rows = scorer.rows_per_block(len(patches))
  block = jax.ShapeDtypeStruct((a.shape[0], rows, a.shape[2]), a.dtype)
  pairs = scorer._pairs.jitted.lower(scorer._states, block, b).compile()
  return {"backbone": common.flops(project) * num_batches,
          "pairs": common.flops(pairs) * -(-len(patches) // rows)}


def backbone_stages(model: nnx.Module, patches: np.ndarray, repeats: int) -> list[dict]:
  """Seconds and GFLOP/s of each stage of the ResNet (the stem conv, then each block of
  residual units) on one batch of 64 patches: where the backbone falls short of the matmul
  peak. Each stage is timed as the prefix up to it minus the prefix before it."""
  backbone = model.backbone
  graphdef, state = nnx.split(backbone)
  x = siamese.scale_patches(jnp.asarray(next(patch_grid.batches(patches, 64))[0]))

  def prefix(num_blocks):
    def run(state, x):
      net = nnx.merge(graphdef, state)
      x = net.conv1(x)
      if num_blocks:
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
      for block in list(net.blocks)[:num_blocks]:
        for unit in block:
          x = unit(x)
      return x
    return jax.jit(run)

  stages, before = [], {"seconds": 0.0, "flops": 0.0}
  for num_blocks in range(len(backbone.blocks) + 1):
    run = prefix(num_blocks)
    upto = {"seconds": common.seconds_per_call(lambda: run(state, x), repeats),
            "flops": common.flops(run.lower(state, x).compile())}
    seconds, flops = (upto[k] - before[k] for k in ("seconds", "flops"))
    stages.append({"stage": f"block{num_blocks}" if num_blocks else "stem_conv",
                   "seconds": seconds, "gflop": flops / 1e9,
                   "gflop_per_s": flops / 1e9 / max(seconds, 1e-9)})
    before = upto
  return stages


def dense_pairs(model: nnx.Module, features: np.ndarray, rows: int) -> np.ndarray:
  """The original head: concat(f_i, f_j) through every layer for each ordered pair, in numpy."""
  layers = [(np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])) for layer in model.head]
  hidden = model.classifier.hidden
  out = model.classifier.out
  n = len(features)
  result = np.empty((rows, n), np.float32)
  for i in range(rows):
    x = np.concatenate([np.repeat(features[i:i + 1], n, 0), features], axis=1)
    for depth, (kernel, bias) in enumerate(layers):
      x = (np.maximum(x, 0) if depth else x) @ kernel + bias
    x = np.maximum(x @ np.asarray(hidden.kernel[...]) + np.asarray(hidden.bias[...]), 0)
    logit = x @ np.asarray(out.kernel[...]) + np.asarray(out.bias[...])
    result[i] = 1 / (1 + np.exp(-logit[:, 0]))
  return result


def sklearn_map(matrix: np.ndarray, coords: np.ndarray, image_shape) -> np.ndarray:
  """Response maps accumulated patch by patch, sklearn MeanShift, the dominant mode's map."""
  height, width = maps.WORKING_SHAPE
  scale_y, scale_x = height / image_shape[0], width / image_shape[1]
  size = patch_grid.PATCH_SIZE
  sums = np.zeros((len(matrix), height, width), np.float32)
  counts = np.zeros((height, width), np.float32)
  for j, (y, x) in enumerate(coords):
    window = (slice(int(y * scale_y), max(int((y + size) * scale_y), int(y * scale_y) + 1)),
              slice(int(x * scale_x), max(int((x + size) * scale_x), int(x * scale_x) + 1)))
    sums[(slice(None), *window)] += matrix[:, j, None, None]
    counts[window] += 1
  points = (sums / np.maximum(counts, 1)).reshape(len(matrix), -1)
  bandwidth = cluster.estimate_bandwidth(points, quantile=0.3)
  labels = cluster.MeanShift(bandwidth=bandwidth).fit(points).labels_
  dominant = np.bincount(labels).argmax()
  mode = points[labels == dominant].mean(0).reshape(height, width)
  return 1 - np.asarray(Image.fromarray(mode).resize(image_shape[::-1][:2],
                                                      Image.Resampling.BILINEAR))


def step_seconds(scorer: consistency.ConsistencyModel, whole: localizer.Localizer,
                 image: np.ndarray, repeats: int) -> dict[str, float]:
  """Seconds of each step of localizing `image`, each timed on its own with its inputs ready."""
  shape = image.shape[:2]
  scored = whole.consistency(image, num_patches=whole.options.num_patches)
  coords, matrix, (a, b) = scored.coords, scored.matrix, scored.projections
  patches = patch_grid.cut_patches(image, coords)
  mode = maps.dominant_mode(matrix, coords, shape)
  # What every image writes: the opt-in per-attribute maps' file is not part of it.
  localization = dataclasses.replace(whole(image), attribute_maps=None)
  with tempfile.TemporaryDirectory() as out:
    return {
        "backbone": common.seconds_per_call(lambda: scorer.project(patches), repeats),
        "pairs": common.seconds_per_call(lambda: scorer.pairs(a, b), repeats),
        "mean_shift": common.seconds_per_call(
            lambda: maps.dominant_mode(matrix, coords, shape).row, repeats),
        "map_upsampling": common.seconds_per_call(
            lambda: maps.patch_average(mode.row[None], coords, shape, shape), repeats),
        "attribute_maps": common.seconds_per_call(
            lambda: whole._attribute_maps(scored, mode.members, shape)[0], repeats),
        "output_writing": common.seconds_per_call(
            lambda: results.save_outputs(pathlib.Path(out), "photo", image, localization),
            repeats),
    }


def measure(config, image: np.ndarray, peak: float, repeats: int,
            baseline_rows: int | None = None, baseline: bool = True,
            model: nnx.Module | None = None) -> dict[str, float]:
  """One config's timings, of `model` (random weights if None); the baseline (unless
  `baseline` is False) times `baseline_rows` pair rows (None: all).

  `steps_s`: each step's seconds; `step_shares`: each over `total_s`, the whole `Localizer`
  call (per-attribute maps excluded: they are opt-in) plus writing its outputs;
  `post_pair_share`: the steps after the pairs that every image runs, over `total_s`.
  """
  model = train.create_model(config) if model is None else model
  model.eval()
  scorer = consistency.ConsistencyModel(model)
  whole = localizer.Localizer(model, localizer.Options(attribute_maps=True))
  steps = step_seconds(scorer, whole, image, repeats)
  scored = whole.consistency(image, num_patches=whole.options.num_patches)
  coords, matrix, (a, b) = scored.coords, np.asarray(scored.matrix), scored.projections
  patches = patch_grid.cut_patches(image, coords)
  region = maps.consistency_map(matrix, coords, image.shape[:2]).members
  plain = localizer.Localizer(model)
  with tempfile.TemporaryDirectory() as out:
    total = common.seconds_per_call(
        lambda: results.save_outputs(pathlib.Path(out), "photo", image, plain(image)), repeats)
  result = {
      "depth": config.model.depth, "width": config.model.width,
      "num_patches": len(coords),
      "backbone_s": steps["backbone"], "pairs_s": steps["pairs"],
      "mean_shift_s": steps["mean_shift"] + steps["map_upsampling"],
      "dominant_region_patches": int(region.sum()),
      "steps_s": steps, "total_s": total,
      "step_shares": {name: seconds / total for name, seconds in steps.items()},
      "post_pair_share": sum(steps[name] for name in POST_PAIR_STEPS) / total,
  }
  parts = model_flops(scorer, patches, a, b)
  flops = sum(parts.values())
  result.update(model_flops=flops, flop_floor_s=flops / peak,
                total_over_flop_floor=result["total_s"] / (flops / peak),
                backbone_gflop_per_s=parts["backbone"] / 1e9 / result["backbone_s"],
                pairs_gflop_per_s=parts["pairs"] / 1e9 / result["pairs_s"],
                backbone_stages=backbone_stages(model, patches, repeats))
  if not baseline:
    return result

  # The original dense algorithm on the same patches and features.
  graphdef, state = nnx.split(model)
  features = jax.jit(lambda state, x: nnx.merge(graphdef, state).features(x))
  feature_rows = np.concatenate([
      np.asarray(features(state, chunk))[:count]
      for chunk, count in patch_grid.batches(patches, scorer.feature_batch)])
  rows = len(coords) if baseline_rows is None else min(baseline_rows, len(coords))
  start = time.perf_counter()
  dense_pairs(model, feature_rows, rows)
  baseline_pairs = (time.perf_counter() - start) * len(coords) / rows
  start = time.perf_counter()
  sklearn_map(matrix, coords, image.shape[:2])
  baseline_mean_shift = time.perf_counter() - start
  baseline_total = result["backbone_s"] + baseline_pairs + baseline_mean_shift
  result.update(
      baseline_pairs_s=baseline_pairs, baseline_pairs_rows_timed=rows,
      baseline_mean_shift_s=baseline_mean_shift, baseline_total_s=baseline_total,
      speedup_pairs=baseline_pairs / result["pairs_s"],
      speedup_mean_shift=baseline_mean_shift / result["mean_shift_s"],
      speedup_total=baseline_total / result["total_s"])
  return result


def measure_ensemble(config, image: np.ndarray, size: int, repeats: int) -> dict[str, float]:
  """An ensemble's whole localization against one member's: the price of averaging trainings."""
  members = []
  for seed in range(size):
    member = config.copy_and_resolve_references()
    member.seed = seed
    members.append(train.create_model(member))
  single = localizer.Localizer(members[0])
  ensemble = localizer.Localizer(members)
  single_s = common.seconds_per_call(lambda: single(image).map, repeats)
  ensemble_s = common.seconds_per_call(lambda: ensemble(image).map, repeats)
  return {"ensemble_size": size, "single_total_s": single_s, "ensemble_total_s": ensemble_s,
          "ensemble_over_single": ensemble_s / single_s}


def folder_throughput(folder: pathlib.Path, num_devices: int) -> dict[str, float]:
  """benchmarks/eval_folder.py's JSON, from a process with `num_devices` fake CPU devices."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={num_devices}"}
  output = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_folder.py"),
                           str(folder)], env=env, capture_output=True, text=True, check=True)
  return json.loads(output.stdout.splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--image", type=pathlib.Path, help="photo to crop to 960x720")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--baseline_rows", type=int, default=16,
                      help="rows of the dense baseline's pair matrix to time")
  parser.add_argument("--ensemble_size", type=int, default=3,
                      help="members of the CPU-config ensemble to time")
  parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS),
                      help="what to time: the CPU config, its ensemble, the paper's ResNet-50, "
                      "a folder of images")
  parser.add_argument("--folder", type=pathlib.Path, default=DEFAULT_FOLDER,
                      help="images to localize for the images-per-second figure")
  parser.add_argument("--folder_devices", type=int, nargs="+", default=[1, 4],
                      help="fake CPU device counts to localize the folder with")
  parser.add_argument("--no_baseline", action="store_true",
                      help="skip the dense numpy + scikit-learn original (minutes per config)")
  args = parser.parse_args()
  image = load_image(args.image)
  peak = common.matmul_peak_flops()
  result = {"device": jax.devices()[0].device_kind, "image_shape": list(image.shape),
            "matmul_peak_flops_per_s": peak}
  small = cpu.get_config()
  if "cpu" in args.configs:
    result["cpu"] = measure(small, image, peak, args.repeats, baseline=not args.no_baseline,
                            model=checkpointing.restore(checkpointing.BUNDLED_MODEL))
  if "cpu_ensemble" in args.configs:
    result["cpu_ensemble"] = measure_ensemble(small, image, args.ensemble_size, args.repeats)
  if "exif_resnet50" in args.configs:
    resnet50 = exif_resnet50.get_config()
    if jax.default_backend() == "cpu":
      resnet50.model.dtype = "float32"  # bfloat16 matmuls are emulated on most CPUs.
    result["exif_resnet50"] = measure(resnet50, image, peak, args.repeats, args.baseline_rows,
                                      not args.no_baseline)
  if "folder" in args.configs:
    result["folder"] = [folder_throughput(args.folder, n) for n in args.folder_devices]
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
