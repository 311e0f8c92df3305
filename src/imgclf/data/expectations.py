"""The Great Expectations suites that a manifest must pass before anything trains.

Two tables are checked: the manifest itself (one row per file) and the per-class
counts derived from it, because GX has no "count per group" expectation. Each
expectation has a stable name, used as its key in reports/validation.json.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgclf import owned
from imgclf.atomic import publish
from imgclf.data import datadocs
from imgclf.data.imaging import Reason
from imgclf.data.looks import QualityWarning
from imgclf.data.manifest import COLUMNS, OK, ManifestRow
from imgclf.params import Validate

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context import EphemeralDataContext
    from great_expectations.expectations import Expectation
    from great_expectations.expectations.row_conditions import ComparisonCondition, RowConditionType

# The run time GX shows and files pages under: not the clock, which would change every page's bytes.
_FIXED_TIME = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def frames(rows: list[ManifestRow], cfg: Validate) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The manifest, and one row per class with its ok count and its ratio to the largest class.

    Classes with no usable image (and expected classes with no folder) count 0, so
    that they fail the count check instead of vanishing from it.
    """
    import pandas as pd

    manifest = pd.DataFrame([vars(row) for row in rows], columns=list(COLUMNS))
    # One true/false column per quality warning, for the expectations that count them.
    for kind in QualityWarning:
        manifest[kind.value] = [kind.value in row.warnings.split(";") for row in rows]
    ok = Counter(row.label for row in rows if row.status == OK)
    labels = sorted({row.label for row in rows} | set(cfg.classes or ()))
    counts = pd.DataFrame({"label": labels, "count": [ok[label] for label in labels]})
    largest = max(counts["count"].max() if len(counts) else 0, 1)
    counts["ratio_to_largest"] = counts["count"] / largest
    return manifest, counts


def suites(rows: list[ManifestRow], cfg: Validate) -> dict[str, dict[str, Expectation]]:
    """Expectations by table, each under the name the report uses."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    ok = Column("status") == OK
    classes = sorted(cfg.classes) if cfg.classes else sorted({row.label for row in rows})
    return {
        "manifest": {
            # Every label is one of the class folders (validate.classes, when set).
            "labels_in_classes": gxe.ExpectColumnValuesToBeInSet(column="label", value_set=classes),
            # A classifier needs at least two classes to tell apart.
            "at_least_two_classes": gxe.ExpectColumnUniqueValueCountToBeBetween(
                column="label", min_value=2, row_condition=ok
            ),
            # Usable images lie within the size bounds (re-checks what validate decided per file).
            "width_within_bounds": gxe.ExpectColumnValuesToBeBetween(
                column="width", min_value=cfg.min_side, max_value=cfg.max_side, row_condition=ok
            ),
            "height_within_bounds": gxe.ExpectColumnValuesToBeBetween(
                column="height", min_value=cfg.min_side, max_value=cfg.max_side, row_condition=ok
            ),
            # No bytes are used twice: a duplicate could land in train and test at once.
            "unique_content": gxe.ExpectColumnValuesToBeUnique(column="sha256", row_condition=ok),
            # Too many excluded files means a broken export, not a few bad images (the
            # files the user chose to exclude are not counted).
            "excluded_fraction": gxe.ExpectColumnValuesToBeInSet(
                column="status",
                value_set=[OK],
                mostly=1 - cfg.max_bad_fraction,
                row_condition=Column("reason") != Reason.EXCLUDED_BY_USER.value,
            ),
            # Counted, never failed: what validate found beyond broken files.
            **counts(ok),
        },
        "class_counts": {
            # Enough images per class to fill train, val and test.
            "min_per_class": gxe.ExpectColumnMinToBeBetween(column="count", min_value=cfg.min_per_class),
            # The smallest class is at least 1/max_imbalance of the largest.
            "class_balance": gxe.ExpectColumnValuesToBeBetween(
                column="ratio_to_largest", min_value=round(1 / cfg.max_imbalance, 6)
            ),
        },
    }


def counts(ok: ComparisonCondition) -> dict[str, Expectation]:
    """Expectations that always pass and observe a count, so that the report and the Data
    Docs show it: near-duplicate groups, label conflicts, user exclusions, quality warnings."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    def rows_where(condition: RowConditionType, description: str) -> Expectation:
        return gxe.ExpectTableRowCountToBeBetween(min_value=0, row_condition=condition, description=description)

    found: dict[str, Expectation] = {
        "near_duplicate_groups": gxe.ExpectColumnUniqueValueCountToBeBetween(
            column="group",
            min_value=0,
            row_condition=ok & (Column("group") != ""),
            description="Counted: groups of copies or near-duplicates among the usable images (one split each).",
        ),
        "label_conflicts": rows_where(
            Column("reason") == Reason.LABEL_CONFLICT.value,
            "Counted: files excluded because a copy or near-duplicate sits under another class "
            "(the validation report lists each group's paths).",
        ),
        "excluded_by_user": rows_where(
            Column("reason") == Reason.EXCLUDED_BY_USER.value, "Counted: files listed in validate.exclude_paths."
        ),
    }
    for kind in QualityWarning:
        found[f"warning_{kind.value}"] = rows_where(
            ok & (Column(kind.value) == True),  # noqa: E712 - a GX condition, not a Python comparison
            f"Counted, not excluded: usable images flagged {kind.value} (data.looks).",
        )
    return found


