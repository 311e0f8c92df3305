"""validate stage: scan the raw folder into a manifest, then check it with Great Expectations.

Reads ``paths.raw`` (never writes to it); writes ``paths.manifest``,
``paths.validation_report`` and ``paths.data_docs``. Fails (exit 1) when the
expectation suite fails; the manifest and report are still written so the user can
see why, and the report's ``success: false`` stops the split stage from trusting it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from imgclf.atomic import write_json
from imgclf.data.imaging import Limits, Reason
from imgclf.data.manifest import COLUMNS, EXCLUDED, OK, ManifestRow
from imgclf.data.scan import scan
from imgclf.errors import DataValidationError, StageInputError
from imgclf.params import Params
from imgclf.tables import write_csv


@dataclass(frozen=True)
class ValidationResult:
    rows: list[ManifestRow]
    report: dict[str, Any]


def summarize(rows: list[ManifestRow], skipped: Counter[str], expectations: dict[str, Any]) -> dict[str, Any]:
    """The validation report: counts by status, reason and class, and each expectation."""
    status = Counter(row.status for row in rows)
    by_class: dict[str, dict[str, int]] = {}
    for row in rows:
        by_class.setdefault(row.label, {OK: 0, EXCLUDED: 0})[row.status] += 1
    reasons = Counter(row.reason for row in rows if row.reason)
    return {
        "success": all(e["success"] for e in expectations.values()),
        "files": {
            "candidates": len(rows),
            OK: status[OK],
            EXCLUDED: status[EXCLUDED],
            "skipped": sum(skipped.values()),
        },
        "excluded_fraction": round(status[EXCLUDED] / len(rows), 6) if rows else 0.0,
        # Every reason, zeros included, so that `dvc metrics diff` lines up across runs.
        "by_reason": {reason.value: reasons[reason.value] for reason in Reason},
        "skipped": {kind: skipped[kind] for kind in ("clutter", "top_level", "symlink_outside")},
        "by_class": dict(sorted(by_class.items())),
        # Numbers and booleans only, for `dvc metrics`; the readable details go to the CLI and Data Docs.
        "expectations": {name: {k: e[k] for k in ("success", "observed")} for name, e in expectations.items()},
    }


def run(params: Params) -> ValidationResult:
    """Scan, check and report. Raises DataValidationError when the suite fails."""
    from imgclf.data import expectations

    raw, cfg = params.path("raw"), params.validation
    if not raw.is_dir():
        raise StageInputError(f"{params.paths.raw}: no such folder; put one folder of images per class there")
    rows, skipped = scan(raw, Limits(cfg.min_side, cfg.max_side, cfg.max_pixels), cfg.workers)

    # The old report goes first: if this process dies before the new one is written, split
    # finds no report, rather than an old "success" beside a new, unchecked manifest.
    params.path("validation_report").unlink(missing_ok=True)
    write_csv(params.path("manifest"), rows, COLUMNS)
    # The manifest's digest ties the report to it (split trusts a "success" only for the
    # very manifest it reads) and names the Data Docs run, so the same data gives the same pages.
    with params.path("manifest").open("rb") as written:
        manifest_sha256 = hashlib.file_digest(written, "sha256").hexdigest()
    outcomes = expectations.check(
        rows, cfg, docs_dir=params.path("data_docs"), run_name=f"manifest-{manifest_sha256[:12]}"
    )
    report = summarize(rows, skipped, outcomes) | {"manifest_sha256": manifest_sha256}
    write_json(params.path("validation_report"), report)
    if not report["success"]:
        failed = [f"{name} ({e['detail']})" for name, e in outcomes.items() if not e["success"]]
        raise DataValidationError(
            f"validation failed: {len(failed)} of {len(outcomes)} expectations: "
            + "; ".join(failed)
            + f". See {params.paths.validation_report} and {params.paths.data_docs}/index.html"
        )
    return ValidationResult(rows=rows, report=report)
