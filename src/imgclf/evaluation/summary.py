"""The few lines that end a pipeline run: this run's test metrics, the registry's decision
and where to look next. Read from the reports evaluate and register wrote, so it takes
no MLflow, DVC or TensorFlow import and answers at once."""

from __future__ import annotations

import json
from typing import Any

from imgclf import tracking
from imgclf.errors import StageInputError
from imgclf.evaluation import HEADLINE
from imgclf.params import Params

_NAMES = {"f1": "F1", "roc_auc": "ROC AUC"}


def summary_lines(params: Params) -> list[str]:
    """Three to four lines for a terminal: metrics, decision (and why), next steps."""
    metrics = _read(params, "metrics", "imgclf evaluate")
    promotion = _read(params, "promotion", "imgclf register")
    # The runs list on the model-training view: MLflow 3.17's bare address opens its GenAI pages.
    ui, experiment_id = tracking.ui_url(params), tracking.local_experiment_id(params)
    where = tracking.runs_link(ui, experiment_id) if experiment_id else ui
    return [
        metrics_line(metrics),
        decision_line(promotion),
        f"next: `make ui` to compare runs (MLflow at {where}), `dvc plots show`, "
        f"{params.paths.model_card}, {params.paths.plots}/",
    ]


def metrics_line(metrics: dict[str, Any]) -> str:
    shown = [f"{_NAMES.get(k, k)} {metrics[k]:.4f}" for k in HEADLINE if isinstance(metrics.get(k), int | float)]
    return f"test ({int(metrics.get('test_images', 0))} images): " + ", ".join(shown)


def decision_line(promotion: dict[str, Any]) -> str:
    """Which version this run's model is and what the gate made of it, with its reasons."""
    name, version, decision = promotion["model_name"], promotion["version"], promotion["decision"]
    if decision == "champion":
        state = "is the new champion"
    elif decision == "unchanged":
        state = "unchanged"
    else:
        champion = (promotion.get("champion") or {}).get("version")
        state = f"is {decision}; the champion stays version {champion}" if champion else f"is {decision}"
    reasons = "; ".join(promotion.get("reasons") or [promotion.get("summary", "")])
    return f"registry: {name} version {version} {state}: {reasons}"


def _read(params: Params, key: str, writer: str) -> dict[str, Any]:
    file = params.path(key)
    if not file.exists():
        raise StageInputError(f"{getattr(params.paths, key)}: not found; run `{writer}` first (or `dvc repro`)")
    loaded: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return loaded
