"""Human-facing reports: plots (matplotlib Figures, no pyplot state) and the model card."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from imgclf.evaluation.curves import Curves


def history_plot(history: Sequence[dict[str, Any]]) -> Figure:
    """Loss and accuracy per epoch, train and validation."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.5), layout="constrained")
    epochs = [int(row["epoch"]) for row in history]
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [float(row[prefix + metric]) if row[prefix + metric] != "" else np.nan for row in history]
            axes.plot(epochs, values, style, marker="o", label=prefix + metric)
        axes.set(xlabel="epoch", title=metric)
        axes.legend()
    return figure


def confusion_table(classes: Sequence[str], counts: Any) -> list[str]:
    """A confusion matrix as markdown lines: ``counts[i][j]`` images of ``classes[i]``
    predicted ``classes[j]``. The model card's and the flow's confusion-matrix artifact."""
    return [
        "| actual \\ predicted | " + " | ".join(classes) + " |",
        "| --- | " + " | ".join("---" for _ in classes) + " |",
        *(f"| **{c}** | " + " | ".join(str(int(v)) for v in counts[i]) + " |" for i, c in enumerate(classes)),
    ]


def confusion_plot(confusion: np.ndarray, classes: list[str]) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1.2 * len(classes) + 2.5, 1.2 * len(classes) + 2), layout="constrained")
    axes = figure.subplots()
    axes.imshow(confusion, cmap="Blues")
    for (row, col), value in np.ndenumerate(confusion):
        dark = value > confusion.max() / 2
        axes.text(col, row, str(value), ha="center", va="center", color="white" if dark else "black")
    axes.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes)
    axes.set(xlabel="predicted", ylabel="actual", title="confusion matrix (test)")
    return figure


def curve_plots(curves: Curves, positive: str) -> dict[str, Figure]:
    """ROC and precision-recall curves for the positive class (the points of its CSVs)."""
    from matplotlib.figure import Figure

    roc = Figure(figsize=(4.5, 4.5), layout="constrained")
    axes = roc.subplots()
    axes.plot(curves.fpr, curves.tpr, label=f"AUC {curves.roc_auc:.3f}")
    axes.plot([0, 1], [0, 1], ":", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({positive})")
    axes.legend(loc="lower right")
    pr = Figure(figsize=(4.5, 4.5), layout="constrained")
    axes = pr.subplots()
    axes.plot(curves.recall, curves.precision, label=f"AP {curves.average_precision:.3f}")
    axes.set(xlabel="recall", ylabel="precision", title=f"precision-recall ({positive})", ylim=(0, 1.02))
    axes.legend(loc="lower left")
    return {"roc": roc, "precision_recall": pr}


def gallery(images: list[np.ndarray], captions: list[str], empty: str = "no misclassified test images") -> Figure:
    """A grid of images with captions (the worst misclassified test images, the top
    suspected label errors); ``empty``: what it says when there is no image."""
    from matplotlib.figure import Figure

    columns = min(4, max(len(images), 1))
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(2.6 * columns, 2.8 * rows), layout="constrained")
    grid = np.atleast_1d(figure.subplots(rows, columns)).reshape(-1)
    for axes in grid:
        axes.axis("off")
    for axes, image, caption in zip(grid, images, captions, strict=False):
        axes.imshow(image)
        axes.set_title(caption, fontsize=8)
    if not images:
        grid[0].text(0.5, 0.5, empty, ha="center", va="center")
    return figure


def save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
