"""validate stage: scan the raw folder into a manifest, then check it with Great Expectations.

Reads ``paths.raw`` (never writes to it) and the files ``validate.exclude_paths`` may
name; writes ``paths.manifest``,
``paths.validation_report`` and ``paths.data_docs``. Fails (exit 1) when the
expectation suite fails; the manifest and report are still written so the user can
see why, and the report's ``success: false`` stops the split stage from trusting it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from imgclf.atomic import write_json
from imgclf.data.imaging import Limits, Reason
from imgclf.data.looks import QualityWarning
from imgclf.data.manifest import COLUMNS, EXCLUDED, OK, ManifestRow
from imgclf.data.scan import scan
from imgclf.errors import DataValidationError, ParamsError, StageInputError
from imgclf.params import Params
from imgclf.tables import read_csv, write_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidationResult:
    rows: list[ManifestRow]
    report: dict[str, Any]


def summarize(
    rows: list[ManifestRow], skipped: Counter[str], expectations: dict[str, Any], distance: int | None = None
) -> dict[str, Any]:
    """The validation report: counts by status, reason and class, near-duplicate groups and
    the label conflicts among them (each by its paths), quality warnings, and each expectation."""
    status = Counter(row.status for row in rows)
    by_class: dict[str, dict[str, int]] = {}
    for row in rows:
        by_class.setdefault(row.label, {OK: 0, EXCLUDED: 0})[row.status] += 1
    reasons = Counter(row.reason for row in rows if row.reason)
    groups: defaultdict[str, list[ManifestRow]] = defaultdict(list)
    for row in rows:
        if row.group:
            groups[row.group].append(row)
    conflicts = [[r.path for r in members] for members in groups.values() if members[0].reason == Reason.LABEL_CONFLICT]
    warned = Counter(w for row in rows if row.status == OK for w in row.warnings.split(";") if w)
    # What excluded_fraction bounds: broken files, not the ones the user chose to leave out.
    judged = [row for row in rows if row.reason != Reason.EXCLUDED_BY_USER]
    return {
        "success": all(e["success"] for e in expectations.values()),
        "files": {
            "candidates": len(rows),
            OK: status[OK],
            EXCLUDED: status[EXCLUDED],
            "skipped": sum(skipped.values()),
        },
        "excluded_fraction": round(sum(r.status == EXCLUDED for r in judged) / len(judged), 6) if judged else 0.0,
        # Every reason, zeros included, so that `dvc metrics diff` lines up across runs.
        "by_reason": {reason.value: reasons[reason.value] for reason in Reason},
        "skipped": {kind: skipped[kind] for kind in ("clutter", "top_level", "symlink_outside")},
        "by_class": dict(sorted(by_class.items())),
        "near_duplicates": {
            "distance": distance,  # validate.near_duplicate_distance; None: copies of the same bytes only
            "groups": len(groups),
            "images": sum(len(members) for members in groups.values()),
            "kept": sum(row.status == OK for members in groups.values() for row in members),
            "label_conflicts": len(conflicts),
        },
        # Each group under two or more classes, by its paths: every one of them is excluded.
        "label_conflicts": conflicts,
        # Usable images that look wrong, by warning: counted, never excluded.
        "warnings": {kind.value: warned[kind.value] for kind in QualityWarning},
        # Numbers and booleans only, for `dvc metrics`; the readable details go to the CLI and Data Docs.
        "expectations": {name: {k: e[k] for k in ("success", "observed")} for name, e in expectations.items()},
    }


def run(params: Params) -> ValidationResult:
    """Scan, check and report. Raises DataValidationError when the suite fails."""
    from imgclf.data import expectations

    raw, cfg = params.path("raw"), params.validation
    if not raw.is_dir():
        raise StageInputError(f"{params.paths.raw}: no such folder; put one folder of images per class there")
    exclude = exclusions(params)
    limits = Limits(cfg.min_side, cfg.max_side, cfg.max_pixels)
    rows, skipped = scan(raw, limits, cfg.workers, cfg.near_duplicate_distance, exclude)
    unmatched = sorted(set(exclude) - {row.path for row in rows})
    if unmatched:
        log.warning("validate.exclude_paths: %d paths match no file, e.g. %s", len(unmatched), unmatched[0])

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
    report = summarize(rows, skipped, outcomes, cfg.near_duplicate_distance) | {
        "exclude_paths_unmatched": len(unmatched),
        "manifest_sha256": manifest_sha256,
    }
    write_json(params.path("validation_report"), report)
    if not report["success"]:
        failed = [f"{name} ({e['detail']})" for name, e in outcomes.items() if not e["success"]]
        raise DataValidationError(
            f"validation failed: {len(failed)} of {len(outcomes)} expectations: "
            + "; ".join(failed)
            + f". See {params.paths.validation_report} and {params.paths.data_docs}/index.html"
        )
    return ValidationResult(rows=rows, report=report)


def exclusions(params: Params) -> list[str]:
    """validate.exclude_paths as manifest paths: the list itself, or read from its file
    (one path per line, blank lines and # comments skipped; a .csv: its ``path`` column)."""
    listed = params.validation.exclude_paths
    if not isinstance(listed, str):
        return list(listed or ())
    file = (params.root / listed).resolve()
    try:
        if file.suffix.lower() == ".csv":
            found = [row["path"] for row in read_csv(file)]
        else:
            lines = (line.strip() for line in file.read_text(encoding="utf-8").splitlines())
            found = [line for line in lines if line and not line.startswith("#")]
    except (OSError, UnicodeDecodeError, KeyError) as exc:
        what = "no path column" if isinstance(exc, KeyError) else getattr(exc, "strerror", None) or "not readable"
        raise ParamsError(f"params.yaml: validate.exclude_paths: {listed}: {what}") from None
    return found
