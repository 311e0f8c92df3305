"""validate then split on real folders: stable assignments as images come and go."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from images import class_folder, encode, rgb, write
from runner import imgclf


def read_split(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as src:
        return {row["path"]: row["split"] for row in csv.DictReader(src)}


def test_split_is_stable_when_images_are_added_and_removed(write_params: Callable[..., Path], tmp_path: Path) -> None:
    raw = tmp_path / "data" / "raw"
    for seed, label in enumerate(("cat", "dog")):
        class_folder(raw, label, 40, seed=seed + 1)
    write_params(validate={"min_per_class": 10})
    for command in ("validate", "split"):
        assert imgclf(command, cwd=tmp_path).returncode == 0
    first = read_split(tmp_path / "data" / "split.csv")
    assert set(first.values()) == {"train", "val", "test"} and len(first) == 80

    # New images arrive, one old image is removed (by the user, outside imgclf).
    for i in range(20):
        write(raw / "cat" / f"new_{i}.png", encode(rgb(9000 + i), "PNG"))
    (raw / "dog" / "dog_000.png").unlink()
    for command in ("validate", "split"):
        assert imgclf(command, cwd=tmp_path).returncode == 0
    second = read_split(tmp_path / "data" / "split.csv")

    assert len(second) == 99
    assert all(second[path] == split for path, split in first.items() if path in second)
    report = json.loads((tmp_path / "reports" / "split.json").read_text(encoding="utf-8"))
    assert sum(report["counts"].values()) == 99


def test_split_without_validation_is_refused(write_params: Callable[..., Path], tmp_path: Path) -> None:
    write_params()
    result = imgclf("split", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no validated manifest: run `imgclf validate` first"
