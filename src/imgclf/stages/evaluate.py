"""evaluate stage: score the trained model on the test split, report, and log to the run.

Writes metrics (DVC metrics), per-image predictions, the confusion matrix (for
``dvc plots``), PNG plots, a gallery of the worst errors and the model card; logs
all of it to the MLflow run that train opened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from imgclf import tracking
from imgclf.atomic import replacing, write_json
from imgclf.data import split_examples
from imgclf.errors import ParamsError, StageInputError
from imgclf.manifest import write_csv
from imgclf.params import Params


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict[str, Any]
    run_id: str


def run(params: Params) -> EvaluateResult:
    import keras
    import mlflow
    import numpy as np

    from imgclf import reporting, scoring
    from imgclf.data import make_dataset
    from imgclf.imaging import load_rgb

    model_path, classes_path = params.path("model"), params.path("classes")
    if not model_path.exists() or not classes_path.exists():
        raise StageInputError(f"{params.paths.model}: no trained model; run `imgclf train` first")
    saved = json.loads(classes_path.read_text(encoding="utf-8"))
    classes, image_size = list(saved["classes"]), int(saved["image_size"])
    positive = params.evaluate.positive_class
    if positive is not None and positive not in classes:
        raise ParamsError(f"params.yaml: evaluate.positive_class: {positive!r} is not one of the classes {classes}")
    test = split_examples(params.path("split"), params.path("raw"), "test", classes)
    if not test.files:
        raise StageInputError("the test split is empty: add images or raise split.test")

    model = keras.saving.load_model(model_path, safe_mode=True)
    outputs = model.predict(make_dataset(test, image_size, params.train.batch_size), verbose=0)
    labels = np.asarray(test.labels)
    scored = scoring.score(
        labels, scoring.probabilities(outputs, len(classes)), classes, positive, params.evaluate.threshold
    )
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
        card = model_card(params, classes, scored.metrics, scored.confusion, run_id)
        with replacing(params.path("model_card")) as out:
            out.write(card)
        mlflow.log_metrics({f"test_{k}": v for k, v in tracking_metrics(scored.metrics).items()})
        for key in ("metrics", "predictions", "confusion_matrix", "model_card"):
            mlflow.log_artifact(str(params.path(key)), artifact_path="evaluation")
        mlflow.log_artifacts(str(plots), artifact_path="evaluation/plots")
    return EvaluateResult(metrics=scored.metrics, run_id=run_id)


def tracking_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics flattened to numbers: {"macro": {"f1": .9}} -> {"macro_f1": .9}."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat |= tracking_metrics(value, f"{prefix}{key}_")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat


def model_card(params: Params, classes: list[str], metrics: dict[str, Any], confusion: Any, run_id: str) -> str:
    """A markdown summary: data version, settings, metrics, confusion matrix, where the run is."""
    tags = tracking.provenance(params)
    m, t = params.model, params.train
    header = "| actual \\ predicted | " + " | ".join(classes) + " |"
    rows = [f"| **{c}** | " + " | ".join(str(v) for v in confusion[i]) + " |" for i, c in enumerate(classes)]
    numbers = [f"| {k} | {v:.4f} |" for k, v in tracking_metrics(metrics).items() if k != "test_images"]
    uri = tracking.tracking_uri(params)
    experiment_id = json.loads(params.path("run").read_text(encoding="utf-8"))["experiment_id"]
    # A server has its own UI; the local store's is the one `make ui` starts.
    ui = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    link = f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"
    return "\n".join(
        [
            f"# Model card: {m.arch} on {', '.join(classes)}",
            "",
            "## Data",
            f"- raw images: DVC md5 `{tags['data_raw_md5']}`; split: md5 `{tags['data_split_md5']}`",
            f"- test images: {metrics['test_images']}",
            f"- code: git commit `{tags['git_commit']}` (dirty: {tags['git_dirty']})",
            "",
            "## Model and training",
            f"- architecture `{m.arch}`"
            + (f" (backbone {m.backbone}, weights {m.weights})" if m.arch == "transfer" else ""),
            f"- input: raw uint8 RGB of any size, resized inside the model to {t.image_size}x{t.image_size}",
            f"- augmentation: {params.augment.mode}; epochs ≤ {t.epochs}, batch {t.batch_size}, "
            f"learning rate {t.learning_rate}, seed {t.seed}",
            "",
            "## Test metrics",
            *(["", f"Positive class: `{params.evaluate.positive_class or classes[1]}`"] if len(classes) == 2 else []),
            "",
            "| metric | value |",
            "| --- | --- |",
            *numbers,
            "",
            "## Confusion matrix (test)",
            "",
            header,
            "| --- | " + " | ".join("---" for _ in classes) + " |",
            *rows,
            "",
            "## Tracking",
            f"- MLflow run [{run_id}]({link}) in experiment `{params.tracking.experiment}`, store `{uri}`",
            "- for the local store, start the UI first: `make ui`",
            "",
        ]
    )
