"""What the Prefect flow shows without a Prefect server: each stage task's result line
(orchestration.results) and every artifact's description (orchestration.flowreports)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from imgclf import tracking
from imgclf.orchestration import flowreports
from imgclf.orchestration.results import READS, read_reports, result_line, run_link
from imgclf.params import Params, Paths, load_params
from imgclf.tables import write_csv

FLOW = Path(__file__).resolve().parents[2] / "pipelines" / "training_flow.py"
LINK = "http://127.0.0.1:5000/#/experiments/1/runs/abc"

REPORTS = {
    "validation_report": {
        "success": True,
        "files": {"candidates": 2000, "ok": 1989, "excluded": 11, "skipped": 0},
        "expectations": {"a": {"success": True}, "b": {"success": True}},
        "near_duplicates": {"distance": 4, "groups": 127, "images": 439, "kept": 419, "label_conflicts": 4},
    },
    "split_report": {"counts": {"train": 1422, "val": 288, "test": 279}},
    "augment_list": [{"file": "a.png", "variant": "0"}, {"file": "a_1.png", "variant": "1"}],
    "train_history": [{"epoch": "0", "val_accuracy": "0.5"}, {"epoch": "1", "val_accuracy": "0.98958"}],
    "metrics": {"accuracy": 0.97491, "precision": 0.9853, "recall": 0.964, "f1": 0.97455, "test_images": 279},
    "label_issues": [{"path": "dog/d.png", "label": "dog", "suggested": "cat", "score": "0.000011"}],
    "promotion": {
        "model_name": "catdog-cnn",
        "version": "2",
        "decision": "challenger",
        "summary": "kept as challenger",
        "reasons": ["f1 0.9700 meets the floor 0.85", "f1 0.9700 does not beat the champion's 0.9745 by 0.005"],
    },
}


@pytest.mark.parametrize(
    ("stage", "line"),
    [
        (
            "validate",
            "validate: ran: passed; 1989 ok, 11 excluded, 0 skipped; 127 near-duplicate groups (4 across classes); "
            "2/2 expectations passed",
        ),
        ("split", "split: ran: 1422 train, 288 val, 279 test"),
        ("augment", "augment: ran: 2 training files (1 augmented variants)"),
        ("train", f"train: ran: 2 epochs, val_accuracy 0.9896; MLflow run {LINK}"),
        (
            "evaluate",
            "evaluate: ran: accuracy 0.9749, precision 0.9853, recall 0.9640, f1 0.9746 on 279 test images; "
            f"1 suspected label errors; MLflow run {LINK}",
        ),
        (
            "register",
            "register: ran: catdog-cnn version 2: challenger (kept as challenger); f1 0.9700 meets the floor 0.85; "
            "f1 0.9700 does not beat the champion's 0.9745 by 0.005",
        ),
        ("check", "check: ran"),
    ],
)
def test_each_stage_logs_its_result_not_just_ran(stage: str, line: str) -> None:
    assert result_line(stage, True, REPORTS, LINK) == line


def test_a_skipped_stage_still_says_what_its_outputs_hold_and_a_missing_report_is_no_error() -> None:
    assert result_line("split", False, REPORTS) == "split: unchanged, skipped: 1422 train, 288 val, 279 test"
    assert result_line("evaluate", True, {}) == "evaluate: ran"
    assert result_line("register", True, {"promotion": {"version": "1"}}) == "register: ran"


def test_the_reports_and_the_run_link_are_read_from_the_projects_paths(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("{}\n", encoding="utf-8")
    params: Params = load_params(tmp_path / "params.yaml")
    params.path("run").parent.mkdir(parents=True)
    params.path("run").write_text(json.dumps({"run_id": "abc", "experiment_id": "1"}), encoding="utf-8")
    params.path("train_history").parent.mkdir(parents=True)
    write_csv(params.path("train_history"), REPORTS["train_history"], ["epoch", "val_accuracy"])
    reports = read_reports(params, "train")
    assert reports == {"train_history": REPORTS["train_history"], "run": {"run_id": "abc", "experiment_id": "1"}}
    assert run_link(params, reports) == tracking.run_link(params, "1", "abc")
    assert read_reports(params, "evaluate") == {"run": reports["run"]}  # metrics.json is missing
    assert set(READS) == {"check", "validate", "split", "augment", "train", "evaluate", "register"}


def test_every_artifact_the_flow_publishes_has_a_description() -> None:
    calls = [
        node
        for node in ast.walk(ast.parse(FLOW.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "").startswith("create_")
    ]
    assert calls, "the flow publishes no artifact"
    for call in calls:
        keywords = {k.arg: k.value for k in call.keywords}
        assert "description" in keywords, f"line {call.lineno}: {ast.unparse(call)} has no description"
        key = keywords["key"]
        assert isinstance(key, ast.Constant) and key.value in flowreports.DESCRIPTIONS
    for key in flowreports.DESCRIPTIONS:
        said = flowreports.description(key, Paths())
        assert "{" not in said and len(said) > 40
    assert "reports/metrics.json" in flowreports.description("test-metrics", Paths())


def test_the_validation_summary_names_groups_conflicts_and_warnings_and_suspects_are_a_table() -> None:
    report = {
        **REPORTS["validation_report"],
        "by_reason": {"label_conflict": 3},
        "label_conflicts": [["cat/a.png", "dog/b.png", "dog/c.png"]],
        "warnings": {"blank": 0, "dark": 2},
    }
    markdown = flowreports.validation_markdown(report)
    assert "Near-duplicate groups: 127 (439 files, distance 4), 4 under two classes (all excluded)." in markdown
    assert "- cat/a.png, dog/b.png, dog/c.png" in markdown and "Quality warnings (kept): 2 dark." in markdown
    suspects = flowreports.suspects_markdown(REPORTS["label_issues"] * 25)
    assert (
        suspects.startswith("# Suspected label errors: 25") and "| 20 | dog/d.png | dog | cat | 0.000011 |" in suspects
    )
    assert "| 21 |" not in suspects and "... and 5 more." in suspects
    assert "No usable image's label is in doubt." in flowreports.suspects_markdown([])
