"""Which files ``imgclf predict`` reads, and the reason it gives for each one it cannot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from images import encode, pixels, rgb, write
from imgclf.data.imaging import Limits
from imgclf.serving.predict import _read, list_files

LIMITS = Limits(min_side=1, max_side=20000, max_pixels=89478485)


def test_folders_are_walked_recursively_sorted_without_clutter(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    for rel in ("b.png", "a.jpg", "sub/z.png", "sub/deeper/c.png", "other/x.gif"):
        write(root / rel, b"x")
    write(root / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(root / "sub" / "Thumbs.db", b"\xd0\xcf\x11\xe0")
    write(root / "sub" / "._z.png", b"\x00\x05\x16\x07")
    (root / "empty_folder").mkdir()

    found = list(list_files([root]))
    assert [p.relative_to(root).as_posix() for p in found] == [
        "a.jpg",
        "b.png",
        "other/x.gif",
        "sub/deeper/c.png",
        "sub/z.png",
    ]


def test_files_and_missing_targets_are_yielded_as_given(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    write(folder / "in.png", b"x")
    single = write(tmp_path / "single.png", b"x")
    missing = tmp_path / "missing.png"
    # Targets keep their order; a file is yielded even if it would be clutter in a folder.
    clutter = write(tmp_path / ".hidden.png", b"x")
    assert list(list_files([single, missing, folder, clutter])) == [single, missing, folder / "in.png", clutter]


def test_no_targets_no_files() -> None:
    assert list(list_files([])) == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_good_image_reads_as_rgb(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path / f"ok.{fmt.lower()}", encode(rgb(1, (20, 14)), fmt))
    image, error = _read(path, LIMITS)
    assert error is None
    assert image.shape == (14, 20, 3) and image.dtype == np.uint8
    if fmt == "PNG":
        assert np.array_equal(image, pixels(1, (20, 14)))


def test_grayscale_image_reads_as_three_channels(tmp_path: Path) -> None:
    path = write(tmp_path / "gray.png", encode(rgb(2).convert("L"), "PNG"))
    image, error = _read(path, LIMITS)
    assert error is None and image.shape == (32, 32, 3)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.png", b"these are notes, not an image\n" * 4, "not_an_image"),
        ("empty.png", b"", "empty"),
        ("truncated.png", encode(rgb(3, (64, 64)), "PNG")[:100], "truncated"),
        ("icon.ico", encode(rgb(4), "ICO"), "unsupported_format"),
    ],
)
def test_unusable_files_give_a_reason(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    assert _read(write(tmp_path / name, data), LIMITS) == (None, reason)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    assert _read(tmp_path / "gone.png", LIMITS) == (None, "not found")


def test_limits_apply_before_decoding(tmp_path: Path) -> None:
    path = write(tmp_path / "wide.png", encode(rgb(5, (64, 8)), "PNG"))
    assert _read(path, Limits(min_side=1, max_side=32, max_pixels=89478485)) == (None, "too_large")
    assert _read(path, Limits(min_side=16, max_side=20000, max_pixels=89478485)) == (None, "too_small")


def test_a_folder_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    image, error = _read(tmp_path, LIMITS)
    assert image is None
    assert error is not None and error.startswith("unreadable (")
