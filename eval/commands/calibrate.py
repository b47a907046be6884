"""exif-jax calibrate --model DIR --images IMAGES --masks MASKS --eval_out OUT [...]: the
detection thresholds of a model, fitted on its evaluations of validation splices.

Each (--images, --masks, --eval_out) is one validation set, in order: synthetic splices between
camera models the model never trained on (`exif-jax synth --cameras_from ... --split val`),
and the `exif-jax eval --checkpoint DIR` of them. Use everyday scenes beside any chart-like set:
a threshold fitted on flat chart patches will not hold on the photos users bring. Writes
DIR/calibration.json (eval/calibration.py says what it holds); `localize` and `eval` then give
verdicts with the measured error rates. Evaluations made with `--noise_weight W` calibrate the
fused consistency: its verdicts are given to runs with the same weight only.
"""

from __future__ import annotations

import pathlib

import numpy as np
from absl import app
from absl import flags

from eval import calibration
from eval.data import datasets
from eval.localization import maps
from eval.runs import out_folder
from eval.runs import results
from exif_jax.cli import command
from exif_jax.cli import ctrl_c

_MODEL = flags.DEFINE_string("model", None, "The model folder to calibrate (an exported model "
                             "or a training workdir); calibration.json goes there.",
                             required=True)
_IMAGES = flags.DEFINE_multi_string("images", [], "A validation set's images.")
_MASKS = flags.DEFINE_multi_string("masks", [], "Its masks (authentic images have none).")
_EVAL_OUT = flags.DEFINE_multi_string("eval_out", [], "Its `exif-jax eval` OUT, of this model; "
                                      "its folder name names the set in calibration.json.")
_MAX_FPR = flags.DEFINE_float("max_false_positive_rate", 0.05, "Share of authentic validation "
                              "images that may be called spliced.", lower_bound=0, upper_bound=1)
_MAX_MISSED = flags.DEFINE_float("max_missed_rate", 0.05, "Share of spliced validation images "
                                 "that may be called clear.", lower_bound=0, upper_bound=1)


def _model_sha256(model: str) -> str:
  """The weights' digest, as `eval` records it in OUT/settings.json."""
  with ctrl_c.held():  # JAX: not for --help, and imported whole.
    # pylint: disable=g-import-not-at-top
    from eval.localization import localizer
    from exif_jax.training import checkpointing
  return localizer.state_sha256([checkpointing.restore(model)])


def _read_set(images: str, masks: str, out: pathlib.Path, model_sha256: str
              ) -> tuple[dict[str, list[float]], list[tuple[np.ndarray, np.ndarray]], float]:
  """A set's labelled scores, the (mask, map) of its spliced images and the --noise_weight
  its maps were made with."""
  settings = out_folder.read_settings(out / out_folder.SETTINGS)
  if settings.get("model_sha256") != model_sha256:
    raise ValueError(f"{out}: an evaluation of another model than {_MODEL.value}")
  scores, labels, pixels = [], [], []
  for example in datasets.folder_pair(images, masks):
    record = results.read_record(example, out)
    if not isinstance(record, dict):
      raise ValueError(f"{out}: no result for {example.image_path}: run `exif-jax eval` on "
                       "this set first")
    if "score" not in record:
      continue  # Skipped by eval: its reason is in the record.
    heat = np.load(results.map_path(out, results.storage_name(example.stem)))
    scores.append(maps.detection_score(heat))
    labels.append(int(example.spliced))
    if example.spliced:
      pixels.append((example.mask, heat))
  return {"scores": scores, "labels": labels}, pixels, settings.get("noise_weight", 0.0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  sets = list(zip(_IMAGES.value, _MASKS.value, map(pathlib.Path, _EVAL_OUT.value)))
  if not sets or len({len(_IMAGES.value), len(_MASKS.value), len(_EVAL_OUT.value)}) != 1:
    raise app.UsageError("give each validation set as --images, --masks and --eval_out, in order")
  model_sha256 = _model_sha256(_MODEL.value)
  validation, pixels, noise_weights = {}, [], {}
  try:
    for images, masks, out in sets:
      if out.name in validation:
        raise ValueError(f"{out}: two validation sets named {out.name!r}; give distinct names")
      validation[out.name], set_pixels, noise_weights[out] = _read_set(
          images, masks, out, model_sha256)
      pixels += set_pixels
    if len(set(noise_weights.values())) > 1:
      raise ValueError("the evaluations were made with different --noise_weight values: "
                       + ", ".join(f"{out}: {w:g}" for out, w in noise_weights.items()))
    fitted = calibration.fit(validation, *calibration.best_pixel_threshold(pixels),
                             max_false_positive_rate=_MAX_FPR.value,
                             max_missed_rate=_MAX_MISSED.value,
                             noise_weight=next(iter(noise_weights.values())))
  except (OSError, ValueError, datasets.LayoutError) as e:
    raise command.NothingDone(str(e)) from None
  print(f"{calibration.save(fitted, _MODEL.value)}\n{fitted.summary()}\n"
        f"mask: map >= {fitted.pixel_threshold:.2f} (mean F1 {fitted.pixel_f1:.3f} on the "
        "spliced validation images)")
  return command.OK


if __name__ == "__main__":
  command.run(main)
