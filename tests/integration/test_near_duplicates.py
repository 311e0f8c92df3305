"""Near-duplicates planted in real files: re-encoded, resized, cropped and mirrored copies
of generated pictures, under the same class and under another, through validate's scan
(real Pillow decoding and hashing) and the split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from images import NEAR_COPIES, encode, scene, write
from imgclf.data.imaging import Limits
from imgclf.data.manifest import EXCLUDED, OK
from imgclf.data.scan import scan
from imgclf.params import Split, Validate
from imgclf.stages.split import assign, split_rows

ORIGINALS = 24  # pictures, each with one copy of every kind in NEAR_COPIES
LIMITS = Limits(16, 20_000, 89_478_485)


def planted(raw: Path) -> dict[str, tuple[str, str]]:
    """Originals under cat; the copies of even ones under dog (conflicts), of odd ones under
    cat (one group each). Returns copy path -> (its original's path, its kind)."""
    copies = {}
    for i in range(ORIGINALS):
        picture = scene(i)
        original = f"cat/original_{i:02d}.png"
        write(raw / original, encode(picture, "PNG"))
        for kind, make in NEAR_COPIES.items():
            path = f"{'dog' if i % 2 == 0 else 'cat'}/{kind}_{i:02d}.img"
            write(raw / path, make(picture))
            copies[path] = (original, kind)
    return copies


def test_planted_copies_are_grouped_and_conflicts_exclude_every_member(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    copies = planted(raw)
    rows, _ = scan(raw, LIMITS, workers=1, distance=Validate().near_duplicate_distance)
    by_path = {row.path: row for row in rows}
    found: Counter[str] = Counter()
    for path, (original, kind) in copies.items():
        copy, source = by_path[path], by_path[original]
        grouped = copy.group != "" and copy.group == source.group
        found[kind] += grouped
        if grouped and copy.label != source.label:  # a group under two classes: all excluded
            members = [r for r in rows if r.group == copy.group]
            assert {(r.status, r.reason) for r in members} == {(EXCLUDED, "label_conflict")}
        elif grouped:
            assert copy.status == source.status == OK
    print("grouped with their original, of", ORIGINALS, dict(found))
    for kind in ("reencoded", "resized_half", "resized_up", "mirrored"):
        assert found[kind] == ORIGINALS, kind
    # Crops, pHash's weak side, found through the original's trimmed hashes
    # (looks.Look.trimmed): 24 of 24 of each kind here; through the hash alone, 21-22 and 11
    # of 24 of one side (2.5 and 5 %), 24 and 19 of every side (1.2 and 2.5 %).
    for kind in ("cropped_one_side", "cropped_5pct_one_side", "cropped_all_sides", "cropped_2_5pct_all_sides"):
        assert found[kind] >= 0.9 * ORIGINALS, kind
    # No two different originals are grouped: the pictures are unrelated.
    originals = [by_path[f"cat/original_{i:02d}.png"].group for i in range(ORIGINALS)]
    assert len({g for g in originals if g}) == len([g for g in originals if g])

    split = split_rows(rows, Split())
    splits_of: dict[str, set[str]] = {}
    for row in split:
        if row.group:
            splits_of.setdefault(row.group, set()).add(row.split)
    assert splits_of and all(len(s) == 1 for s in splits_of.values())  # no group spans two splits
    # Without the groups, the content hash alone would have put copies apart from their original.
    apart = [p for p in copies if by_path[p].status == OK and assign(by_path[p].sha256, Split()) != assign(
        by_path[copies[p][0]].sha256, Split())]  # fmt: skip
    assert len(apart) > 10
    placed = {row.path: row.split for row in split}
    assert all(placed[p] == placed[copies[p][0]] for p in apart if by_path[p].group)


def test_without_a_distance_only_identical_bytes_group(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    copies = planted(raw)
    rows, _ = scan(raw, LIMITS, workers=1, distance=None)
    assert not any(row.group for row in rows) and all(row.status == OK for row in rows)
    assert len(rows) == ORIGINALS + len(copies)
