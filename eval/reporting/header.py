"""The top of report.html: what made the maps and how far to trust them (the model, what it
tells apart on camera models it never trained on, the rule behind its verdicts) and, with
ground truth, the dataset's metrics; a reader needs these before any map.
"""

from __future__ import annotations

import html
from typing import Any

from eval import metrics as metrics_lib
from eval.reporting import attribute_groups

MODEL_FACTS = "model.json"  # OUT/model.json: the model's config and validation.json, by the run.
DEFAULT_PIXEL_THRESHOLD = 0.5  # The mask's threshold without a calibration.

_STAGES = {
    "exif": "the EXIF-consistency network (stage 1)",
    "classifier": "the EXIF-consistency network with its same-image classifier (stage 2)",
    "image_consistency": "the Image-Consistency baseline",
    "camera_classification": "the Camera-Classification baseline"}
NOISE_METHOD = ("Method: the noise-level reference, no model. It maps where the local noise "
                "level differs from the rest of the image (training-free), the floor a learned "
                "model must clear; it has no attribute maps.")


def pixel_threshold(settings: dict[str, Any]) -> float:
  """The calibration's pixel threshold, else DEFAULT_PIXEL_THRESHOLD."""
  return settings.get("calibration", {}).get("pixel_threshold", DEFAULT_PIXEL_THRESHOLD)


def _model(settings: dict[str, Any], facts: dict[str, Any]) -> str:
  if settings.get("method") == "noise":
    return f"<p>{html.escape(NOISE_METHOD)}</p>"
  if not facts:
    return "<p>Model: not recorded in this folder (made before model.json existed).</p>"
  members = (f"an ensemble of {settings['ensemble_size']} trainings of "
             if "ensemble_size" in settings else "")
  text = (f"Model: {members}{_STAGES.get(facts['stage'], facts['stage'])}, ResNet-"
          f"{facts['depth']} v2 (width {facts['width']}), {facts['steps']} training steps.")
  if settings.get("noise_weight"):
    text += (" Its pair predictions are fused with the patches' noise levels (--noise_weight "
             f"{settings['noise_weight']:g}): the maps read both.")
  return f"<p>{html.escape(text)}</p>{_validation(facts.get('validation'))}"


def _validation(validation: dict[str, Any] | None) -> str:
  if not validation:
    return ("<p>How well it tells attributes apart on camera models it never trained on is "
            "unknown: the model has no validation.json (<code>exif-jax validate --checkpoint "
            "MODEL --data_dir SHARDS</code> writes one).</p>")
  cameras = validation.get("held_out_cameras")
  held_out = (f"{len(cameras)} camera models it never trained on ({', '.join(cameras)})"
              if cameras else "camera models it never trained on")
  text = (f"Validation: on {validation.get('num_pairs') or 'the'} pairs of patches from "
          f"{held_out}, dataset {validation['dataset']}: mean AUC "
          f"{validation['mean_auc']:.3f} over its attributes (chance 0.5).")
  grouped = attribute_groups.by_group(attribute_groups.told_apart(validation))
  told = "; ".join(f"{group}: " + ", ".join(map(attribute_groups.plain_name, names))
                   for group, names in grouped.items())
  rule = f"AUC &ge; {attribute_groups.SHOWN_FROM_AUC}"
  return (f"<p>{html.escape(text)}</p><p class=\"told\">It tells apart ({rule}): "
          f"{html.escape(told) if told else 'none of the 83 attributes'}.</p>")


def _verdicts(settings: dict[str, Any]) -> str:
  calibration = settings.get("calibration")
  if calibration:
    return f"<p>Verdicts: {html.escape(calibration['summary'])}.</p>"
  missing = ("no calibration.json" if not settings.get("noise_weight") else
             "no calibration fitted with this --noise_weight")
  return (f"<p>Verdicts: uncalibrated. This model has {missing} (<code>exif-jax "
          "calibrate</code>), so no verdict is given; the score is the mean of the map, from 0 "
          "(every patch consistent) to 1, comparable between the images of this page only.</p>")


def _metrics(metrics: dict[str, Any] | None) -> str:
  """The dataset metrics of OUT/metrics.json, as `exif-jax eval` prints them."""
  if not metrics:
    return ""
  rows = "".join(f"<tr><td>{name}</td><td>{metrics[name]:.3f}</td></tr>"
                 for name in metrics_lib.SUMMARY if name in metrics)
  return (f'<section id="metrics"><h2>Metrics</h2><table>{rows}</table><p>Over '
          f'{metrics["num_localization_images"]} images with a two-class mask and '
          f'{metrics["num_detection_images"]} with a known label (metrics.json).</p></section>')


def write(settings: dict[str, Any], facts: dict[str, Any], metrics: dict[str, Any] | None,
          colour_bar: str) -> str:
  """The header's HTML: model, verdict rule, reading guide and colour bar (an <img>), and the
  dataset metrics when known."""
  threshold = pixel_threshold(settings)
  guide = ("Reading: every map is on the same scale, from 0 (consistent with the image's "
           "dominant region, dark) to 1 (inconsistent, bright); the outline marks the pixels "
           f"at or above {threshold:.2f}"
           + (" (the calibration's pixel threshold)." if "calibration" in settings else "."))
  return (f'<header>{_model(settings, facts)}{_verdicts(settings)}<p class="guide">'
          f'{html.escape(guide)}</p>{colour_bar}</header>{_metrics(metrics)}')
