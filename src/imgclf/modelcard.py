"""The model card: one markdown page on what a registered model is, how good, and why it is
(or is not) the champion. Written by the register stage, logged to the run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imgclf import tracking
from imgclf.params import Params
from imgclf.scoring import flat_metrics


def render(
    params: Params,
    classes: list[str],
    metrics: dict[str, Any],
    confusion: Any,
    run: Mapping[str, str],
    promotion: Mapping[str, Any],
) -> str:
    """Markdown for one model.

    Args:
        metrics, confusion: the model's scores on the current test split.
        run: paths.run (run_id, experiment_id).
        promotion: what reports/promotion.json holds.
    """
    tags = tracking.provenance(params)
    m, t = params.model, params.train
    header = "| actual \\ predicted | " + " | ".join(classes) + " |"
    rows = [f"| **{c}** | " + " | ".join(str(v) for v in confusion[i]) + " |" for i, c in enumerate(classes)]
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
            "## Tracking and serving",
            f"- MLflow run [{run['run_id']}]({link}) in experiment `{params.tracking.experiment}`, store `{uri}`",
            "- for the local store, start the UI first: `make ui`",
            f"- predict: `imgclf predict FOLDER --model models:/{promotion['model_name']}/{promotion['version']}`",
            "",
        ]
    )


def _champion_line(champion: Mapping[str, Any] | None) -> str:
    if not champion:
        return "- champion at decision time: none"
    f1 = champion.get("f1")
    scored = f", F1 {f1:.4f} on the same test images" if f1 is not None else ""
    return f"- champion at decision time: version {champion['version']}{scored}"
