"""Splice localization and detection metrics (paper 4.3, 4.4), each under an exact name.

Per image, `mask` is bool [H, W] (True = spliced) and `prob` a finite float map of the same
shape (high = spliced; the consistency map is already at mask resolution, so shapes must match).

Localization, per image:
  p-ap          the paper's permutation-invariant score: max(s(m, p), s(1 - m, p)) with the
                symmetrized AP s(m, p) = (AP(m, p) + AP(1 - m, 1 - p)) / 2. Since
                s(1 - m, p) = s(m, 1 - p), it is the better of the map and its inverse, each
                scored for both regions, because which region is spliced can be ill-defined.
  ap            plain AP(m, p), pixels ranked by prob: neither symmetric nor invariant.
  mcc@0.5       Matthews correlation of prob > 0.5 (the paper thresholds at p = 0.5).
  f1@0.5        F1 of the spliced class for prob > 0.5.
  ciou@0.5      class-balanced IoU, (IoU(spliced) + IoU(authentic)) / 2, for prob > 0.5. The
                paper does not define cIoU; this is the two-class mean IoU.
  *@best        the same with the threshold that maximises it for this image (the per-image
                oracle threshold of Salloum et al., paper Table 3).
  pi_*          the better of the map and its inverse 1 - prob, e.g. pi_f1@0.5.
AP and ROC AUC come from scikit-learn. Where MCC's denominator is 0 (a constant prediction)
it is 0, as in scikit-learn.

Degenerate masks: a mask of a single class (an authentic image, or all spliced) has no second
region, so localization is undefined; per-image functions raise ValueError, and
DatasetMetrics leaves such images out of the localization means (they still count for
detection). No metric is ever NaN.

Detection, over images (labels: 1 = spliced; score: mean of the map, as in the paper):
  detection_mAP  average precision of the scores (the paper's Table 1 "mAP").
  detection_auc  ROC AUC of the scores.

Dataset means (DatasetMetrics.result) keep the per-image names, except that the mean of p-ap
is the paper's "p-mAP" and the mean of ap is "pixel_mAP".
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

THRESHOLD = 0.5
_DATASET_NAMES = {"p-ap": "p-mAP", "ap": "pixel_mAP"}

# Confusion counts (tp, fp, fn, tn), float64 arrays of any matching shape.
Counts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def mcc(tp, fp, fn, tn) -> np.ndarray:
  """Matthews correlation coefficient from confusion counts; 0 where undefined."""
  denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  return np.where(denominator > 0, (tp * tn - fp * fn) / np.maximum(denominator, 1), 0.0)


def f1(tp, fp, fn, tn) -> np.ndarray:
  """F1 of the positive (spliced) class; 0 where undefined."""
  del tn  # F1 ignores true negatives; the argument keeps one signature for all metrics.
  denominator = 2 * tp + fp + fn
  return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def ciou(tp, fp, fn, tn) -> np.ndarray:
  """Class-balanced IoU: mean of the spliced and the authentic class IoU."""
  return (tp / np.maximum(tp + fp + fn, 1) + tn / np.maximum(tn + fn + fp, 1)) / 2


THRESHOLD_METRICS: dict[str, Callable[..., np.ndarray]] = {"mcc": mcc, "f1": f1, "ciou": ciou}


def average_precision(mask: np.ndarray, prob: np.ndarray) -> float:
  """Plain AP(mask, prob) over pixels."""
  return float(average_precision_score(*_check_localization(mask, prob)))


def permutation_invariant_ap(mask: np.ndarray, prob: np.ndarray) -> float:
  """The paper's p-mAP term for one image: max(s(m, p), s(1 - m, p)) (module docstring)."""
  return _aps(*_check_localization(mask, prob))[0]


