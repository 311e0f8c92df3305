"""probe() on real files of every accepted format and every fault (Pillow, no mocks)."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
from PIL import Image, UnidentifiedImageError

from images import encode, exif_rotated_jpeg, pixels, png_bomb, rgb, write
from imgclf.data.imaging import Limits, Reason, TooLarge, load_rgb, probe

LIMITS = Limits(min_side=16, max_side=20_000, max_pixels=89_478_485)


def corrupt_png() -> bytes:
    """A PNG whose compressed pixel data is garbage but whose chunk CRCs are valid."""
    data = bytearray(encode(rgb(1, (64, 64)), "PNG"))
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8 : start - 4], "big")
    data[start + 10 : start + length] = bytes(range(256)) * ((length - 10) // 256) + bytes((length - 10) % 256)
    crc = zlib.crc32(bytes(data[start - 4 : start + length]))
    data[start + length : start + length + 4] = crc.to_bytes(4, "big")
    return bytes(data)


ACCEPTED = {
    "jpeg": (encode(rgb(1), "JPEG"), "RGB"),
    "cmyk-jpeg": (encode(rgb(2).convert("CMYK"), "JPEG"), "CMYK"),
    "grayscale-png": (encode(rgb(3).convert("L"), "PNG"), "L"),
    "rgba-png": (encode(rgb(4).convert("RGBA"), "PNG"), "RGBA"),
    "16-bit-png": (encode(Image.fromarray(pixels(5)[..., 0].astype("uint16") * 257), "PNG"), "I;16"),
    "palette-png": (encode(rgb(6).convert("P"), "PNG"), "P"),
    "gif": (encode(rgb(7).convert("P"), "GIF"), "P"),
    "bmp": (encode(rgb(8), "BMP"), "RGB"),
    "webp": (encode(rgb(9), "WEBP"), "RGB"),
    "tiff": (encode(rgb(10), "TIFF"), "RGB"),
}


@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_accepted_formats(tmp_path: Path, kind: str) -> None:
    data, mode = ACCEPTED[kind]
    found = probe(write(tmp_path / "x" / "image.bin", data), tmp_path, LIMITS)
    assert (found.reason, found.mode, found.width, found.height) == (None, mode, 32, 32)
    assert found.bytes == len(data) and len(found.sha256) == 64


def test_exif_rotation_reports_the_displayed_size(tmp_path: Path) -> None:
    found = probe(write(tmp_path / "r.jpg", exif_rotated_jpeg((48, 24))), tmp_path, LIMITS)
    assert (found.reason, found.width, found.height) == (None, 24, 48)


FAULTS = {
    "empty": (b"", Reason.EMPTY),
    "text-with-image-extension": (b"not an image\n" * 10, Reason.NOT_AN_IMAGE),
    "truncated-jpeg": (encode(rgb(11, (64, 64)), "JPEG")[:600], Reason.TRUNCATED),
    "truncated-png": (encode(rgb(12, (64, 64)), "PNG")[:2000], Reason.TRUNCATED),
    "corrupt-png": (corrupt_png(), Reason.CORRUPT),
    "icon": (encode(rgb(13), "ICO"), Reason.UNSUPPORTED_FORMAT),
    "too-small": (encode(rgb(14, (15, 40)), "PNG"), Reason.TOO_SMALL),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_faults_are_named(tmp_path: Path, kind: str) -> None:
    data, reason = FAULTS[kind]
    assert probe(write(tmp_path / "image.jpg", data), tmp_path, LIMITS).reason == reason


def test_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = write(tmp_path / "bomb.png", png_bomb())  # 900 Mpx
    assert bomb.stat().st_size < 1_000_000
    assert probe(bomb, tmp_path, LIMITS).reason == Reason.TOO_LARGE
    # Even with our own limit lifted, Pillow's guard (2x its MAX_IMAGE_PIXELS) still refuses it.
    assert probe(bomb, tmp_path, Limits(16, 10**6, 10**10)).reason == Reason.TOO_LARGE


def test_max_side_limits_panoramas(tmp_path: Path) -> None:
    wide = write(tmp_path / "wide.png", encode(rgb(15, (300, 20)), "PNG"))
    assert probe(wide, tmp_path, Limits(16, 299, 10**6)).reason == Reason.TOO_LARGE
    assert probe(wide, tmp_path, Limits(16, 300, 10**6)).reason is None


def test_symlinks_inside_are_read_outside_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "raw", tmp_path / "elsewhere"
    target = write(root / "cat" / "a.png", encode(rgb(16), "PNG"))
    write(outside / "b.png", encode(rgb(17), "PNG"))
    os.symlink(target, root / "cat" / "in.png")
    os.symlink(outside / "b.png", root / "cat" / "out.png")
    assert probe(root / "cat" / "in.png", root, LIMITS).sha256 == probe(target, root, LIMITS).sha256
    assert probe(root / "cat" / "out.png", root, LIMITS).reason == Reason.SYMLINK_OUTSIDE


def test_special_files_are_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    assert probe(tmp_path / "pipe.png", tmp_path, LIMITS).reason == Reason.NOT_A_FILE


def test_probe_never_modifies_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "cmyk.jpg", encode(rgb(18).convert("CMYK"), "JPEG"))
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    probe(path, tmp_path, LIMITS)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before


def header_only_bomb(width: int = 13_000, height: int = 13_000) -> bytes:
    """A PNG whose header declares width x height but whose pixel data stops after 100
    bytes: decoding it would fail as truncated, so a "too large" proves nothing was decoded."""
    data = png_bomb(width, height)
    return data[: data.index(b"IDAT") + 100]


def test_load_rgb_refuses_a_bomb_from_its_header() -> None:
    bomb = png_bomb(13_000, 13_000)  # 169 Mpx in 0.2 MB: under Pillow's own hard limit
    with pytest.raises(TooLarge, match="13000x13000 is 169000000 pixels, over the limit of 89478485"):
        load_rgb(bomb, max_pixels=89_478_485)
    with pytest.raises(TooLarge, match="over the limit"):
        load_rgb(header_only_bomb(), max_pixels=89_478_485)  # truncated pixel data: never reached


def test_load_rgb_limit_is_inclusive() -> None:
    data = encode(rgb(21, (100, 50)), "PNG")
    assert load_rgb(data, max_pixels=5000).shape == (50, 100, 3)
    with pytest.raises(TooLarge):
        load_rgb(data, max_pixels=4999)


def test_load_rgb_opens_only_the_accepted_formats() -> None:
    # Pillow could decode an icon (or run Ghostscript on an EPS); serving reads strangers' bytes.
    with pytest.raises(UnidentifiedImageError):
        load_rgb(encode(rgb(22), "ICO"))
    mpo = encode(rgb(23), "MPO", save_all=True, append_images=[rgb(24)])  # what cameras write for JPEG
    for kind, data in {**{k: d for k, (d, _) in ACCEPTED.items()}, "mpo": mpo}.items():
        assert load_rgb(data).shape == (32, 32, 3), kind
