r"""Held-out quality against training photos and pairs seen: the recipe at fractions of its photos.

  python -m scripts.scaling_curve --photos ../shared/data/photos,../shared/data/photos_extra \
      --work workdirs/scaling --out docs/scaling

The training photos (every photo whose camera model is not in scripts/val_models.txt) are put in
a fixed random order; fraction f trains on the first f of them, so the smaller sets nest in the
larger ones, and every run keeps all held-out photos, so all runs are measured on the same
synthetic splices; `--benchmark NAME=DIR` adds more (e.g. splices between cameras that no
photo of --photos comes from). Each (fraction, seed) is one `scripts/train_bundled_model.sh` run in
WORK/<fraction>-seed<seed>; a finished run is not redone and a stopped one resumes, so the same
command picks up where it stopped. The training-free `--method noise` is measured once on
each set. OUT gets scaling.json, scaling.md (the table) and scaling.png (the plot).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys

from absl import app
from absl import flags

from data_prep import photos as photo_inputs
from data_prep import splits
from exif_jax.cli import command
from exif_jax.data import exif_attrs
from scripts import scaling_report

_PHOTOS = flags.DEFINE_list("photos", ["../shared/data/photos"],
                            "Photo folders or text files listing photos, comma-separated.")
_WORK = flags.DEFINE_string("work", "workdirs/scaling", "Folder of the runs.")
_OUT = flags.DEFINE_string("out", "docs/scaling", "Folder for scaling.json, .md and .png.")
_FRACTIONS = flags.DEFINE_list("fractions", ["0.25", "0.5", "1"],
                               "Fractions of the training photos, each in (0, 1].")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1"], "Training seeds of every fraction.")
_CONFIG = flags.DEFINE_string("config", "configs/cpu.py", "The recipe's config.")
_OVERRIDES = flags.DEFINE_multi_string(
    "override", [], "A --config.FIELD=VALUE for every run (both stages), e.g. "
    "--override=--config.data.virtual_camera_fraction=0.25 to measure an option the same way.")
_BENCHMARKS = flags.DEFINE_multi_string(
    "benchmark", [], "NAME=DIR: a folder with images/ and masks/ that every run and the noise "
    "method are also measured on.")
_FIXTURES = flags.DEFINE_string("fixtures", "../shared/data/fixtures",
                                "Folder with tampered/ (the spliced fixture each run is shown).")

REPO = pathlib.Path(__file__).resolve().parent.parent
VAL_MODELS = (REPO / "scripts" / "val_models.txt").read_text().splitlines()
HELD_OUT = "held_out"  # The splices between the held-out cameras' photos that every run makes.


def split_photos(paths: list[str]) -> tuple[list[str], list[str]]:
  """(training photos in their fixed random order, held-out photos); unreadable ones are
  left to data_prep, which names them."""
  rule = splits.SplitRule(val_models=VAL_MODELS)
  train, held_out = [], []
  for path in paths:
    try:
      exif = exif_attrs.read_exif(pathlib.Path(path).read_bytes())
    except Exception:  # pylint: disable=broad-except  # exifread raises many types.
      exif = {}
    side = rule.split(exif_attrs.camera_id(exif), exif.get("Image Model", ""))
    (held_out if side == "val" else train).append(path)
  train.sort(key=lambda p: hashlib.sha256(os.path.basename(p).encode()).hexdigest())
  return train, held_out


def run_once(name: str, photo_list: pathlib.Path, seed: int) -> pathlib.Path:
  """WORK/name trained and measured, unless it already is."""
  run = pathlib.Path(_WORK.value).resolve() / name
  if not (run / "eval_val_splices" / "metrics.json").exists():
    print(f"{name}: training and evaluating in {run}", file=sys.stderr, flush=True)
    subprocess.run(["bash", str(REPO / "scripts" / "train_bundled_model.sh"), str(photo_list),
                    str(run), _CONFIG.value, *_OVERRIDES.value, f"--config.seed={seed}"],
                   cwd=REPO, check=True,
                   env={**os.environ, "FIXTURES": str(pathlib.Path(_FIXTURES.value).resolve())})
  return run


def evaluate(method: list[str], benchmark: pathlib.Path, out: pathlib.Path
             ) -> dict[str, float]:
  """metrics.json of `eval` with `method` flags on a folder of images/ and masks/, made once."""
  if not (out / "metrics.json").exists():
    subprocess.run([sys.executable, "-m", "eval.commands.run_eval", *method, "--images",
                    str(benchmark / "images"), "--masks", str(benchmark / "masks"), "--out",
                    str(out)], cwd=REPO, check=True)
  return json.loads((out / "metrics.json").read_text())


def parse_benchmarks(specs: list[str]) -> dict[str, pathlib.Path]:
  benchmarks = {}
  for spec in specs:
    name, _, folder = spec.partition("=")
    if not name.isidentifier() or not folder or name == HELD_OUT:
      raise app.UsageError(f"--benchmark {spec!r}: expected NAME=DIR with NAME a word other "
                           f"than {HELD_OUT!r}")
    if not (pathlib.Path(folder) / "images").is_dir():
      raise app.UsageError(f"--benchmark {spec!r}: {folder} has no images/ folder")
    benchmarks[name] = pathlib.Path(folder).resolve()
  return benchmarks


def main(argv: list[str]) -> None:
  del argv
  fractions = [float(f) for f in _FRACTIONS.value]
  if not all(0 < f <= 1 for f in fractions):
    raise app.UsageError(f"--fractions must lie in (0, 1], got {_FRACTIONS.value}")
  benchmarks = parse_benchmarks(_BENCHMARKS.value)
  paths = [p for photos in _PHOTOS.value for p in photo_inputs.list_inputs(photos)]
  train, held_out = split_photos(paths)
  work = pathlib.Path(_WORK.value).resolve()
  work.mkdir(parents=True, exist_ok=True)
  runs = []
  for seed in map(int, _SEEDS.value):
    for fraction in fractions:
      count = max(1, round(fraction * len(train)))
      photo_list = work / f"photos-{count}.txt"
      photo_list.write_text("".join(f"{os.path.abspath(p)}\n" for p in train[:count] + held_out))
      run = run_once(f"{count}-seed{seed}", photo_list, seed)
      splices = {HELD_OUT: run / "val_splices", **benchmarks}
      metrics = {name: evaluate(["--checkpoint", str(run / "bundled_model")], folder,
                                run / ("eval_val_splices" if name == HELD_OUT else f"eval_{name}"))
                 for name, folder in splices.items()}
      runs.append(scaling_report.read_run(run, metrics, num_photos=count, seed=seed))
  noise = {name: evaluate(["--method", "noise"], folder, work / f"noise_{name}")
           for name, folder in {HELD_OUT: pathlib.Path(runs[0]["path"]) / "val_splices",
                                **benchmarks}.items()}
  scaling_report.write(pathlib.Path(_OUT.value), runs, noise)


if __name__ == "__main__":
  command.run(main)
