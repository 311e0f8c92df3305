"""Split assignment: a function of content hash and split params only."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from imgclf.data.manifest import EXCLUDED, OK, ManifestRow
from imgclf.params import Split
from imgclf.stages.split import SPLITS, SplitRow, assign, fractions, split_rows


def rows(n: int, labels: tuple[str, ...] = ("cat", "dog"), salt: str = "") -> list[ManifestRow]:
    return [
        ManifestRow(f"{labels[i % len(labels)]}/{salt}{i}.png", labels[i % len(labels)], OK, "",
                    hashlib.sha256(f"{salt}{i}".encode()).hexdigest(), 32, 32, "RGB", 10)
        for i in range(n)
    ]  # fmt: skip


def test_adding_or_removing_other_images_moves_nothing() -> None:
    cfg = Split()
    base = {r.path: r.split for r in split_rows(rows(2000), cfg)}
    grown = {r.path: r.split for r in split_rows(rows(2000) + rows(500, salt="new"), cfg)}
    shrunk = {r.path: r.split for r in split_rows(rows(2000)[::2], cfg)}
    assert all(grown[path] == split for path, split in base.items())
    assert all(base[path] == split for path, split in shrunk.items())


def test_same_bytes_same_split_wherever_they_sit() -> None:
    sha = hashlib.sha256(b"x").hexdigest()
    assert len({assign(sha, Split()) for _ in range(3)}) == 1


def test_raising_val_never_moves_an_image_out_of_test() -> None:
    hashes = [r.sha256 for r in rows(3000)]
    before = [assign(h, Split(val=0.1, test=0.2)) for h in hashes]
    after = [assign(h, Split(val=0.3, test=0.2)) for h in hashes]
    assert all((b == "test") == (a == "test") for b, a in zip(before, after, strict=True))
    assert all(a != "train" for b, a in zip(before, after, strict=True) if b == "val")


def test_seed_reshuffles() -> None:
    hashes = [r.sha256 for r in rows(500)]
    moved = sum(assign(h, Split(seed=0)) != assign(h, Split(seed=1)) for h in hashes)
    assert moved > 100


def test_only_ok_rows_are_split() -> None:
    data = rows(10)
    data[3] = ManifestRow(data[3].path, "dog", EXCLUDED, "empty", "", 0, 0, "", 0)
    assert [r.path for r in split_rows(data, Split())] == [r.path for r in data if r.status == OK]


@pytest.mark.parametrize(("val", "test"), [(0.15, 0.15), (0.1, 0.2), (0.0, 0.25)])
def test_class_fractions_within_tolerance_on_large_classes(val: float, test: float) -> None:
    cfg = Split(val=val, test=test, tolerance=0.03)
    report, misses = fractions(split_rows(rows(6000, ("a", "b", "c")), cfg), cfg)
    assert misses == []
    for label in ("a", "b", "c"):
        assert sum(report[label][s] for s in SPLITS) == pytest.approx(1.0, abs=1e-3)
        assert report[label]["test"] == pytest.approx(test, abs=0.03)
        assert report[label]["val"] == pytest.approx(val, abs=0.03)


def test_a_miss_is_reported_only_where_the_class_is_large_enough_to_judge() -> None:
    cfg = Split(val=0.15, test=0.15, tolerance=0.05)
    hashes = [r for r in rows(4000, ("a",)) if assign(r.sha256, cfg) == "train"]  # a class with no test images
    assert fractions(split_rows(hashes[:900], cfg), cfg)[1]  # 900 images: a 15-point gap is no accident
    assert not fractions(split_rows(hashes[:20], cfg), cfg)[1]  # 20 images: too few to judge


def grouped(data: list[ManifestRow], size: int) -> list[ManifestRow]:
    """``data`` with every ``size`` consecutive rows of a class made one group, keyed by
    the smallest content hash among them, as validate keys groups."""
    out = []
    for start in range(0, len(data), 2 * size):
        for label in ("cat", "dog"):
            members = [r for r in data[start : start + 2 * size] if r.label == label]
            key = min(r.sha256 for r in members)
            out.extend(replace(r, group=key) for r in members)
    return out


def test_every_member_of_a_group_takes_the_split_of_the_groups_key() -> None:
    data = grouped(rows(600), size=5)
    result = split_rows(data, Split())
    splits: dict[str, set[str]] = {}
    for r in result:
        splits.setdefault(r.group, set()).add(r.split)
    assert all(len(s) == 1 for s in splits.values())  # no group spans two splits
    assert {s for r in result for s in [r.split]} == set(SPLITS)
    assert all(r.split == assign(r.group, Split()) for r in result)


def test_an_image_joining_a_group_moves_old_images_only_when_it_brings_the_smallest_hash() -> None:
    cfg = Split()
    old = rows(2, ("cat",))  # two near-duplicates, grouped under the smaller hash
    key = min(r.sha256 for r in old)
    before = {r.path: r.split for r in split_rows([replace(r, group=key) for r in old], cfg)}
    for salt in ("x", "y", "z", "w"):
        [new] = rows(1, ("cat",), salt=salt)
        joined = min(key, new.sha256)
        after = {r.path: r.split for r in split_rows([replace(r, group=joined) for r in [*old, new]], cfg)}
        moved = any(after[path] != split for path, split in before.items())
        assert after[new.path] == after[old[0].path] == after[old[1].path]
        assert not moved or new.sha256 < key


def test_a_group_weighs_in_the_tolerance_check_as_its_size() -> None:
    """2000 images in groups of 50 are 40 independent draws: no test image is a miss of
    0.15 that 2000 single images would show, but that 40 draws cannot be judged on."""
    cfg = Split(tolerance=0.05)
    placed = [SplitRow(f"cat/{i}.png", "cat", "val" if i < 300 else "train", group=f"g{i // 50}") for i in range(2000)]
    assert fractions(placed, cfg)[1] == []
    singles = [replace(r, group="") for r in placed]
    assert fractions(singles, cfg)[1] == ["cat: test fraction 0.000 vs 0.15"]
