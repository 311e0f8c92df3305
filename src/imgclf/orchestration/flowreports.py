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
    "reproduce-verdict": "imgclf reproduce's verdict on the version: rebuilt in a temporary git worktree from its "
    "commit, logged diff, data version and params, and compared with the registered model (content hash, test F1). "
    "The version carries it as its reproduce_verdict tag.",
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


def confusion_markdown(pairs: Iterable[tuple[str, str]], run_link: str | None) -> str:
    """A confusion matrix from (actual, predicted) pairs, and where the run is (if known)."""
    counts = Counter(pairs)
    classes = sorted({c for pair in counts for c in pair})
    matrix = [[counts[(actual, predicted)] for predicted in classes] for actual in classes]
    where = ["", f"MLflow run: [{run_link}]({run_link})"] if run_link else []
    return "\n".join(["# Confusion matrix (test split)", "", *confusion_table(classes, matrix), *where])


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


def reproduce_markdown(outcome: Mapping[str, Any]) -> str:
    """``imgclf reproduce``'s outcome (reproduce.Outcome.as_json) as the verdict artifact."""
    registered, rebuilt = outcome["registered"], outcome["rebuilt"]

    def row(name: str, found: Mapping[str, Any]) -> str:
        f1 = "?" if found["f1"] is None else f"{found['f1']:.4f}"
        return f"| {name} | {str(found['content_hash'])[:16]} | {f1} | {found['split_md5']} |"

    return "\n".join(
        [
            f"# {outcome['model']} version {outcome['version']}: {outcome['verdict']}",
            "",
            *(f"- {difference}" for difference in outcome["differences"]),
            *([""] if outcome["differences"] else []),
            "| | content hash | test F1 | test split md5 |",
            "| --- | --- | --- | --- |",
            row("registered", registered),
            row("rebuilt", rebuilt),
            "",
            f"Rebuilt in {outcome['rebuild_seconds']:.0f} s; MLflow run {rebuilt['run_id']} in the experiment "
            f"{outcome['experiment']}.",
        ]
    )


def unreproducible_markdown(version: str, problem: str) -> str:
    """The verdict artifact when the version's record cannot be followed at all."""
    return "\n".join([f"# {version}: cannot be reproduced", "", problem])


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
