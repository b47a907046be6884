"""Metrics on tiny arrays computed by hand, permutation invariance, detection, aggregation."""

import math

import numpy as np
import pytest

from eval import metrics

# Row-major: mask [1, 0, 1, 0], map [0.9, 0.8, 0.7, 0.1].
MASK = np.array([[True, False], [True, False]])
PROB = np.array([[0.9, 0.8], [0.7, 0.1]])


def square_mask(size=40, side=15):
  mask = np.zeros((size, size), bool)
  mask[:side, :side] = True
  return mask


def test_hand_computed_case():
  got = metrics.image_metrics(MASK, PROB)
  # Ranks T F T F: AP = (1/1 + 2/3) / 2. For 1 - m ranked by 1 - p: T F T F again.
  assert got["ap"] == pytest.approx(5 / 6)
  assert got["p-ap"] == pytest.approx(5 / 6)
  assert metrics.average_precision(MASK, PROB) == got["ap"]
  assert metrics.permutation_invariant_ap(MASK, PROB) == got["p-ap"]
  # prob > 0.5 predicts [1, 1, 1, 0]: tp 2, fp 1, fn 0, tn 1.
  assert got["mcc@0.5"] == pytest.approx(2 / math.sqrt(3 * 2 * 1 * 2))
  assert got["f1@0.5"] == pytest.approx(4 / 5)
  assert got["ciou@0.5"] == pytest.approx((2 / 3 + 1 / 2) / 2)
  # Best cuts: {0.9} gives f1 2/3, mcc 1/sqrt(3); {0.9, 0.8, 0.7} is the 0.5 cut.
  assert got["f1@best"] == pytest.approx(4 / 5)
  assert got["mcc@best"] == pytest.approx(1 / math.sqrt(3))


