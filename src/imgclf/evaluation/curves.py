"""ROC and precision-recall points for `dvc plots` (pure: arrays in, CSV rows out).

Two classes: the positive class's curve. More: the micro average over one-vs-rest,
one curve whatever the number of classes, so `dvc plots diff` draws one line per
experiment instead of one per class and experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Curves:
    """Both curves of one (truth, scores) set, computed once: evaluate's CSV rows (DVC
    plots) and its PNGs draw the same points."""

    fpr: np.ndarray  # ROC, both rates rising as roc_thresholds fall (the first is inf)
    tpr: np.ndarray
    roc_thresholds: np.ndarray
    recall: np.ndarray  # precision-recall, recall rising from (0, 1)
    precision: np.ndarray
    pr_thresholds: np.ndarray  # falling; one fewer: the (0, 1) start has none

    @property
    def roc_auc(self) -> float:
        """The area under the ROC points (trapezoids): sklearn's roc_auc_score."""
        return float(np.sum(np.diff(self.fpr) * (self.tpr[1:] + self.tpr[:-1]) / 2))

    @property
    def average_precision(self) -> float:
        """Precision weighted by each step's recall gain: sklearn's average_precision_score."""
        return float(np.sum(np.diff(self.recall) * self.precision[1:]))


def curves(truth: np.ndarray, scores: np.ndarray) -> Curves | None:
    """The ROC and precision-recall curves; None when undefined (a one-class test split)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    if not _defined(truth):
        return None
    fpr, tpr, roc_thresholds = roc_curve(truth, scores)
    precision, recall, pr_thresholds = precision_recall_curve(truth, scores)
    # sklearn returns recall falling, thresholds rising: reversed, recall rises from (0, 1).
    return Curves(fpr, tpr, roc_thresholds, recall[::-1], precision[::-1], pr_thresholds[::-1])


def roc_points(truth: np.ndarray, scores: np.ndarray, computed: Curves | None = None) -> list[dict[str, Any]]:
    """ROC corners in order of falling threshold (fpr and tpr rising); empty when undefined.
    The first row, threshold ``inf``, is the (0, 0) corner: nothing predicted positive.

    Args:
        computed: ``curves(truth, scores)``, when the caller has it already.
    """
    c = computed or curves(truth, scores)
    if c is None:
        return []
    return [
        {"fpr": _number(f), "tpr": _number(t), "threshold": _number(h)}
        for f, t, h in zip(c.fpr, c.tpr, c.roc_thresholds, strict=True)
    ]


def pr_points(truth: np.ndarray, scores: np.ndarray, computed: Curves | None = None) -> list[dict[str, Any]]:
    """Precision-recall points in order of rising recall; empty when undefined. The first
    row, (recall 0, precision 1), has no threshold: sklearn's conventional start."""
    c = computed or curves(truth, scores)
    if c is None:
        return []
    first = {"recall": _number(c.recall[0]), "precision": _number(c.precision[0]), "threshold": ""}
    return [first] + [
        {"recall": _number(r), "precision": _number(p), "threshold": _number(h)}
        for r, p, h in zip(c.recall[1:], c.precision[1:], c.pr_thresholds, strict=True)
    ]
