"""The pure parts of the validate stage: listing candidates and resolving duplicates."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from images import write
from imgclf.manifest import EXCLUDED, OK, ManifestRow
from imgclf.scan import is_clutter, list_candidates, resolve_duplicates
from imgclf.stages.validate import summarize


def row(path: str, sha: str, status: str = OK, reason: str = "") -> ManifestRow:
    return ManifestRow(path, path.split("/")[0], status, reason, sha, 32, 32, "RGB", 100)


def test_duplicates_keep_the_first_path_and_conflicts_exclude_every_copy() -> None:
    rows = [
        row("cat/a.png", "1"),
        row("cat/b.png", "1"),
        row("cat/c.png", "2"),
        row("dog/c.png", "2"),
        row("dog/d.png", "3"),
        row("dog/e.png", "3", EXCLUDED, "too_small"),
    ]
    resolved = {r.path: (r.status, r.reason) for r in resolve_duplicates(rows)}
    assert resolved == {
        "cat/a.png": (OK, ""),
        "cat/b.png": (EXCLUDED, "duplicate"),
        "cat/c.png": (EXCLUDED, "label_conflict"),
        "dog/c.png": (EXCLUDED, "label_conflict"),
        "dog/d.png": (OK, ""),
        "dog/e.png": (EXCLUDED, "too_small"),
    }


@pytest.mark.parametrize(
    ("name", "clutter"),
    [(".DS_Store", True), ("._IMG_1.JPG", True), ("Thumbs.db", True), ("desktop.ini", True), ("cat.jpg", False)],
)
def test_clutter(name: str, clutter: bool) -> None:
    assert is_clutter(name) is clutter


def test_list_candidates_walks_nested_folders_and_counts_what_it_skips(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for rel in ["cat/a.jpg", "cat/x/y/b.PNG", "dog/ü é.png", "dog/.DS_Store", "dog/Thumbs.db", "notes.txt"]:
        write(raw / rel, b"x")
    (raw / ".ipynb_checkpoints").mkdir()
    write(tmp_path / "elsewhere" / "c.png", b"x")
    os.symlink(tmp_path / "elsewhere", raw / "bird")  # a class folder linking outside
    os.symlink(raw / "cat" / "x", raw / "dog" / "linked")  # a folder link inside: listed, not followed
    skipped: Counter[str] = Counter()
    assert list_candidates(raw, skipped) == ["cat/a.jpg", "cat/x/y/b.PNG", "dog/linked", "dog/ü é.png"]
    assert skipped == Counter({"clutter": 3, "top_level": 1, "symlink_outside": 1})


def test_summary_counts_every_reason_even_zero() -> None:
    rows = [row("cat/a.png", "1"), row("dog/b.png", "2"), row("dog/c.png", "", EXCLUDED, "empty")]
    report = summarize(rows, Counter(clutter=2), {"x": {"success": True, "observed": 0, "detail": "d"}})
    assert report["files"] == {"candidates": 3, "ok": 2, "excluded": 1, "skipped": 2}
    assert report["by_reason"]["empty"] == 1 and report["by_reason"]["label_conflict"] == 0
    assert report["by_class"] == {"cat": {"ok": 1, "excluded": 0}, "dog": {"ok": 1, "excluded": 1}}
    assert report["expectations"] == {"x": {"success": True, "observed": 0}}
    assert report["success"] is True and report["excluded_fraction"] == pytest.approx(1 / 3, abs=1e-5)