def check(rows: list[ManifestRow], cfg: Validate, docs_dir: Path, run_name: str) -> dict[str, dict[str, Any]]:
    """Run both suites, render Data Docs into ``docs_dir``, return each expectation's outcome.

    Args:
        run_name: names the validation run in Data Docs; derived from the data (the
            manifest's digest) so that the same data gives the same pages.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    owned.check(docs_dir, "paths.data_docs")  # before the work: a folder of the user's there is an error
    tables = dict(zip(("manifest", "class_counts"), frames(rows, cfg), strict=True))
    outcomes: dict[str, dict[str, Any]] = {}
    validated: list[datadocs.Validated] = []
    # GX would name the run after the clock, in the pages' paths and text: a fixed time and
    # the data's name keep the pages' bytes, and so DVC's hash of them, the same for the same data.
    run_id = RunIdentifier(run_name=run_name, run_time=_FIXED_TIME)
    build = Path(tempfile.mkdtemp(dir=_parent(docs_dir), prefix=f".{docs_dir.name}."))
    publish(build)
    try:
        context = _context(build)
        source = context.data_sources.add_pandas("imgclf")
        for table, expectations in suites(rows, cfg).items():
            suite = context.suites.add(gx.ExpectationSuite(name=table, expectations=list(expectations.values())))
            batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table)
            # ValidationDefinition.run (unlike Batch.validate) stores the result, so Data Docs show it.
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=table, data=batch, suite=suite)
            )
            result = definition.run(batch_parameters={"dataframe": tables[table]}, result_format="BASIC", run_id=run_id)
            found = _outcomes(result, list(expectations))
            outcomes.update(found)
            validated.append(
                datadocs.Validated(
                    suite=table,
                    run_name=run_name,
                    success=bool(result.success),
                    passed=sum(e["success"] for e in found.values()),
                    total=len(found),
                    page="",  # known once the site is built
                    suite_page=f"expectations/{table}.html",
                )
            )
        _unstamp(context)
        context.build_data_docs()
        validated = [
            replace(v, page=next((build / "validations" / v.suite).rglob("*.html")).relative_to(build).as_posix())
            for v in validated
        ]
        datadocs.finish(build, validated, _FIXED_TIME)
        owned.mark(build, "validate")
        owned.remove(docs_dir, "paths.data_docs")
        os.replace(build, docs_dir)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return outcomes


def _unstamp(context: EphemeralDataContext) -> None:
    """Give each stored result the run's fixed time as its load time (GX records the clock)."""
    store = context.validation_results_store
    for key in store.list_keys():
        result = store.get(key)
        if result is not None:
            result.meta["batch_markers"]["ge_load_time"] = _FIXED_TIME.strftime("%Y%m%dT%H%M%S.%fZ")
            store.set(key, result)


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


def _context(docs_dir: Path) -> EphemeralDataContext:
    """In-memory stores; only Data Docs touch the disk. No analytics, no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        # GX passes disable= to tqdm itself, so TQDM_DISABLE does not silence it; this does.
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            "local": {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _outcomes(result: ExpectationSuiteValidationResult, names: list[str]) -> dict[str, dict[str, Any]]:
    """JSON-ready outcomes in suite order: success, a number observed, and a readable detail.

    ``observed`` is the aggregate GX measured (e.g. the smallest class count) or, for
    per-row expectations, how many rows broke it; where the bound is ``mostly`` (a share
    of the rows), the share of rows that broke it, so that it compares with the bound.
    """
    outcomes = {}
    for name, item in zip(names, result.results, strict=True):
        described = item.describe_dict()  # JSON-safe already (numpy values converted)
        found, kwargs = described["result"], described["kwargs"]
        bounds = ", ".join(
            f"{k} {kwargs[k]}" for k in ("min_value", "max_value", "mostly") if kwargs.get(k) is not None
        )
        if "observed_value" in found:
            observed = found["observed_value"]
            detail = f"observed {observed}"
        else:
            count = found.get("unexpected_count")
            examples = ", ".join(map(str, (found.get("partial_unexpected_list") or [])[:3]))
            share = found.get("unexpected_percent")
            observed = round((share or 0.0) / 100, 6) if kwargs.get("mostly") is not None else count
            detail = f"{count} rows" + (f" ({share:.1f}%)" if share else "") + " unexpected"
            detail += f", e.g. {examples}" if examples else ""
        outcomes[name] = {
            "success": bool(described["success"]),
            "observed": observed,
            "detail": f"{detail}; expected {bounds}" if bounds else detail,
        }
    return outcomes
