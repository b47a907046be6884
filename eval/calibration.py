"""A detection decision with its measured error rates, instead of "score above 0.5".

Thresholds on the detection score (maps.detection_score) are fitted on validation splices
between camera models the model never trained on and stored beside the model
(MODEL/calibration.json) with the validation scores they came from, so that anyone can check
the rates. A verdict is then one of:

  spliced                  score >= spliced_at: a false-positive rate of at most
                           max_false_positive_rate on the authentic validation images
  no inconsistency found   score < clear_below: at most max_missed_rate of the spliced
                           validation images score that low
  inconclusive             in between: the evidence is weak either way
  uncalibrated             a model without calibration.json: no verdict is guessed

The pixel threshold of the mask is the one with the best mean F1 on the spliced validation
images.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import numpy as np
from etils import epath

from eval import metrics as metrics_lib

FILE = "calibration.json"
SPLICED, INCONCLUSIVE, CLEAR, UNCALIBRATED = (
    "spliced", "inconclusive", "no inconsistency found", "uncalibrated")
PIXEL_THRESHOLDS = np.round(np.arange(0.05, 1.0, 0.05), 2)


@dataclasses.dataclass(frozen=True)
class Calibration:
  """Thresholds on the detection score and what they were measured to do."""
  spliced_at: float
  clear_below: float
  false_positive_rate: float  # Authentic validation images at or above spliced_at.
  detection_rate: float  # Spliced validation images at or above spliced_at.
  missed_rate: float  # Spliced validation images below clear_below.
  clear_rate: float  # Authentic validation images below clear_below.
  pixel_threshold: float
  pixel_f1: float  # Mean F1 of `map >= pixel_threshold` over the spliced validation images.
  # Per validation set: {"scores": [...], "labels": [...]} (1 spliced, 0 authentic).
  validation: dict[str, dict[str, list[float]]]
  # The scores' --noise_weight (0: the learned consistency alone); verdicts apply to maps made
  # with the same weight only.
  noise_weight: float = 0.0

  def verdict(self, score: float) -> str:
    if score >= self.spliced_at:
      return SPLICED
    return CLEAR if score < self.clear_below else INCONCLUSIVE

  def summary(self) -> str:
    """One line a report or a terminal prints under its verdicts."""
    counts = _pooled(self.validation)[1]
    fused = f"noise fused at weight {self.noise_weight:g}; " if self.noise_weight else ""
    return (f"{fused}spliced: score >= {self.spliced_at:.3f} (on validation splices between camera "
            f"models the model never saw: {self.false_positive_rate:.0%} of "
            f"{int((counts == 0).sum())} authentic images flagged, "
            f"{self.detection_rate:.0%} of {int(counts.sum())} spliced ones found); "
            f"no inconsistency found: score < {self.clear_below:.3f} "
            f"({self.missed_rate:.0%} of spliced and {self.clear_rate:.0%} of authentic "
            f"images there); inconclusive between")


def verdict(calibration: Calibration | None, score: float) -> str:
  return UNCALIBRATED if calibration is None else calibration.verdict(score)


def settings(calibration: Calibration | None) -> dict[str, Any]:
  """What an OUT records of the decision rule behind its verdicts (none: uncalibrated), so
  that a rerun under another rule is refused instead of mixing verdicts."""
  if calibration is None:
    return {}
  rule = {"spliced_at": calibration.spliced_at, "clear_below": calibration.clear_below,
          "pixel_threshold": calibration.pixel_threshold, "summary": calibration.summary()}
  if calibration.noise_weight:
    rule["noise_weight"] = calibration.noise_weight
  return {"calibration": rule}


def _pooled(validation: dict[str, dict[str, list[float]]]) -> tuple[np.ndarray, np.ndarray]:
  scores = np.concatenate([np.asarray(s["scores"], np.float64) for s in validation.values()])
  labels = np.concatenate([np.asarray(s["labels"], np.int64) for s in validation.values()])
  return scores, labels


def rates(scores: np.ndarray, labels: np.ndarray, spliced_at: float, clear_below: float
          ) -> dict[str, float]:
  """What the two thresholds do on labelled scores."""
  spliced, authentic = scores[labels == 1], scores[labels == 0]
  return {"false_positive_rate": float(np.mean(authentic >= spliced_at)),
          "detection_rate": float(np.mean(spliced >= spliced_at)),
          "missed_rate": float(np.mean(spliced < clear_below)),
          "clear_rate": float(np.mean(authentic < clear_below))}


def fit(validation: dict[str, dict[str, list[float]]], pixel_threshold: float,
        pixel_f1: float, *, max_false_positive_rate: float = 0.05,
        max_missed_rate: float = 0.05, noise_weight: float = 0.0) -> Calibration:
  """The lowest `spliced_at` that flags at most max_false_positive_rate of the authentic
  validation images, and the highest `clear_below` that passes at most max_missed_rate of
  the spliced ones as clear (never above spliced_at)."""
  scores, labels = _pooled(validation)
  authentic, spliced = np.sort(scores[labels == 0])[::-1], np.sort(scores[labels == 1])
  if not (authentic.size and spliced.size):
    raise ValueError("calibration needs both spliced and authentic validation images")
  allowed = min(int(np.floor(max_false_positive_rate * authentic.size)), authentic.size - 1)
  # Just above the (allowed + 1)-th highest authentic score: `allowed` of them reach it.
  spliced_at = float(np.nextafter(authentic[allowed], np.inf))
  missed = int(np.floor(max_missed_rate * spliced.size))
  clear_below = min(float(spliced[missed]), spliced_at)
  return Calibration(spliced_at=spliced_at, clear_below=clear_below,
                     **rates(scores, labels, spliced_at, clear_below),
                     pixel_threshold=pixel_threshold, pixel_f1=pixel_f1,
                     validation=validation, noise_weight=noise_weight)


def best_pixel_threshold(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
  """(threshold, mean F1) of the threshold in PIXEL_THRESHOLDS with the best mean F1 of
  `map >= threshold` over (mask, map) pairs of spliced images."""
  f1 = np.zeros(len(PIXEL_THRESHOLDS))
  for mask, heat in pairs:
    f1 += [float(metrics_lib.f1(*metrics_lib.confusion(mask, heat >= t)))
           for t in PIXEL_THRESHOLDS]
  f1 /= max(len(pairs), 1)
  best = int(np.argmax(f1))
  return float(PIXEL_THRESHOLDS[best]), float(f1[best])


def save(calibration: Calibration, model_dir: epath.PathLike) -> epath.Path:
  path = epath.Path(model_dir) / FILE
  path.write_text(json.dumps(dataclasses.asdict(calibration), indent=1))
  return path


def load(model_dir: epath.PathLike) -> Calibration | None:
  """The calibration stored with a model (a workdir or an exported model folder), None when
  it has none. ValueError naming the file when it exists but cannot be used."""
  path = epath.Path(model_dir) / FILE
  if not path.exists():
    return None
  try:
    fields: Any = json.loads(path.read_text())
    return Calibration(**fields)
  except (OSError, ValueError, TypeError) as e:
    raise ValueError(f"{path}: not a calibration this tool wrote ({e})") from None
