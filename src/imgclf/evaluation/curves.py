"""ROC and precision-recall points for `dvc plots` (pure: arrays in, CSV rows out).

Two classes: the positive class's curve. More: the micro average over one-vs-rest,
one curve whatever the number of classes, so `dvc plots diff` draws one line per
experiment instead of one per class and experiment.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ROC_COLUMNS = ["fpr", "tpr", "threshold"]
PR_COLUMNS = ["recall", "precision", "threshold"]


def curve_inputs(labels: np.ndarray, probs: np.ndarray, positive: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The (truth, score) pairs the curves are drawn from.

    Args:
        labels: (n,) true class indices.
        probs: (n, num_classes) probabilities, rows summing to 1.
        positive: two classes: the positive class's index; None for the micro average.

    Returns:
        (m,) booleans and (m,) scores: m = n for two classes, n * num_classes otherwise
        (each image once per class, true for its own class).
    """
    labels, probs = np.asarray(labels), np.asarray(probs, dtype="float64")
    if positive is not None:
        return labels == positive, probs[:, positive]
    onehot = np.arange(probs.shape[1])[None, :] == labels[:, None]
    return onehot.reshape(-1), probs.reshape(-1)


def _defined(truth: np.ndarray) -> bool:
    # Both curves need positives; ROC needs negatives too (a one-class test split has neither curve).
    return bool(truth.any() and not truth.all())


def _number(x: float) -> str:
    # Six decimals: exact enough to read a threshold off, short enough for git diffs.
    return f"{x:.6f}" if np.isfinite(x) else str(x)


def roc_points(truth: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    """ROC corners in order of falling threshold (fpr and tpr rising); empty when undefined.
    The first row, threshold ``inf``, is the (0, 0) corner: nothing predicted positive."""
    from sklearn.metrics import roc_curve

    if not _defined(truth):
        return []
    fpr, tpr, thresholds = roc_curve(truth, scores)
    return [
        {"fpr": _number(f), "tpr": _number(t), "threshold": _number(h)}
        for f, t, h in zip(fpr, tpr, thresholds, strict=True)
    ]


def pr_points(truth: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    """Precision-recall points in order of rising recall; empty when undefined. The first
    row, (recall 0, precision 1), has no threshold: sklearn's conventional start."""
    from sklearn.metrics import precision_recall_curve

    if not _defined(truth):
        return []
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    # sklearn returns recall falling, thresholds rising, and one threshold fewer.
    rows = [
        {"recall": _number(r), "precision": _number(p), "threshold": _number(h)}
        for r, p, h in zip(recall[:-1], precision[:-1], thresholds, strict=True)
    ]
    rows.append({"recall": _number(recall[-1]), "precision": _number(precision[-1]), "threshold": ""})
    return rows[::-1]
