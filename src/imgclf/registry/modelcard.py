"""The model card: one markdown page on what a registered model is, how good, and why it is
(or is not) the champion. Written by the register stage, logged to the run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imgclf import provenance, tracking
from imgclf.evaluation.reporting import confusion_table
from imgclf.evaluation.scoring import flat_metrics
from imgclf.params import AUGMENT_RANGES, Params


def render(
    params: Params,
    classes: list[str],
    metrics: dict[str, Any],
    confusion: Any,
    run: Mapping[str, str],
    promotion: Mapping[str, Any],
    trained: Mapping[str, str],
    suspects: int | None = None,
) -> str:
    """Markdown for one model.

    Args:
        metrics, confusion: the model's scores on the current test split.
        run: paths.run (run_id, experiment_id).
        promotion: what reports/promotion.json holds.
        trained: the MLflow params the training run logged: the settings it ran with,
            "auto" resolved (params.yaml may say "auto", or have changed since).
        suspects: how many images evaluate flagged as likely mislabelled (paths.label_issues).
    """
    tags = provenance.collect(params)
    m, t = params.model, params.train

    def ran(key: str) -> str:  # a train setting as the run logged it
        return trained.get(f"train.{key}", str(getattr(t, key)))

    size = ran("image_size")
    numbers = [f"| {k} | {v:.4f} |" for k, v in flat_metrics(metrics).items() if k != "test_images"]
    uri = tracking.tracking_uri(params)
    link = tracking.run_link(params, run["experiment_id"], run["run_id"])
    champion = promotion.get("champion")
    return "\n".join(
        [
            f"# Model card: {promotion['model_name']} version {promotion['version']}",
            "",
            f"{m.arch} classifier of {', '.join(classes)}.",
            "",
            "## Registry decision",
            f"- decision: **{promotion['decision']}** ({promotion['summary']})",
            *(f"- {reason}" for reason in promotion["reasons"]),
            _champion_line(champion),
            f"- content hash `{promotion['content_hash'][:16]}`",
            "",
            "## Data",
            f"- raw images: DVC md5 `{tags['data_raw_md5']}`; split: md5 `{tags['data_split_md5']}`",
            f"- test images: {metrics['test_images']}",
            f"- suspected label errors: {'not ranked' if suspects is None else suspects} "
            f"(`{params.paths.label_issues}`; never relabelled: validate.exclude_paths acts on them)",
            f"- code: git commit `{tags['git_commit']}` (dirty: {tags['git_dirty']})",
            "",
            "## Model and training",
            f"- architecture `{m.arch}`"
            + (f" (backbone {m.backbone}, weights {m.weights})" if m.arch == "transfer" else ""),
            f"- input: raw uint8 RGB of any size, resized inside the model to {size}x{size}",
            f"- augmentation: {_augmentation(trained)}",
            f"- epochs ≤ {ran('epochs')}, batch {ran('batch_size')}, learning rate {ran('learning_rate')}, "
            f"seed {ran('seed')}",
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
            *confusion_table(classes, confusion),
            "",
            "## Tracking and serving",
            f"- MLflow run [{run['run_id']}]({link}) in experiment `{params.tracking.experiment}`, store `{uri}`",
            "- for the local store, start the UI first: `make ui`",
            f"- predict: `imgclf predict FOLDER --model models:/{promotion['model_name']}/{promotion['version']}`",
            "",
        ]
    )


def _augmentation(trained: Mapping[str, str]) -> str:
    mode = trained.get("augment.mode", "?")
    if mode == "none":
        return "none"
    ranges = ", ".join(
        f"{key} {trained[f'augment.{key}']}"
        for key in AUGMENT_RANGES
        if trained.get(f"augment.{key}") not in (None, "0.0", "False", "None", "null")
    )
    return f"{mode}, preset {trained.get('augment.preset', '?')}: {ranges or 'no transform'}"


def _champion_line(champion: Mapping[str, Any] | None) -> str:
    if not champion:
        return "- champion at decision time: none"
    f1 = champion.get("f1")
    scored = f", F1 {f1:.4f} on the same test images" if f1 is not None else ""
    return f"- champion at decision time: version {champion['version']}{scored}"
