from __future__ import annotations

import numpy as np
import pytest

from imgclf.evaluation.scoring import probabilities, score, worst_errors


def test_sigmoid_outputs_become_two_columns() -> None:
    assert probabilities(np.array([[0.25], [0.9]]), 2).tolist() == [[0.75, 0.25], [pytest.approx(0.1), 0.9]]


def test_binary_metrics_for_the_positive_class() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    p_dog = np.array([0.1, 0.6, 0.2, 0.9, 0.8, 0.4, 0.7, 0.95])  # one false positive, one false negative
    scored = score(labels, probabilities(p_dog[:, None], 2), ["cat", "dog"], None, 0.5)
    m = scored.metrics
    assert m["accuracy"] == 6 / 8 and m["test_images"] == 8
    assert m["precision"] == pytest.approx(4 / 5) and m["recall"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(0.8) and 0.5 < m["roc_auc"] <= 1
    assert scored.confusion.tolist() == [[2, 1], [1, 4]]
    # The same predictions judged for "cat": its own precision and recall.
    cat = score(labels, probabilities(p_dog[:, None], 2), ["cat", "dog"], "cat", 0.5).metrics
    assert cat["precision"] == pytest.approx(2 / 3) and cat["recall"] == pytest.approx(2 / 3)


def test_threshold_moves_predictions() -> None:
    probs = probabilities(np.array([[0.3], [0.6]]), 2)
    assert score(np.array([1, 1]), probs, ["a", "b"], None, 0.25).metrics["recall"] == 1.0
    assert score(np.array([1, 1]), probs, ["a", "b"], None, 0.5).metrics["recall"] == 0.5


def test_multiclass_has_per_class_macro_and_weighted() -> None:
    labels = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 2, 1]] * 0.8 + 0.2 / 3
    m = score(labels, probs, ["a", "b", "c"], None, 0.5).metrics
    assert m["per_class"]["c"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["f1"] == m["macro"]["f1"] and m["weighted"]["f1"] != m["macro"]["f1"]


def test_worst_errors_are_the_most_confident_mistakes_first() -> None:
    labels = np.array([0, 0, 1, 1])
    scored = score(labels, probabilities(np.array([[0.9], [0.6], [0.8], [0.05]]), 2), ["a", "b"], None, 0.5)
    assert worst_errors(labels, scored, 5) == [3, 0, 1]
    assert worst_errors(labels, scored, 1) == [3]
