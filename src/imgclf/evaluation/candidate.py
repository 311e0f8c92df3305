"""The candidate: the model train saved (paths.model) and the test split it is scored on,
checked against each other. What evaluate reports on and register gates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgclf.data.datasets import Examples, split_examples
from imgclf.errors import ParamsError, StageInputError
from imgclf.params import Params

if TYPE_CHECKING:
    from imgclf.serving.classifier import Classifier


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
    test = split_examples(params.path("split"), params.path("raw"), "test", classifier.classes)
    if not test.files:
        raise StageInputError("the test split is empty: add images or raise split.test")
    return classifier, test
