"""`imgclf summary`, the lines that end `make run`: read from the reports, one clear line
when one is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgclf.errors import StageInputError
from imgclf.evaluation.summary import decision_line, metrics_line, summary_lines
from imgclf.params import load_params

METRICS = {"accuracy": 0.97491, "test_images": 279, "precision": 0.98529, "recall": 0.96403, "f1": 0.974545}


def test_the_metrics_line_names_the_headline_metrics_in_order() -> None:
    line = metrics_line({**METRICS, "roc_auc": 0.99568})
    assert line == "test (279 images): accuracy 0.9749, precision 0.9853, recall 0.9640, F1 0.9745, ROC AUC 0.9957"
    assert "ROC AUC" not in metrics_line(METRICS)  # absent when evaluate could not compute it


@pytest.mark.parametrize(
    ("decision", "champion", "expected"),
    [
        ("champion", None, "registry: m version 2 is the new champion: f1 above floor"),
        (
            "challenger",
            {"version": "1"},
            "registry: m version 2 is challenger; the champion stays version 1: f1 above floor",
        ),
        ("unchanged", {"version": "2"}, "registry: m version 2 unchanged: f1 above floor"),
    ],
)
def test_the_decision_line_says_what_the_gate_made_of_this_model(
    decision: str, champion: dict[str, str] | None, expected: str
) -> None:
    promotion = {"model_name": "m", "version": "2", "decision": decision, "reasons": ["f1 above floor"]}
    assert decision_line({**promotion, "champion": champion}) == expected


def test_summary_reads_the_reports_and_names_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("{}\n", encoding="utf-8")
    params = load_params(tmp_path / "params.yaml")
    params.path("metrics").parent.mkdir(parents=True)
    params.path("metrics").write_text(json.dumps(METRICS), encoding="utf-8")
    with pytest.raises(StageInputError, match=r"^reports/promotion.json: not found; run `imgclf register` first"):
        summary_lines(params)
    promotion = {"model_name": "m", "version": "1", "decision": "champion", "reasons": ["first"], "champion": None}
    params.path("promotion").write_text(json.dumps(promotion), encoding="utf-8")
    lines = summary_lines(params)
    assert lines[:2] == [metrics_line(METRICS), "registry: m version 1 is the new champion: first"]
    assert "make ui" in lines[2] and "reports/model_card.md" in lines[2]


def test_the_next_line_links_the_runs_list_only_for_a_local_store_it_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model-training view's runs list when the local store has the experiment; else
    the UI's address (no store yet), or the tracking server's own (never the local id)."""
    (tmp_path / "params.yaml").write_text("{}\n", encoding="utf-8")
    params = load_params(tmp_path / "params.yaml")
    params.path("metrics").parent.mkdir(parents=True)
    params.path("metrics").write_text(json.dumps(METRICS), encoding="utf-8")
    promotion = {"model_name": "m", "version": "1", "decision": "champion", "reasons": ["first"], "champion": None}
    params.path("promotion").write_text(json.dumps(promotion), encoding="utf-8")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert "(MLflow at http://127.0.0.1:5000)" in summary_lines(params)[2]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert "(MLflow at http://tracking.example:5000)" in summary_lines(params)[2]
