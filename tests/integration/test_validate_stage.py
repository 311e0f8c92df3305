"""The validate stage on a real folder with every fault: real Pillow, real GX, raw folder untouched;
its Data Docs byte-identical for the same data, their index a static list of the validations."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from images import NEAR_COPIES, class_folder, encode, faulty_folder, scene, snapshot, write
from imgclf.data.imaging import Limits
from imgclf.data.manifest import COLUMNS
from imgclf.data.scan import scan
from imgclf.errors import DataValidationError, ParamsError
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
    assert "validation failed: 1 of 15 expectations: excluded_fraction (11 rows (22.4%) unexpected" in result.stderr
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


class _Index(HTMLParser):
    """The index's table rows (cell texts and links), and every script or stylesheet it loads."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self.fetched: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []
        elif tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        elif tag == "script" or (tag == "link" and found.get("rel") == "stylesheet"):
            self.fetched.append(str(found.get("src") or found.get("href") or "inline script"))

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_data_gives_identical_docs_whose_index_lists_each_validation(
    write_params: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for seed, label in enumerate(("cat", "dog")):
        class_folder(tmp_path / "data" / "raw", label, 12, seed=seed + 1)
    params = load_params(write_params(validate={"min_per_class": 10}))
    docs = params.path("data_docs")

    validate.run(params)
    first = _tree(docs)
    # Another machine, in another time zone (GX prints times in the local one).
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        validate.run(params)
    finally:
        monkeypatch.undo()
        time.tzset()

    assert _tree(docs) == first  # GX's run time, load time, uuids and cache busters are gone
    page = (docs / "index.html").read_text(encoding="utf-8")
    parsed = _Index()
    parsed.feed(page)
    assert parsed.fetched == []  # nothing to load: it reads the same offline
    sha = json.loads(params.path("validation_report").read_text(encoding="utf-8"))["manifest_sha256"]
    body = [row for row in parsed.rows if row]
    assert [(r[0], r[1], r[2], r[3]) for r in body] == [
        ("passed", "manifest", "13 of 13", f"manifest-{sha[:12]}"),
        ("passed", "class_counts", "2 of 2", f"manifest-{sha[:12]}"),
    ]
    for link in parsed.links:
        assert (docs / link).is_file(), link
    assert any(link.startswith("validations/manifest/") for link in parsed.links)
    assert not any("?d=" in p.read_text(encoding="utf-8") for p in docs.rglob("*.html"))  # no render-time stamp


def test_groups_conflicts_warnings_and_user_exclusions_reach_the_report_and_the_data_docs(
    write_params: Callable[..., Path], tmp_path: Path
) -> None:
    raw = tmp_path / "data" / "raw"
    for i in range(6):
        write(raw / "cat" / f"cat_{i}.png", encode(scene(i), "PNG"))
        write(raw / "dog" / f"dog_{i}.png", encode(scene(100 + i), "PNG"))
    write(raw / "cat" / "cat_0_small.jpg", NEAR_COPIES["resized_half"](scene(0)))  # kept, grouped with cat_0
    write(raw / "dog" / "cat_1_mirrored.jpg", NEAR_COPIES["mirrored"](scene(1)))  # a conflict with cat_1
    write(raw / "dog" / "cat_2_again.jpg", NEAR_COPIES["reencoded"](scene(2)))  # a conflict, but excluded
    write(raw / "dog" / "night.png", encode(Image.new("RGB", (64, 48), (3, 3, 5)), "PNG"))  # blank and dark
    write(raw / "dog" / "panorama.png", encode(scene(7, (400, 100)), "PNG"))
    (tmp_path / "checked.csv").write_text("path,label,suggested,score\ndog/cat_2_again.jpg,dog,cat,0.01\n")
    limits = {"min_per_class": 5, "max_bad_fraction": 0.5}
    params = load_params(write_params(validate={**limits, "exclude_paths": "checked.csv"}))

    report = validate.run(params).report

    assert report["near_duplicates"] == {"distance": 4, "groups": 2, "images": 4, "kept": 2, "label_conflicts": 1}
    assert report["label_conflicts"] == [["cat/cat_1.png", "dog/cat_1_mirrored.jpg"]]
    assert report["by_reason"]["excluded_by_user"] == 1 and report["exclude_paths_unmatched"] == 0
    assert report["warnings"] == {"blank": 1, "dark": 1, "bright": 0, "extreme_aspect": 1}
    observed = {name: e["observed"] for name, e in report["expectations"].items()}
    assert observed["near_duplicate_groups"] == 1 and observed["label_conflicts"] == 2
    assert observed["excluded_by_user"] == 1 and observed["warning_dark"] == 1 and observed["warning_blank"] == 1
    manifest = {row["path"]: row for row in csv.DictReader(params.path("manifest").open(encoding="utf-8"))}
    assert manifest["cat/cat_0_small.jpg"]["group"] == manifest["cat/cat_0.png"]["group"] != ""
    assert manifest["dog/night.png"]["warnings"] == "blank;dark" and len(manifest["cat/cat_3.png"]["phash"]) == 16
    page = next((params.path("data_docs") / "validations" / "manifest").rglob("*.html")).read_text(encoding="utf-8")
    assert (
        "Counted: groups of copies or near-duplicates" in page
        and "Counted: files listed in validate.exclude_paths" in page
    )

    # The same list, written in params.yaml or as a text file, excludes the same file.
    (tmp_path / "checked.txt").write_text("# checked by hand\ndog/cat_2_again.jpg\n\n")
    for listed in (["dog/cat_2_again.jpg"], "checked.txt"):
        params = load_params(write_params(validate={**limits, "exclude_paths": listed}))
        assert validate.exclusions(params) == ["dog/cat_2_again.jpg"]
    params = load_params(write_params(validate={**limits, "exclude_paths": "missing.txt"}))
    with pytest.raises(ParamsError, match=r"^params.yaml: validate.exclude_paths: missing.txt: No such file"):
        validate.run(params)
