"""bench/photogen.py: the photo-like folders the photo benchmark trains on."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image, ImageOps

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("photogen", BENCH / "photogen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["photogen"] = module  # worker processes unpickle its functions by this name
    spec.loader.exec_module(module)
    return module


photogen = _load()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("photos")
    photogen.generate(out, ("cat", "dog"), 20, seed=3, workers=1)
    return out


def test_one_folder_per_class_with_per_class_files(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["cat", "dog"]
    for label in ("cat", "dog"):
        files = sorted((folder / label).iterdir())
        assert len(files) == 20
        assert all(f.name.startswith(f"{label}_") for f in files)


def test_sizes_aspects_and_formats_are_photo_like(folder: Path) -> None:
    sizes, formats = [], set()
    for path in folder.rglob("*.*"):
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            sizes.append(upright.size)
            formats.add((image.format, image.mode))
    sides = np.array(sizes)
    assert sides.min() >= photogen.SIDE[0] and sides.max() <= photogen.SIDE[1]
    aspects = sides[:, 0] / sides[:, 1]
    assert aspects.min() < 0.8 and aspects.max() > 1.4  # portrait and landscape both
    assert len({tuple(s) for s in sizes}) > 30  # sizes vary, not a few fixed ones
    assert ("JPEG", "RGB") in formats and len(formats) >= 2


@pytest.mark.parametrize(
    ("kind", "fmt", "mode"),
    [
        ("rgb_jpeg", "JPEG", "RGB"),
        ("cmyk_jpeg", "JPEG", "CMYK"),
        ("gray_jpeg", "JPEG", "L"),
        ("rgba_png", "PNG", "RGBA"),
        ("rgb_png", "PNG", "RGB"),
        ("webp", "WEBP", "RGB"),
    ],
)
def test_each_file_kind_encodes_as_named(kind: str, fmt: str, mode: str) -> None:
    pic = photogen.picture(("cat", "dog"), "cat", 0, seed=1)
    pic = photogen.Picture(pic.name, pic.upright, kind, 80, 1)
    with Image.open(io.BytesIO(pic.encode())) as image:
        assert (image.format, image.mode, image.size) == (fmt, mode, pic.upright.size)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_stores_turned_pixels_that_transpose_upright(orientation: int) -> None:
    pic = photogen.picture(("cat", "dog"), "dog", 1, seed=1)
    pic = photogen.Picture(pic.name, pic.upright, "rgb_jpeg", 95, orientation)
    with Image.open(io.BytesIO(pic.encode())) as image:
        assert image.getexif()[photogen.ORIENTATION] == orientation
        w, h = pic.upright.size
        assert image.size == ((h, w) if orientation in (6, 8) else (w, h))  # stored turned
        shown = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.int16)
    assert np.abs(shown - np.asarray(pic.upright, dtype=np.int16)).mean() < 6  # upright, up to JPEG loss


def test_files_come_in_every_kind_at_their_rates() -> None:
    stored = [photogen.storage(label, i, seed=0) for label in ("cat", "dog") for i in range(500)]
    kinds = {kind: sum(s[0] == kind for s in stored) / len(stored) for kind, _, _ in stored}
    assert kinds.keys() == {"rgb_jpeg", "cmyk_jpeg", "gray_jpeg", "rgba_png", "rgb_png"}
    assert all(0.01 < kinds[kind] < 0.07 for kind, _ in photogen.KINDS)
    assert 0.08 < sum(s[2] != 1 for s in stored) / len(stored) < 0.2
    qualities = [s[1] for s in stored]
    assert min(qualities) == 50 and max(qualities) == 95


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, folder: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    photogen.generate(again, ("cat", "dog"), 20, seed=3, workers=2)  # workers do not change bytes
    photogen.generate(other, ("cat", "dog"), 20, seed=4, workers=1)
    names = sorted(p.relative_to(folder) for p in folder.rglob("*.*"))
    assert names == sorted(p.relative_to(again) for p in again.rglob("*.*"))
    assert all((folder / n).read_bytes() == (again / n).read_bytes() for n in names)
    same = [n for n in names if (other / n).exists() and (other / n).read_bytes() == (folder / n).read_bytes()]
    assert not same


def test_classes_differ_in_coat_not_in_mean_colour() -> None:
    # The class evidence is the coat's pattern; its palette overlaps between classes, so
    # the mean colour a thumbnail keeps is a weak cue (the bench checks the F1 gap).
    assert len(set(photogen.PATTERN.values())) == len(photogen.PATTERN)
    assert set(photogen.PRESETS["animals10"]) == set(photogen.PATTERN)
    k = {name: photogen.demo.CLASSES.index(name) for name in ("cat", "dog")}
    palette = {name: {(i + j) % len(photogen.POOL) for j in range(photogen.PALETTE_WIDTH)} for name, i in k.items()}
    assert palette["cat"] & palette["dog"]


def test_unknown_or_single_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two or more"):
        photogen.generate(tmp_path, ("cat", "unicorn"), 1)
    with pytest.raises(ValueError, match="two or more"):
        photogen.generate(tmp_path, ("cat",), 1)
    assert not any(tmp_path.iterdir())
