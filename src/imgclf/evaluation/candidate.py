"""The candidate: the model train saved (paths.model) and the test split it is scored on,
checked against each other. What evaluate reports on and register gates.

Register gates on evaluate's scores rather than scoring the model again (which cost it
a TensorFlow import and a model load: 7 s of every `make run`). evaluate tags the
model's MLflow run with what it scored, so register can tell that the reports it reads
are this model's, on this test split.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imgclf.data.datasets import Examples, split_examples
from imgclf.errors import ParamsError, StageInputError
from imgclf.params import Params
from imgclf.provenance import content_hash, file_md5
from imgclf.tables import read_csv

if TYPE_CHECKING:
    import numpy as np

    from imgclf.serving.classifier import Classifier

EVALUATED_MODEL = "evaluated_content_hash"  # tags on the model's run: what evaluate scored
EVALUATED_SPLIT = "evaluated_split_md5"


def load_candidate(params: Params) -> tuple[Classifier, Examples]:
    """The trained model (paths.model) and the test split, checked against each other."""
    from imgclf.serving.classifier import Classifier

    model_path, classes_path = params.path("model"), params.path("classes")
    if not model_path.exists() or not classes_path.exists():
        raise StageInputError(f"{params.paths.model}: no trained model; run `imgclf train` first")
    classifier = Classifier.load(model_path, classes_path, params.validation.max_pixels)
    positive = params.evaluate.positive_class
    if positive is not None and positive not in classifier.classes:
        raise ParamsError(
            f"params.yaml: evaluate.positive_class: {positive!r} is not one of the classes {classifier.classes}"
        )
    return classifier, test_split(params, classifier.classes)


def evaluated_tags(params: Params) -> dict[str, str]:
    """What evaluate scored: the model's content hash and the split file's md5."""
    return {EVALUATED_MODEL: content_hash(params.path("model")), EVALUATED_SPLIT: file_md5(params.path("split"))}


def trained_classes(params: Params) -> list[str]:
    """The classes the trained model predicts, in its output order (paths.classes)."""
    classes_path = params.path("classes")
    if not classes_path.exists():
        raise StageInputError(f"{params.paths.model}: no trained model; run `imgclf train` first")
    classes: list[str] = json.loads(classes_path.read_text(encoding="utf-8"))["classes"]
    return classes


def test_split(params: Params, classes: list[str]) -> Examples:
    """The test split's files and labels (as indices into ``classes``); never empty."""
    test = split_examples(params.path("split"), params.path("raw"), "test", classes)
    if not test.files:
        raise StageInputError("the test split is empty: add images or raise split.test")
    return test


def evaluated(
    params: Params, classes: list[str], run_tags: Mapping[str, str], model_hash: str
) -> tuple[dict[str, Any], np.ndarray]:
    """evaluate's metrics and confusion matrix (rows actual, columns predicted) for this
    model on this test split, read from its reports.

    Raises:
        StageInputError: no reports, or reports that evaluate wrote for another model or
            another split (a train or split since, or an evaluate that failed midway).
    """
    import numpy as np

    metrics_path, pairs_path = params.path("metrics"), params.path("confusion_matrix")
    current = run_tags.get(EVALUATED_MODEL) == model_hash and run_tags.get(EVALUATED_SPLIT) == file_md5(
        params.path("split")
    )
    if not (metrics_path.exists() and pairs_path.exists() and current):
        raise StageInputError(
            f"{params.paths.metrics}: no scores of this model on this test split; run `imgclf evaluate` first"
        )
    metrics: dict[str, Any] = json.loads(metrics_path.read_text(encoding="utf-8"))
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for row in read_csv(pairs_path):
        confusion[classes.index(row["actual"]), classes.index(row["predicted"])] += 1
    return metrics, confusion
