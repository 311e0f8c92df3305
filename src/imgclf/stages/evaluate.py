"""evaluate stage: score the trained model on the test split, report, and log to the run.

Writes metrics (DVC metrics), per-image predictions, the confusion matrix (for
``dvc plots``), PNG plots and a gallery of the worst errors; logs all of it to the
MLflow run that train opened. (The model card is register's: it holds the decision.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgclf import owned, tracking
from imgclf.atomic import write_json
from imgclf.data.datasets import Examples, split_examples
from imgclf.data.manifest import write_csv
from imgclf.errors import ParamsError, StageInputError
from imgclf.params import Params

if TYPE_CHECKING:
    from imgclf.serving.classifier import Classifier


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict[str, Any]
    run_id: str


def run(params: Params) -> EvaluateResult:
    import mlflow
    import numpy as np

    from imgclf.data.imaging import load_rgb
    from imgclf.evaluation import reporting, scoring

    classifier, test = load_candidate(params)
    classes = classifier.classes
    positive = params.evaluate.positive_class
    scored = classifier.score(test, positive, params.evaluate.threshold, params.train.batch_size)
    labels = np.asarray(test.labels)
    positive = positive or classes[1] if len(classes) == 2 else None

    raw = params.path("raw")
    rel = [str(f.relative_to(raw)) for f in test.files]
    write_json(params.path("metrics"), scored.metrics)
    pairs = [(classes[t], classes[p]) for t, p in zip(labels, scored.predicted, strict=True)]
    write_csv(
        params.path("predictions"),
        (
            {
                "path": path,
                "true": t,
                "predicted": p,
                **{f"p_{c}": f"{x:.6f}" for c, x in zip(classes, probs, strict=True)},
            }
            for path, (t, p), probs in zip(rel, pairs, scored.probabilities, strict=True)
        ),
        ["path", "true", "predicted", *(f"p_{c}" for c in classes)],
    )
    write_csv(
        params.path("confusion_matrix"), ({"actual": t, "predicted": p} for t, p in pairs), ["actual", "predicted"]
    )

    plots = params.path("plots")
    owned.check(plots, "paths.plots")
    owned.mark(plots, "evaluate")  # DVC clears the folder before each run; the marker tells `imgclf check` it is ours
    figures = {"confusion_matrix": reporting.confusion_plot(scored.confusion, classes)}
    if positive is not None and len(set(test.labels)) == 2:
        pos = classes.index(positive)
        figures |= reporting.curve_plots(labels == pos, scored.probabilities[:, pos], positive)
    worst = scoring.worst_errors(labels, scored, params.evaluate.gallery_size)
    figures["worst_errors"] = reporting.gallery(
        [load_rgb(test.files[i].read_bytes()) for i in worst],
        [f"{rel[i][-28:]}\n{classes[labels[i]]} → {classes[scored.predicted[i]]} "
         f"({scored.probabilities[i, scored.predicted[i]]:.2f})" for i in worst],
    )  # fmt: skip
    for name, figure in figures.items():
        reporting.save(figure, plots / f"{name}.png")

    with tracking.resume_run(params) as run_id:
        mlflow.log_metrics({f"test_{k}": v for k, v in scoring.flat_metrics(scored.metrics).items()})
        for key in ("metrics", "predictions", "confusion_matrix"):
            mlflow.log_artifact(str(params.path(key)), artifact_path="evaluation")
        mlflow.log_artifacts(str(plots), artifact_path="evaluation/plots")
    return EvaluateResult(metrics=scored.metrics, run_id=run_id)


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