def test_inverted_map_is_scored_by_permutation_invariant_metrics_only():
  got = metrics.image_metrics(MASK, 1 - PROB)
  assert got["p-ap"] == pytest.approx(5 / 6)
  assert got["ap"] == pytest.approx(0.5)  # Ranks F T F T: (1/2 + 2/4) / 2.
  assert got["mcc@0.5"] == pytest.approx(-1 / math.sqrt(3))
  assert got["f1@0.5"] == 0.0  # 1 - p > 0.5 only at the second authentic pixel.
  assert got["pi_mcc@0.5"] == pytest.approx(1 / math.sqrt(3))
  assert got["pi_f1@0.5"] == pytest.approx(4 / 5)
  assert got["pi_ciou@0.5"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_perfect_and_inverted_perfect_maps():
  mask = square_mask()
  perfect = metrics.image_metrics(mask, mask.astype(float))
  assert all(value == pytest.approx(1.0) for value in perfect.values())
  inverted = metrics.image_metrics(mask, 1.0 - mask)
  assert inverted["p-ap"] == pytest.approx(1.0)
  assert inverted["ap"] < 0.2  # All spliced pixels ranked below all authentic ones.
  assert inverted["mcc@0.5"] == pytest.approx(-1.0) and inverted["f1@0.5"] == 0.0
  for name in ("mcc", "f1", "ciou"):
    assert inverted[f"pi_{name}@0.5"] == pytest.approx(1.0)
    assert inverted[f"pi_{name}@best"] == pytest.approx(1.0)


def test_random_map():
  rng = np.random.RandomState(0)
  mask = rng.rand(300, 300) < 0.2
  got = metrics.image_metrics(mask, rng.rand(300, 300))
  assert got["ap"] == pytest.approx(mask.mean(), abs=0.01)
  assert got["p-ap"] == pytest.approx(0.5, abs=0.01)  # (0.2 + 0.8) / 2, either way round.
  assert abs(got["mcc@0.5"]) < 0.02


def test_best_threshold_beats_a_badly_scaled_map():
  mask = square_mask()
  prob = 0.4 * mask  # Right ranking, but nothing exceeds 0.5.
  got = metrics.image_metrics(mask, prob)
  assert got["f1@0.5"] == 0.0 and got["mcc@0.5"] == 0.0
  assert got["f1@best"] == 1.0 and got["mcc@best"] == 1.0 and got["ciou@best"] == 1.0
  assert got["ap"] == 1.0


def test_threshold_curve_lists_every_cut():
  rng = np.random.RandomState(1)
  mask = rng.rand(200) < 0.3
  prob = rng.randint(0, 10, 200) / 10  # Many ties.
  curve = np.stack(metrics.threshold_curve(mask, prob), 1)
  cuts = np.append(np.inf, np.unique(prob)[::-1])
  expected = np.array([metrics.confusion(mask, prob >= t) for t in cuts])
  np.testing.assert_array_equal(curve, expected)


def test_permutation_invariant_threshold_metrics_use_the_inverse_map():
  rng = np.random.RandomState(2)
  mask = square_mask()
  prob = np.clip(1 - mask + rng.normal(0, 0.3, mask.shape), 0, 1)
  got = metrics.image_metrics(mask, prob)
  inverse = metrics.image_metrics(mask, 1 - prob)
  for name in ("mcc", "f1", "ciou"):
    for cut in ("0.5", "best"):
      assert got[f"pi_{name}@{cut}"] == pytest.approx(
          max(got[f"{name}@{cut}"], inverse[f"{name}@{cut}"]))


def test_detection_by_hand():
  got = metrics.detection_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
  assert got["detection_auc"] == pytest.approx(0.75)  # 3 of the 4 pairs ordered right.
  assert got["detection_mAP"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # Ranks T F T F.
  with pytest.raises(ValueError, match="both"):
    metrics.detection_metrics([0.1, 0.2], [1, 1])


@pytest.mark.parametrize("mask", [np.zeros((4, 4), bool), np.ones((4, 4), bool)])
def test_single_class_masks(mask):
  with pytest.raises(ValueError, match="single class"):
    metrics.image_metrics(mask, np.full((4, 4), 0.3))
  dataset = metrics.DatasetMetrics()
  assert dataset.add(np.full((4, 4), 0.3), mask=mask) == {}
  assert dataset.result() == {"num_localization_images": 0, "num_detection_images": 1}


def test_input_checks():
  with pytest.raises(ValueError, match="shape"):
    metrics.image_metrics(MASK, np.zeros((2, 3)))
  with pytest.raises(TypeError, match="bool"):
    metrics.image_metrics(MASK.astype(np.uint8), PROB)
  with pytest.raises(ValueError, match="non-finite"):
    metrics.image_metrics(MASK, np.full((2, 2), np.nan))


def test_dataset_aggregation():
  dataset = metrics.DatasetMetrics()
  first = dataset.add(PROB, mask=MASK)
  second = dataset.add(1 - PROB, mask=MASK)
  dataset.add(np.full((2, 2), 0.2), mask=np.zeros((2, 2), bool))  # Authentic image.
  dataset.add(np.full((2, 2), 0.9), label=False)  # Authentic without a mask.
  result = dataset.result()
  assert result["num_localization_images"] == 2 and result["num_detection_images"] == 4
  assert result["p-mAP"] == pytest.approx(5 / 6)
  assert result["pixel_mAP"] == pytest.approx((5 / 6 + 0.5) / 2)
  assert result["mcc@0.5"] == pytest.approx((first["mcc@0.5"] + second["mcc@0.5"]) / 2)
  # Scores are map means: 0.625 and 0.375 (spliced), 0.2 and 0.9 (authentic).
  expected = metrics.detection_metrics([0.625, 0.375, 0.2, 0.9], [1, 1, 0, 0])
  assert result["detection_mAP"] == expected["detection_mAP"]
  assert result["detection_auc"] == pytest.approx(0.5)
  assert all(np.isfinite(value) for value in result.values())


def test_given_scores_override_map_means():
  dataset = metrics.DatasetMetrics()
  dataset.add(np.zeros((2, 2)), label=True, score=0.9)
  dataset.add(np.ones((2, 2)), label=False, score=0.1)
  result = dataset.result()
  assert result["detection_auc"] == 1.0 and result["detection_mAP"] == 1.0
  assert "p-mAP" not in result
