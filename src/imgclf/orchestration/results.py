"""What each stage task of the Prefect flow logs when it ends: the stage's result in one
line (counts, metrics, the gate's decision, the MLflow run's link), read from the reports
the stage wrote, so that the flow run's logs say what happened and not only "ran".

``result_line`` is pure (the reports in, the line out); ``read_reports`` is the I/O edge.
A stage DVC skipped is reported with the outputs it left before: still its result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from imgclf.evaluation import HEADLINE
from imgclf.params import Params

log = logging.getLogger(__name__)

# The params.yaml paths each stage's line reads (JSON files; train_history is a CSV).
READS = {
    "check": (),
    "validate": ("validation_report",),
    "split": ("split_report",),
    "augment": ("augment_list",),
    "train": ("train_history", "run"),
    "evaluate": ("metrics", "run", "label_issues"),
    "register": ("promotion",),
}


def result_line(stage: str, ran: bool, reports: Mapping[str, Any], link: str | None = None) -> str:
    """``<stage>: ran|unchanged, skipped: <its result>``; ``link``: the MLflow run's page."""
    what = "ran" if ran else "unchanged, skipped"
    try:
        said = _result(stage, reports, link)
    except (KeyError, TypeError, ValueError, IndexError):  # a report of another shape: say what we know
        said = None
    return f"{stage}: {what}" + (f": {said}" if said else "")


def _result(stage: str, reports: Mapping[str, Any], link: str | None) -> str | None:
    run = f"; MLflow run {link}" if link else ""
    if stage == "validate":
        report = reports["validation_report"]
        files, checks = report["files"], report["expectations"]
        passed = sum(1 for c in checks.values() if c["success"])
        verdict = "passed" if report["success"] else "FAILED"
        near = report.get("near_duplicates", {})
        groups = f"{near['groups']} near-duplicate groups ({near['label_conflicts']} across classes); " if near else ""
        return (
            f"{verdict}; {files['ok']} ok, {files['excluded']} excluded, {files['skipped']} skipped; "
            f"{groups}{passed}/{len(checks)} expectations passed"
        )
    if stage == "split":
        counts = reports["split_report"]["counts"]
        return ", ".join(f"{n} {name}" for name, n in counts.items())
    if stage == "augment":
        rows = reports["augment_list"]
        variants = sum(1 for r in rows if r.get("variant") not in (None, "", "0"))
        return f"{len(rows)} training files ({variants} augmented variants)"
    if stage == "train":
        history = reports["train_history"]
        last = history[-1]
        return f"{len(history)} epochs, val_accuracy {float(last['val_accuracy']):.4f}{run}"
    if stage == "evaluate":
        m = reports["metrics"]
        scores = ", ".join(f"{k} {m[k]:.4f}" for k in HEADLINE if k in m)
        images = m.get("test_images")
        suspects = reports.get("label_issues")
        flagged = f"; {len(suspects)} suspected label errors" if suspects is not None else ""
        return f"{scores}" + (f" on {images} test images" if images is not None else "") + flagged + run
    if stage == "register":
        p = reports["promotion"]
        reasons = "; ".join(p.get("reasons", []))
        return f"{p['model_name']} version {p['version']}: {p['decision']} ({p['summary']})" + (
            f"; {reasons}" if reasons else ""
        )
    return None


def read_reports(params: Params, stage: str) -> dict[str, Any]:
    """The reports ``stage``'s line reads, each left out if missing or unreadable."""
    from imgclf.tables import read_csv

    found: dict[str, Any] = {}
    for key in READS.get(stage, ()):
        path = params.path(key)
        try:
            found[key] = read_csv(path) if path.suffix == ".csv" else json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.debug("%s: %s", path, exc)
    return found


def run_link(params: Params, reports: Mapping[str, Any]) -> str | None:
    """The MLflow UI page of the run train recorded (paths.run), if it is among ``reports``."""
    from imgclf import tracking

    run = reports.get("run")
    if not isinstance(run, dict) or "run_id" not in run or "experiment_id" not in run:
        return None
    return tracking.run_link(params, str(run["experiment_id"]), str(run["run_id"]))
