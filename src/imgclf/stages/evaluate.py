"""evaluate stage: score the trained model on the test split, report, and log to the run.

Writes metrics (DVC metrics), per-image predictions, the confusion matrix and the ROC
and precision-recall points (for ``dvc plots``), PNG plots and a gallery of the worst errors; logs all of it to the
MLflow run that train opened. (The model card is register's: it holds the decision.)

Then, with the model loaded anyway, the suspected label errors among all usable images
(evaluation.labelissues): ``paths.label_issues`` and a gallery of the top suspects. Here
rather than in a stage of their own, which would pay a second TensorFlow import and model
load (about 10 s of the demo's `dvc repro`) for 2 s of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgclf import owned, tracking
from imgclf.atomic import write_json
from imgclf.evaluation import labelissues
from imgclf.evaluation.candidate import evaluated_tags, load_candidate
from imgclf.params import Params
from imgclf.tables import write_csv

if TYPE_CHECKING:
    from imgclf.serving.classifier import Classifier


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict[str, Any]
    run_id: str
    label_suspects: int  # images evaluation.labelissues flags (0 with evaluate.label_issues off)


def run(params: Params) -> EvaluateResult:
    import mlflow
    import numpy as np

    from imgclf.data.imaging import load_rgb
    from imgclf.evaluation import curves, reporting, scoring

    classifier, test = load_candidate(params)  # params errors (exit 2) before store errors
    saved = tracking.saved_run(params)  # the run the results go to, found before any scoring
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
                **{column: f"{x:.6f}" for column, x in zip(classifier.columns, probs, strict=True)},
            }
            for path, (t, p), probs in zip(rel, pairs, scored.probabilities, strict=True)
        ),
        ["path", "true", "predicted", *classifier.columns],
    )
    write_csv(
        params.path("confusion_matrix"), ({"actual": t, "predicted": p} for t, p in pairs), ["actual", "predicted"]
    )
    pos_index = classes.index(positive) if positive is not None else None  # None: micro average
    truth, scores = curves.curve_inputs(labels, scored.probabilities, pos_index)
    computed = curves.curves(truth, scores)
    write_csv(params.path("roc_curve"), curves.roc_points(truth, scores, computed), curves.ROC_COLUMNS)
    write_csv(params.path("pr_curve"), curves.pr_points(truth, scores, computed), curves.PR_COLUMNS)

    plots = params.path("plots")
    owned.check(plots, "paths.plots")
    owned.mark(plots, "evaluate")  # DVC clears the folder before each run; the marker tells `imgclf check` it is ours
    figures = {"confusion_matrix": reporting.confusion_plot(scored.confusion, classes)}
    if positive is not None and computed is not None:  # two classes, both in the test split
        figures |= reporting.curve_plots(computed, positive)
    worst = scoring.worst_errors(labels, scored, params.evaluate.gallery_size)
    figures["worst_errors"] = reporting.gallery(
        [load_rgb(test.files[i].read_bytes()) for i in worst],
        [f"{rel[i][-28:]}\n{classes[labels[i]]} → {classes[scored.predicted[i]]} "
         f"({scored.probabilities[i, scored.predicted[i]]:.2f})" for i in worst],
    )  # fmt: skip
    suspected = _label_issues(params, classifier) if params.evaluate.label_issues else []
    labelissues.write(params.path("label_issues"), suspected)
    if params.evaluate.label_issues:
        shown = suspected[: params.evaluate.gallery_size]
        figures["label_issues"] = reporting.gallery(
            [load_rgb((raw / s.path).read_bytes()) for s in shown],
            [f"{s.path[-28:]}\n{s.label}, looks {s.suggested} ({s.score:.2f})" for s in shown],
            empty="no suspected label errors",
        )
    for name, figure in figures.items():
        reporting.save(figure, plots / f"{name}.png")

    with tracking.resume_run(params, saved["run_id"]) as run_id:
        # test_images already names the test set: no second prefix.
        flat = scoring.flat_metrics(scored.metrics)
        mlflow.log_metrics({k if k.startswith("test_") else f"test_{k}": v for k, v in flat.items()})
        mlflow.log_metric("label_suspects", len(suspected))
        for key in ("metrics", "predictions", "confusion_matrix", "roc_curve", "pr_curve", "label_issues"):
            mlflow.log_artifact(str(params.path(key)), artifact_path="evaluation")
        mlflow.log_artifacts(str(plots), artifact_path="evaluation/plots")
        # Last, after every report is written and logged: register trusts the reports with these.
        mlflow.set_tags(evaluated_tags(params))
    return EvaluateResult(metrics=scored.metrics, run_id=run_id, label_suspects=len(suspected))


def _label_issues(params: Params, classifier: Classifier) -> list[labelissues.Suspect]:
    """Every usable image (the whole split file) ranked by how likely its label is wrong."""
    import numpy as np

    classes = classifier.classes
    paths, usable = labelissues.usable_examples(params.path("split"), params.path("raw"), classes)
    labels = np.asarray(usable.labels)
    found = labelissues.features(classifier, usable, params.train.batch_size)
    probs = labelissues.out_of_sample(found, labels, len(classes), params.evaluate.label_issue_folds)
    return labelissues.suspects(paths, labels, probs, classes)