def _aps(mask: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
  """(p-ap, ap) from the four APs p-ap needs, one of which is the plain AP(m, p)."""
  # Ranking by -p is ranking by 1 - p, and AP depends on the ranking only.
  ap, inverse_ap = average_precision_score(mask, prob), average_precision_score(mask, -prob)
  complement_ap = average_precision_score(~mask, prob)
  complement_inverse_ap = average_precision_score(~mask, -prob)
  symmetrized = (ap + complement_inverse_ap) / 2  # s(m, p)
  swapped = (complement_ap + inverse_ap) / 2  # s(1 - m, p)
  return float(max(symmetrized, swapped)), float(ap)


def confusion(mask: np.ndarray, prediction: np.ndarray) -> Counts:
  """(tp, fp, fn, tn) of a binary prediction."""
  tp = np.float64(np.sum(mask & prediction))
  fp = np.float64(np.sum(~mask & prediction))
  positives = np.float64(mask.sum())
  return tp, fp, positives - tp, mask.size - positives - fp


def threshold_curve(mask: np.ndarray, prob: np.ndarray) -> Counts:
  """Counts of `prob >= t` for every distinct t of a flat map, the empty prediction first.

  These are all the binary predictions a threshold can make; their complements are all those
  of the inverse map 1 - prob.
  """
  order = np.argsort(-prob, kind="stable")
  ranked_prob, ranked_mask = prob[order], mask[order]
  ends = np.append(np.flatnonzero(np.diff(ranked_prob)), len(ranked_prob) - 1)
  tp = np.append(0, np.cumsum(ranked_mask)[ends]).astype(np.float64)
  fp = np.append(0, ends + 1 - tp[1:])
  positives = np.float64(mask.sum())
  return tp, fp, positives - tp, mask.size - positives - fp


def image_metrics(mask: np.ndarray, prob: np.ndarray,
                  threshold: float = THRESHOLD) -> dict[str, float]:
  """All localization metrics of one image, keyed by the names in the module docstring."""
  mask, prob = _check_localization(mask, prob)
  at_threshold = confusion(mask, prob > threshold)
  inverse_at_threshold = confusion(mask, 1 - prob > threshold)
  curve = threshold_curve(mask, prob)
  tp, fp, fn, tn = curve
  inverse_curve = (fn, tn, tp, fp)  # Complement predictions: the cuts of 1 - prob.
  p_ap, ap = _aps(mask, prob)
  result = {"p-ap": p_ap, "ap": ap}
  for name, metric in THRESHOLD_METRICS.items():
    plain, inverse = float(metric(*at_threshold)), float(metric(*inverse_at_threshold))
    best, inverse_best = float(metric(*curve).max()), float(metric(*inverse_curve).max())
    result[f"{name}@{threshold:g}"] = plain
    result[f"{name}@best"] = best
    result[f"pi_{name}@{threshold:g}"] = max(plain, inverse)
    result[f"pi_{name}@best"] = max(best, inverse_best)
  return result


def detection_metrics(scores, labels) -> dict[str, float]:
  """detection_mAP and detection_auc over images; labels 1 = spliced, both classes needed."""
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
  if scores.shape != labels.shape or scores.ndim != 1:
    raise ValueError(f"need one score per label, got {scores.shape} and {labels.shape}")
  if labels.all() or not labels.any():
    raise ValueError("detection needs both spliced and authentic images")
  return {"detection_mAP": float(average_precision_score(labels, scores)),
          "detection_auc": float(roc_auc_score(labels, scores))}


class DatasetMetrics:
  """Accumulates images one at a time (maps are not kept) and reports dataset metrics."""

  def __init__(self, threshold: float = THRESHOLD):
    self.threshold = threshold
    self._localization: list[dict[str, float]] = []
    self._scores: list[float] = []
    self._labels: list[bool] = []

  def add(self, prob: np.ndarray, *, mask: np.ndarray | None = None, label: bool | None = None,
          score: float | None = None) -> dict[str, float]:
    """Adds one image and returns its localization metrics ({} without a two-class mask).

    score defaults to the mean of prob (the paper's detection score); label defaults to
    whether the mask has spliced pixels. Images with neither are left out of detection.
    """
    prob = np.asarray(prob)
    metrics = {}
    if mask is not None:
      _check_pair(mask, prob)
      if label is None:
        label = bool(mask.any())
      if mask.any() and not mask.all():
        metrics = image_metrics(mask, prob, self.threshold)
        self._localization.append(metrics)
    if label is not None:
      self._scores.append(float(prob.mean()) if score is None else float(score))
      self._labels.append(bool(label))
    return metrics

  def result(self) -> dict[str, float]:
    """Means of the per-image metrics and the detection metrics, with the image counts.

    Metrics with no eligible image (no two-class mask; one detection class) are absent.
    """
    result = {"num_localization_images": len(self._localization),
              "num_detection_images": len(self._labels)}
    if self._localization:
      for name in self._localization[0]:
        values = [metrics[name] for metrics in self._localization]
        result[_DATASET_NAMES.get(name, name)] = float(np.mean(values))
    if any(self._labels) and not all(self._labels):
      result.update(detection_metrics(self._scores, self._labels))
    return result


def _check_pair(mask: np.ndarray, prob: np.ndarray) -> None:
  if not isinstance(mask, np.ndarray) or mask.dtype != bool:
    raise TypeError(f"mask must be a bool numpy array, got {getattr(mask, 'dtype', type(mask))}")
  if mask.shape != prob.shape:
    raise ValueError(f"map shape {prob.shape} != mask shape {mask.shape}; resize the map to "
                     "the mask's resolution first")
  if not np.isfinite(prob).all():
    raise ValueError("map has non-finite values")


def _check_localization(mask: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Flat (mask, prob) after the shape, dtype and two-class checks."""
  prob = np.asarray(prob, np.float64)
  _check_pair(mask, prob)
  if mask.all() or not mask.any():
    raise ValueError("mask has a single class: localization is undefined (module docstring)")
  return mask.ravel(), prob.ravel()


# The metrics a terminal summary shows, in the paper's order (every one is in metrics.json).
SUMMARY = ("p-mAP", "pixel_mAP", "mcc@best", "f1@best", "mcc@0.5", "f1@0.5", "detection_mAP",
           "detection_auc")


def summary_table(result: dict[str, float]) -> str:
  """A DatasetMetrics.result as a few aligned lines for a terminal: the main metrics, then the
  image counts they come from."""
  shown = [name for name in SUMMARY if name in result]
  lines = [f"{name:<14} {result[name]:.3f}" for name in shown]
  lines.append(f"{'images':<14} {result['num_localization_images']} with a two-class mask, "
               f"{result['num_detection_images']} with a known label")
  return "\n".join(lines)
