"""Test-set metrics from labels and predicted probabilities (pure: arrays in, dicts out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.nested import leaves


@dataclass(frozen=True)
class Scored:
    metrics: dict[str, Any]  # what reports/metrics.json holds
    predicted: np.ndarray  # (n,) class index
    probabilities: np.ndarray  # (n, num_classes), rows sum to 1
    confusion: np.ndarray  # (num_classes, num_classes): rows actual, columns predicted


def probabilities(outputs: np.ndarray, num_classes: int) -> np.ndarray:
    """Model outputs as one probability per class: a sigmoid's (n, 1) becomes (n, 2)."""
    outputs = np.asarray(outputs, dtype="float64")
    if num_classes == 2:
        p = outputs.reshape(-1)
        return np.stack([1 - p, p], axis=1)
    return outputs


def score(labels: np.ndarray, probs: np.ndarray, classes: list[str], positive: str | None, threshold: float) -> Scored:
    """Accuracy, precision, recall and F1 (plus ROC AUC for two classes; per class, macro and
    weighted for more). ``precision``, ``recall`` and ``f1`` are always present: the positive
    class's for two classes, macro averages otherwise."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    labels = np.asarray(labels)
    k = len(classes)
    if k == 2:
        pos = classes.index(positive) if positive is not None else 1
        predicted = np.where(probs[:, pos] >= threshold, pos, 1 - pos)
    else:
        predicted = probs.argmax(axis=1)
    confusion = confusion_matrix(labels, predicted, labels=list(range(k)))
    # Key order is `dvc exp show`'s column order: the headline first, counts and breakdowns after.
    metrics: dict[str, Any] = {"accuracy": float((predicted == labels).mean())}
    p, r, f, support = precision_recall_fscore_support(labels, predicted, labels=list(range(k)), zero_division=0)
    if k == 2:
        metrics.update(precision=float(p[pos]), recall=float(r[pos]), f1=float(f[pos]))
        both = len(set(labels.tolist())) == 2  # AUC is undefined with one class present
        metrics["roc_auc"] = float(roc_auc_score(labels == pos, probs[:, pos])) if both else None
        metrics["test_images"] = len(labels)
        return Scored(metrics, predicted, probs, confusion)
    averages = {}
    for average in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(
            labels, predicted, labels=list(range(k)), average=average, zero_division=0
        )
        averages[average] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    metrics.update(averages["macro"])
    metrics["test_images"] = len(labels)
    metrics.update(averages)
    metrics["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, name in enumerate(classes)
    }
    return Scored(metrics, predicted, probs, confusion)


def worst_errors(labels: np.ndarray, scored: Scored, count: int) -> list[int]:
    """Indices of misclassified images, most confidently wrong first."""
    wrong = np.flatnonzero(scored.predicted != labels)
    confidence = scored.probabilities[wrong, scored.predicted[wrong]]
    return [int(i) for i in wrong[np.argsort(-confidence, kind="stable")][:count]]


def flat_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Nested metrics flattened to numbers: {"macro": {"f1": .9}} -> {"macro_f1": .9}."""
    return {
        key: float(value)
        for key, value in leaves(metrics, "_")
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
