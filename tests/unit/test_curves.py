"""evaluate's ROC and precision-recall points, the rows `dvc plots` draws."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.evaluation.curves import curve_inputs, pr_points, roc_points
from imgclf.evaluation.scoring import probabilities, score

LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 1])
P_DOG = np.array([0.1, 0.6, 0.2, 0.9, 0.8, 0.4, 0.7, 0.95])  # one false positive, one false negative


def floats(rows: list[dict[str, str]], *columns: str) -> list[tuple[float, ...]]:
    return [tuple(float(row[c]) for c in columns) for row in rows]


def test_roc_points_rise_from_the_origin_to_the_top_right_corner() -> None:
    truth, scores = curve_inputs(LABELS, probabilities(P_DOG[:, None], 2), 1)
    rows = roc_points(truth, scores)
    points = floats(rows, "fpr", "tpr")
    assert points[0] == (0, 0) and rows[0]["threshold"] == "inf" and points[-1] == (1, 1)
    assert points == sorted(points)  # both rates rise as the threshold falls
    # The trapezoids under the points are the ROC AUC evaluate reports.
    fpr, tpr = np.array(points).T
    auc = score(LABELS, probabilities(P_DOG[:, None], 2), ["cat", "dog"], None, 0.5).metrics["roc_auc"]
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(auc)


def test_pr_points_in_rising_recall_with_one_threshold_per_image_score() -> None:
    truth, scores = curve_inputs(LABELS, probabilities(P_DOG[:, None], 2), 1)
    rows = pr_points(truth, scores)
    assert (rows[0]["recall"], rows[0]["precision"], rows[0]["threshold"]) == ("0.000000", "1.000000", "")
    recall = [r for r, _ in floats(rows, "recall", "precision")]
    assert recall == sorted(recall)
    # Threshold 0.6 predicts 4 of the 5 dogs and one cat: recall 0.8, precision 0.8.
    assert {"recall": "0.800000", "precision": "0.800000", "threshold": "0.600000"} in rows
    assert (1.0, pytest.approx(5 / 6)) in floats(rows, "recall", "precision")  # 0.4: every dog, one cat
    assert floats(rows[-1:], "recall", "precision") == [(1.0, 5 / 8)]  # the lowest score: everything positive


def test_the_positive_class_is_the_one_scored() -> None:
    probs = probabilities(P_DOG[:, None], 2)
    truth, scores = curve_inputs(LABELS, probs, 0)
    assert truth.tolist() == (LABELS == 0).tolist() and scores.tolist() == pytest.approx(1 - P_DOG)


def test_more_classes_give_one_micro_averaged_curve() -> None:
    labels = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 2, 1]] * 0.7 + 0.1
    truth, scores = curve_inputs(labels, probs, None)
    # Each image once per class, true for its own class only.
    assert truth.reshape(4, 3).tolist() == np.eye(3, dtype=bool)[labels].tolist()
    assert scores.tolist() == pytest.approx(probs.reshape(-1).tolist())
    assert floats(roc_points(truth, scores), "fpr", "tpr")[-1] == (1, 1)


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0, 0]])
def test_a_one_class_test_split_writes_no_points(labels: list[int]) -> None:
    # ROC needs both classes, and PR a positive: no curve rather than NaNs in the plot.
    truth, scores = curve_inputs(np.array(labels), probabilities(np.array([[0.2], [0.5], [0.9]]), 2), 1)
    assert roc_points(truth, scores) == [] and pr_points(truth, scores) == []


def test_metrics_lead_with_the_headline_for_dvc_exp_show() -> None:
    # dvc exp show orders its columns as the keys of metrics.json.
    headline = ["accuracy", "precision", "recall", "f1"]
    binary = score(LABELS, probabilities(P_DOG[:, None], 2), ["cat", "dog"], None, 0.5).metrics
    assert list(binary) == [*headline, "roc_auc", "test_images"]
    many = score(np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 1]], ["a", "b", "c"], None, 0.5).metrics
    assert list(many)[:5] == [*headline, "test_images"]


def test_the_areas_of_the_points_are_sklearns() -> None:
    # The PNGs' legends read them off the same points as the CSVs.
    from sklearn.metrics import average_precision_score, roc_auc_score

    from imgclf.evaluation.curves import curves

    truth, scores = curve_inputs(LABELS, probabilities(P_DOG[:, None], 2), 1)
    computed = curves(truth, scores)
    assert computed is not None
    assert computed.roc_auc == pytest.approx(roc_auc_score(truth, scores))
    assert computed.average_precision == pytest.approx(average_precision_score(truth, scores))
