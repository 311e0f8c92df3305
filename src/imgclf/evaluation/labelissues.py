"""Suspected label errors: the usable images whose given label the data itself doubts.

Confident learning (cleanlab's ``find_label_issues``) needs out-of-sample probabilities
for every image, train images included. Retraining the network once per fold would
cost k trainings; instead, the trained network's features (the input of its
``classifier`` layer) are computed once for every usable image, and a logistic
regression is cross-validated on them: each image's probabilities come from a model
that never saw its label. The features themselves were learned from the train labels, so a
train image the network memorised can escape; the regression refits a linear head, not
the network, which is what keeps the cost at one prediction pass (2 000 demo images:
about 2 s, bench/README.md). The ranking never changes a label or a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imgclf.data.datasets import Examples
from imgclf.tables import read_csv, write_csv

if TYPE_CHECKING:
    import numpy as np

    from imgclf.serving.classifier import Classifier

COLUMNS = ("path", "label", "suggested", "score")
HEAD = "classifier"  # the output layer's name in every network imgclf builds (training.network)
SEED = 0  # of the folds: the same data gives the same file


@dataclass(frozen=True)
class Suspect:
    path: str  # relative to paths.raw, as in the manifest and the split
    label: str  # the given label (its class folder)
    suggested: str  # the class the out-of-sample probabilities favour
    score: float  # cleanlab's label quality (self-confidence): the given label's probability; low is suspect


def usable_examples(split_csv: Path, raw: Path, classes: list[str]) -> tuple[list[str], Examples]:
    """Every image of the split file (train, val and test) as paths and examples."""
    rows = read_csv(split_csv)
    paths = [row["path"] for row in rows]
    return paths, Examples([raw / p for p in paths], [classes.index(row["label"]) for row in rows])


def features(classifier: Classifier, examples: Examples, batch_size: int) -> np.ndarray:
    """(n, d) float32: what the network feeds its last layer, for each image."""
    import keras

    from imgclf.data.datasets import predict_examples

    model = classifier.model
    embed = keras.Model(model.inputs, model.get_layer(HEAD).input)
    size, limit = classifier.image_size, classifier.max_pixels
    return predict_examples(embed, examples, size, batch_size, max_pixels=limit).reshape(len(examples.files), -1)


def out_of_sample(features: np.ndarray, labels: np.ndarray, classes: int, folds: int) -> np.ndarray:
    """(n, classes) probabilities, each from a logistic regression fitted without that image.

    Stratified folds (fewer where the smallest class has fewer images than ``folds``).
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    k = max(2, min(folds, int(np.bincount(labels, minlength=classes).min())))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=SEED)
    probs = cross_val_predict(model, features, labels, cv=cv, method="predict_proba")
    return np.asarray(probs, dtype=np.float64)


def suspects(paths: list[str], labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> list[Suspect]:
    """The images cleanlab's find_label_issues flags, most suspect first (then by path)."""
    import numpy as np
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    scores = get_label_quality_scores(labels, probs, method="self_confidence")
    flagged = np.flatnonzero(find_label_issues(labels, probs, filter_by="prune_by_noise_rate"))
    # Scores rounded as written, so the order is the file's and the same on every machine.
    ranked = sorted(flagged, key=lambda i: (round(float(scores[i]), 6), paths[i]))
    return [
        Suspect(paths[i], classes[labels[i]], classes[int(np.argmax(probs[i]))], round(float(scores[i]), 6))
        for i in ranked
    ]


def write(path: Path, found: list[Suspect]) -> None:
    write_csv(path, ({**vars(s), "score": f"{s.score:.6f}"} for s in found), COLUMNS)


def count(path: Path) -> int | None:
    """How many suspects a label_issues file lists; None when there is none."""
    return len(read_csv(path)) if path.exists() else None
