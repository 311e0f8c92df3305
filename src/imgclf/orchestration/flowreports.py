"""What the Prefect flow shows in its UI: the stages' reports as markdown and tables (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from imgclf.evaluation.reporting import confusion_table
from imgclf.evaluation.scoring import flat_metrics
from imgclf.params import Paths

# What each artifact shows, where it comes from and where the whole report is: the
# description the Prefect UI prints under the artifact's key. {name} is a paths entry.
DESCRIPTIONS = {
    "validation-summary": "The validate stage's Great Expectations checks of {raw}: files kept and excluded "
    "(by reason) and each expectation's result. Whole report: {validation_report}; Data Docs: {data_docs}.",
    "test-metrics": "The evaluate stage's scores of the trained model on the held-out test split ({metrics}); "
    "the MLflow run holds them as test_* metrics.",
    "confusion-matrix": "Test-split images counted by actual (rows) and predicted (columns) class "
    "({confusion_matrix}), with the link to the model's MLflow run.",
    "label-suspects": "The evaluate stage's suspected label errors among all usable images, most suspect first "
    "(the top rows of {label_issues}; a gallery in {plots}/label_issues.png): a given label the out-of-sample "
    "probabilities doubt. Nothing is relabelled; validate.exclude_paths excludes the ones you confirm.",
    "promotion-decision": "The register stage's gate on the trained model: its registry version, whether it became "
    "champion or stays challenger, and why ({promotion}; the model card: {model_card}).",
}


def description(key: str, paths: Paths) -> str:
    """The Prefect artifact ``key``'s description, naming this project's paths."""
    return DESCRIPTIONS[key].format(**paths.model_dump())


def validation_markdown(report: Mapping[str, Any]) -> str:
    files = report["files"]
    reasons = [f"| {reason} | {count} |" for reason, count in report["by_reason"].items() if count]
    near = report.get("near_duplicates", {})
    conflicts = [f"- {', '.join(paths)}" for paths in report.get("label_conflicts", [])]
    warned = ", ".join(f"{n} {kind}" for kind, n in report.get("warnings", {}).items() if n)
    checks = [
        f"| {name} | {'pass' if e['success'] else '**fail**'} | {e.get('observed', '')} |"
        for name, e in report["expectations"].items()
    ]
    return "\n".join(
        [
            f"# Validation: {'passed' if report['success'] else 'FAILED'}",
            "",
            f"{files['candidates']} files: {files['ok']} ok, {files['excluded']} excluded, {files['skipped']} skipped.",
            "",
            *(["| excluded because | files |", "| --- | --- |", *reasons, ""] if reasons else []),
            f"Near-duplicate groups: {near.get('groups', 0)} ({near.get('images', 0)} files, distance "
            f"{near.get('distance')}), {near.get('label_conflicts', 0)} under two classes (all excluded).",
            "",
            *(["Label conflicts (each group's files):", *conflicts, ""] if conflicts else []),
            f"Quality warnings (kept): {warned or 'none'}.",
            "",
            "| expectation | result | observed |",
            "| --- | --- | --- |",
            *checks,
        ]
    )


def metrics_table(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"metric": k, "value": round(v, 4)} for k, v in flat_metrics(dict(metrics)).items()]


def confusion_markdown(pairs: Iterable[tuple[str, str]], run_link: str) -> str:
    """A confusion matrix from (actual, predicted) pairs, and where the run is."""
    counts = Counter(pairs)
    classes = sorted({c for pair in counts for c in pair})
    matrix = [[counts[(actual, predicted)] for predicted in classes] for actual in classes]
    return "\n".join(
        [
            "# Confusion matrix (test split)",
            "",
            *confusion_table(classes, matrix),
            "",
            f"MLflow run: [{run_link}]({run_link})",
        ]
    )


def promotion_markdown(promotion: Mapping[str, Any]) -> str:
    return "\n".join(
        [
            f"# {promotion['model_name']} version {promotion['version']}: {promotion['decision']}",
            "",
            promotion["summary"],
            "",
            *(f"- {reason}" for reason in promotion["reasons"]),
        ]
    )


def suspects_markdown(rows: Sequence[Mapping[str, str]], limit: int = 20) -> str:
    """The first ``limit`` rows of paths.label_issues (most suspect first) as a table."""
    lines = [f"# Suspected label errors: {len(rows)}", ""]
    if not rows:
        return "\n".join([*lines, "No usable image's label is in doubt."])
    return "\n".join(
        [
            *lines,
            "| rank | path | label | looks like | score |",
            "| --- | --- | --- | --- | --- |",
            *(
                f"| {rank} | {r['path']} | {r['label']} | {r['suggested']} | {r['score']} |"
                for rank, r in enumerate(rows[:limit], start=1)
            ),
            *(["", f"... and {len(rows) - limit} more."] if len(rows) > limit else []),
        ]
    )
