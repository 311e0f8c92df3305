"""The pure parts of the validate stage: listing candidates, resolving duplicates, recording names."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from images import encode, rgb, write
from imgclf.data.imaging import Limits
from imgclf.data.looks import Look
from imgclf.data.manifest import COLUMNS, EXCLUDED, OK, ManifestRow, escape_name, read_manifest
from imgclf.data.scan import exclude_listed, is_clutter, list_candidates, resolve_duplicates, scan
from imgclf.stages.validate import summarize
from imgclf.tables import read_csv, write_csv


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


# Every character csv must quote or keep: line breaks of both kinds, commas, quotes, non-ASCII.
ODD_NAMES = ["cat/car\riage.png", "cat/line\nfeed.png", "cat/crlf\r\n.png", 'cat/a,"b".png', "cat/ü é.png"]


def test_odd_names_round_trip_through_the_manifest_and_every_csv(tmp_path: Path) -> None:
    rows = [row(name, str(i)) for i, name in enumerate(ODD_NAMES)]
    write_csv(tmp_path / "manifest.csv", rows, COLUMNS)
    assert read_manifest(tmp_path / "manifest.csv") == rows
    assert [r["path"] for r in read_csv(tmp_path / "manifest.csv")] == ODD_NAMES
    # RFC 4180 on disk: CRLF row ends, and the fields with a line break are quoted.
    assert (tmp_path / "manifest.csv").read_bytes().count(b"\r\n") == len(rows) + 2  # header, rows, one in a name


@pytest.mark.parametrize(
    ("name", "recorded"),
    [
        ("cat/plain.png", "cat/plain.png"),
        ("cat/ü é\r.png", "cat/ü é\r.png"),  # UTF-8 names are kept as they are
        (os.fsdecode(b"cat/caf\xe9.png"), "cat/caf\\xe9.png"),  # Latin-1 e-acute
        (os.fsdecode(b"\xff\xfe/x.png"), "\\xff\\xfe/x.png"),
    ],
)
def test_names_that_are_not_utf8_are_escaped_like_bytes_reprs(name: str, recorded: str) -> None:
    assert escape_name(name) == recorded
    recorded.encode("utf-8")  # always writable as UTF-8


def test_a_name_that_is_not_utf8_is_excluded_unread_and_recorded_escaped(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write(raw / "cat" / "ok.png", encode(rgb(1), "PNG"))
    with open(os.fsencode(raw / "cat") + b"/caf\xe9.png", "wb") as out:
        out.write(encode(rgb(2), "PNG"))
    rows, _ = scan(raw, Limits(16, 20_000, 89_478_485), workers=1)
    assert [(r.path, r.status, r.reason, r.sha256) for r in rows] == [
        ("cat/caf\\xe9.png", EXCLUDED, "bad_filename", ""),
        ("cat/ok.png", OK, "", rows[1].sha256),
    ]


def near(path: str, sha: str, phash: str) -> ManifestRow:
    return replace(row(path, sha), phash=phash)


def seen(phash: str, mirrored: str, *trimmed: str) -> Look:
    return Look(int(phash, 16), int(mirrored, 16), 128.0, 40.0, tuple(int(t, 16) for t in trimmed))


def test_near_duplicates_form_groups_kept_within_a_class_and_excluded_across_classes() -> None:
    # 0x0f: 4 bits from 0x00, 8 bits from 0xff. At distance 4, a~b~c chain into one group.
    rows = [
        near("cat/a.png", "5", "0" * 16),
        near("cat/b.png", "3", "0" * 14 + "0f"),
        near("cat/c.png", "4", "0" * 14 + "ff"),  # 4 bits from b, 8 from a: joined through b
        near("cat/d.png", "3", "0" * 14 + "0f"),  # the same bytes as b: a duplicate
        near("cat/e.png", "6", "f" * 16),
        near("dog/e.png", "7", "f" * 15 + "e"),  # 1 bit from cat/e: a conflict
        near("dog/f.png", "8", "ff" * 4 + "00" * 4),
    ]
    resolved = {r.path: (r.status, r.reason, r.group) for r in resolve_duplicates(rows, distance=4)}
    assert resolved == {
        "cat/a.png": (OK, "", "3"),  # the group's key: its smallest content hash
        "cat/b.png": (OK, "", "3"),
        "cat/c.png": (OK, "", "3"),
        "cat/d.png": (EXCLUDED, "duplicate", "3"),
        "cat/e.png": (EXCLUDED, "label_conflict", "6"),
        "dog/e.png": (EXCLUDED, "label_conflict", "6"),
        "dog/f.png": (OK, "", ""),
    }
    # Without a distance only the same bytes group, as before near-duplicates.
    assert {r.path: r.group for r in resolve_duplicates(rows) if r.group} == {"cat/b.png": "3", "cat/d.png": "3"}


def test_a_mirrored_copy_is_found_through_the_mirrored_hash() -> None:
    rows = [near("cat/a.png", "1", "00ff" * 4), near("dog/b.png", "2", "ff00" * 4)]
    assert {r.reason for r in resolve_duplicates(rows, distance=4)} == {""}
    mirrored = {"cat/a.png": seen("00ff" * 4, "ff00" * 4), "dog/b.png": seen("ff00" * 4, "00ff" * 4)}
    assert {r.reason for r in resolve_duplicates(rows, 4, mirrored)} == {"label_conflict"}


def test_a_cropped_copy_is_found_through_a_trimmed_hash_of_its_original() -> None:
    rows = [near("cat/a.png", "1", "00ff" * 4), near("dog/b.png", "2", "0f0f" * 4)]
    # a's trimmed hashes: the second is b's hash.
    trimmed = {"cat/a.png": seen("00ff" * 4, "ff00" * 4, "f0f0" * 4, "0f0f" * 4)}
    assert {r.reason for r in resolve_duplicates(rows, 4, trimmed)} == {"label_conflict"}
    untrimmed = {"cat/a.png": seen("00ff" * 4, "ff00" * 4, "f0f0" * 4)}
    assert {r.reason for r in resolve_duplicates(rows, 4, untrimmed)} == {""}


def test_excluding_one_side_of_a_conflict_keeps_the_other() -> None:
    rows = [near("cat/a.png", "1", "0" * 16), near("dog/a.png", "2", "0" * 15 + "1")]
    resolved = resolve_duplicates(exclude_listed(rows, {"dog/a.png"}), distance=4)
    assert [(r.status, r.reason) for r in resolved] == [(OK, ""), (EXCLUDED, "excluded_by_user")]


def test_summary_counts_groups_names_each_conflict_and_counts_warnings_and_user_exclusions() -> None:
    rows = [
        replace(row("cat/a.png", "1"), group="1", warnings="dark"),
        replace(row("cat/b.png", "2"), group="1", warnings="blank;dark"),
        replace(row("cat/c.png", "3", EXCLUDED, "label_conflict"), group="3"),
        replace(row("dog/c.png", "4", EXCLUDED, "label_conflict"), group="3"),
        row("dog/d.png", "5", EXCLUDED, "excluded_by_user"),
        *(row(f"dog/{i}.png", str(10 + i)) for i in range(5)),
    ]
    report = summarize(rows, Counter(), {}, distance=4)
    assert report["near_duplicates"] == {"distance": 4, "groups": 2, "images": 4, "kept": 2, "label_conflicts": 1}
    assert report["label_conflicts"] == [["cat/c.png", "dog/c.png"]]
    assert report["warnings"] == {"blank": 1, "dark": 2, "bright": 0, "extreme_aspect": 0}
    assert report["by_reason"]["excluded_by_user"] == 1
    assert report["excluded_fraction"] == pytest.approx(2 / 9, abs=1e-5)  # the user's choice is no broken file
