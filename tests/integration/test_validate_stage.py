"""The validate stage on a real folder with every fault: real Pillow, real GX, raw folder untouched."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from images import class_folder, faulty_folder, snapshot
from imgclf.data.imaging import Limits
from imgclf.data.manifest import COLUMNS
from imgclf.data.scan import scan
from imgclf.errors import DataValidationError
from imgclf.params import load_params
from imgclf.stages import validate
from runner import imgclf


@pytest.fixture
def faulty(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    raw = tmp_path / "data" / "raw"
    return raw, faulty_folder(raw, tmp_path / "outside")


def test_every_fault_is_excluded_and_named_and_raw_is_untouched(
    faulty: tuple[Path, dict[str, str]], write_params: Callable[..., Path], tmp_path: Path
) -> None:
    raw, expected = faulty
    before = snapshot(raw)
    params = load_params(write_params(validate={"max_bad_fraction": 0.5}))

    result = validate.run(params)

    assert snapshot(raw) == before
    with (tmp_path / "data" / "manifest.csv").open(encoding="utf-8", newline="") as src:
        manifest = list(csv.DictReader(src))
    assert tuple(manifest[0]) == COLUMNS
    assert {r["path"]: r["reason"] for r in manifest} == expected
    assert all((r["status"] == "ok") == (r["reason"] == "") for r in manifest)
    assert all(r["label"] == r["path"].split("/")[0] for r in manifest)
    report = json.loads((tmp_path / "reports" / "validation.json").read_text(encoding="utf-8"))
    assert report == result.report and report["success"] is True
    assert report["files"]["ok"] == sum(1 for reason in expected.values() if not reason)
    assert report["skipped"] == {"clutter": 3, "top_level": 1, "symlink_outside": 0}
    assert report["by_reason"]["label_conflict"] == 2 and report["by_reason"]["too_large"] == 1
    assert all(e["success"] for e in report["expectations"].values())
    assert (tmp_path / "reports" / "data_docs" / "index.html").is_file()


def test_too_many_bad_files_fail_the_suite_with_a_readable_summary(
    faulty: tuple[Path, dict[str, str]], write_params: Callable[..., Path], tmp_path: Path
) -> None:
    write_params()  # default max_bad_fraction 0.1; the faulty folder is ~22% bad
    result = imgclf("validate", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "validation failed: 1 of 8 expectations: excluded_fraction (11 rows (22.4%) unexpected" in result.stderr
    report = json.loads((tmp_path / "reports" / "validation.json").read_text(encoding="utf-8"))
    assert report["success"] is False and report["expectations"]["excluded_fraction"]["success"] is False
    # A share of the rows, as its bound (mostly) is, not a count.
    assert report["expectations"]["excluded_fraction"]["observed"] == pytest.approx(0.224, abs=5e-4)
    # The failed report stops the next stage from trusting the manifest.
    follow = imgclf("split", cwd=tmp_path)
    assert follow.returncode == 1 and "validation failed" in follow.stderr
    assert not (tmp_path / "data" / "split.csv").exists()


@pytest.mark.parametrize(
    ("counts", "validate_params", "failing"),
    [
        ({"cat": 12, "dog": 3}, {}, {"min_per_class", "class_balance"}),
        ({"cat": 12}, {}, {"at_least_two_classes"}),
        ({"cat": 12, "dog": 12, "bird": 12}, {"classes": ["cat", "dog"]}, {"labels_in_classes"}),
        ({"cat": 12, "dog": 12}, {"classes": ["cat", "dog", "cow"]}, {"min_per_class", "class_balance"}),
        ({"cat": 30, "dog": 12}, {"max_imbalance": 2.0}, {"class_balance"}),
    ],
)
def test_folder_level_expectations(
    write_params: Callable[..., Path], tmp_path: Path, counts: dict[str, int], validate_params: dict, failing: set[str]
) -> None:
    for seed, (label, count) in enumerate(counts.items()):
        class_folder(tmp_path / "data" / "raw", label, count, seed=seed + 1)
    params = load_params(write_params(validate={"min_per_class": 10, **validate_params}))
    with pytest.raises(DataValidationError) as caught:
        validate.run(params)
    report = json.loads(params.path("validation_report").read_text(encoding="utf-8"))
    assert {name for name, e in report["expectations"].items() if not e["success"]} == failing
    assert all(name in str(caught.value) for name in failing)


def test_missing_raw_folder_is_one_clear_line(write_params: Callable[..., Path], tmp_path: Path) -> None:
    write_params()
    result = imgclf("validate", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: data/raw: no such folder; put one folder of images per class there"


def test_parallel_and_serial_scans_agree(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for seed, label in enumerate(("cat", "dog")):
        class_folder(raw, label, 200, seed=seed + 1, fmt="JPEG")
    limits = Limits(16, 20_000, 89_478_485)
    serial, _ = scan(raw, limits, workers=1)
    parallel, _ = scan(raw, limits, workers=2)
    assert serial == parallel and len(serial) == 400
