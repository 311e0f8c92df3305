"""Image factories for tests: real files in every accepted format, and every fault.

Nothing here touches the network; every image is drawn from a seeded generator.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def pixels(seed: int, size: tuple[int, int] = (32, 32), channels: int = 3) -> np.ndarray:
    """Smooth waves plus seeded noise: (height, width, channels) uint8, unique per seed.

    The waves' directions and phases are the seed's own, so that two seeds also differ in
    their coarse layout: validate's perceptual hash sees that layout, and images sharing
    one (as a single gradient under the noise did) would be grouped as near-duplicates.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    base = np.zeros((height, width))
    for fx, fy, phase in zip(rng.integers(0, 3, 3), rng.integers(0, 3, 3), rng.uniform(0, 2 * np.pi, 3), strict=True):
        base += np.cos(np.pi * (fx * u + fy * v + 0.5) + phase)
    base = (base - base.min()) * 191 / max(float(np.ptp(base)), 1e-9)  # 0..191
    noise = rng.integers(0, 64, size=(height, width, channels))
    return (base[..., None] + noise).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def rgb(seed: int, size: tuple[int, int] = (32, 32)) -> Image.Image:
    return Image.fromarray(pixels(seed, size))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def class_folder(
    root: Path, label: str, count: int, seed: int, size: tuple[int, int] = (32, 32), fmt: str = "PNG"
) -> None:
    """``count`` distinct images under ``root/label``."""
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    for i in range(count):
        write(root / label / f"{label}_{i:03d}.{ext}", encode(rgb(seed * 10_000 + i, size), fmt))


def learnable_folder(root: Path, labels: tuple[str, ...], count: int, size: tuple[int, int] = (32, 32)) -> None:
    """``count`` distinct PNGs per label under ``root/label``, each label with its own colour
    cast (label i raises channel i % 3): a tiny network tells them apart in two epochs, where
    class_folder's images are barely learnable. For tests whose model must be good (the gate's
    floors, a served prediction)."""
    for index, label in enumerate(labels):
        for i in range(count):
            image = pixels(index * 10_000 + i, size) // 2  # (height, width, 3) in 0..127
            image[..., index % 3] += 128
            write(root / label / f"{label}_{i:03d}.png", encode(Image.fromarray(image), "PNG"))


def scene(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A picture with a layout of its own, unique per seed: ``rgb``'s waves and noise under
    four solid discs and boxes, whose edges a perceptual hash follows through a crop."""
    from PIL import ImageDraw

    image = rgb(seed, size)
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng([seed, 15])
    for corners, colour in zip(rng.uniform(-0.1, 1.1, (4, 2, 2)), rng.integers(0, 256, (4, 3)), strict=True):
        (x0, x1), (y0, y1) = sorted(corners[0] * size[0]), sorted(corners[1] * size[1])
        (draw.ellipse if x1 - x0 > y1 - y0 else draw.rectangle)((x0, y0, x1, y1), fill=tuple(map(int, colour)))
    return image


def _crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    width, height = image.size
    box = (round(width * left), round(height * top), width - round(width * right), height - round(height * bottom))
    return image.crop(box)


# The copies a near-duplicate check must group with their original: file kind -> bytes.
# Each crop removes at most 5% of the picture's area.
NEAR_COPIES = {
    "reencoded": lambda im: encode(im, "JPEG", quality=60),
    "resized_half": lambda im: encode(im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), "PNG"),
    "resized_up": lambda im: encode(im.resize((im.width * 3 // 2, im.height * 3 // 2)), "JPEG", quality=90),
    "cropped_one_side": lambda im: encode(_crop(im, 0.025, 0, 0, 0), "PNG"),
    "cropped_5pct_one_side": lambda im: encode(_crop(im, 0, 0.05, 0, 0), "JPEG", quality=90),
    "cropped_all_sides": lambda im: encode(_crop(im, 0.012, 0.012, 0.012, 0.012), "PNG"),
    "cropped_2_5pct_all_sides": lambda im: encode(_crop(im, 0.025, 0.025, 0.025, 0.025), "JPEG", quality=90),
    "mirrored": lambda im: encode(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG", quality=85),
}


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A real, valid 1-bit PNG of width x height zeros: ~100 KB on disk, 900 Mpx decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def exif_rotated_jpeg(size: tuple[int, int] = (48, 24)) -> bytes:
    """A JPEG stored as width x height whose EXIF orientation 6 displays it rotated 90 degrees."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(rgb(77, size), "JPEG", exif=exif.tobytes())


# Expected outcome of every file that faulty_folder() writes: path -> reason ("" = ok).
def faulty_folder(root: Path, outside: Path) -> dict[str, str]:
    """A raw folder with every accepted format and every fault validate must name.

    Returns the expected manifest status of each candidate: "" for ok, else the reason.
    """
    expected: dict[str, str] = {}

    def put(rel: str, data: bytes, reason: str = "") -> None:
        write(root / rel, data)
        expected[rel] = reason

    # Enough plain images per class for the suite's count and balance checks.
    for label, seed in (("cat", 1), ("dog", 2)):
        for i in range(12):
            put(f"{label}/{label}_{i:02d}.png", encode(rgb(seed * 1000 + i), "PNG"))
    # Every accepted format and mode, odd names included.
    put("cat/photo.jpg", encode(rgb(3, (40, 30)), "JPEG", quality=90))
    put("cat/UPPER CASE.JPG", encode(rgb(4), "JPEG"))
    put("cat/cmyk.jpg", encode(rgb(5).convert("CMYK"), "JPEG"))
    put("cat/rotated.jpeg", exif_rotated_jpeg())
    put("cat/rgba.png", encode(rgb(6).convert("RGBA"), "PNG"))
    put("cat/sixteen.png", encode(Image.fromarray(pixels(7)[..., 0].astype(np.uint16) * 257), "PNG"))
    put("cat/palette.png", encode(rgb(8).convert("P"), "PNG"))
    put("dog/anim.gif", encode(rgb(9).convert("P"), "GIF"))
    put("dog/bitmap.bmp", encode(rgb(10), "BMP"))
    put("dog/web.webp", encode(rgb(11), "WEBP", lossless=True))
    put("dog/scan.tiff", encode(rgb(12), "TIFF"))
    put("dog/café noir ü.png", encode(rgb(13), "PNG"))
    put("dog/nested/deeper/inside.png", encode(rgb(14), "PNG"))
    # Faults.
    good_jpeg = encode(rgb(15, (64, 64)), "JPEG", quality=95)
    put("cat/truncated.jpg", good_jpeg[: len(good_jpeg) // 2], "truncated")
    put("cat/empty.png", b"", "empty")
    put("cat/notes.jpg", b"these are notes, not an image\n" * 4, "not_an_image")
    put("dog/icon.ico", encode(rgb(16), "ICO"), "unsupported_format")
    put("dog/tiny.png", encode(rgb(17, (8, 8)), "PNG"), "too_small")
    put("dog/bomb.png", png_bomb(), "too_large")
    dup = encode(rgb(18), "PNG")
    put("cat/dup_a.png", dup)
    put("cat/dup_b.png", dup, "duplicate")
    conflict = encode(rgb(19), "PNG")
    put("cat/same.png", conflict, "label_conflict")
    put("dog/same.png", conflict, "label_conflict")
    # Symlinks: one leaving the folder, one to a file inside (a duplicate of its target).
    write(outside / "secret.png", encode(rgb(20), "PNG"))
    os.symlink(outside / "secret.png", root / "dog" / "link_out.png")
    expected["dog/link_out.png"] = "symlink_outside"
    os.symlink(root / "cat" / "cat_00.png", root / "cat" / "zz_link_in.png")
    expected["cat/zz_link_in.png"] = "duplicate"
    # Skipped, not in the manifest: OS clutter and top-level files.
    write(root / "cat" / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(root / "dog" / "Thumbs.db", b"\xd0\xcf\x11\xe0")
    write(root / "cat" / "._photo.jpg", b"\x00\x05\x16\x07")
    write(root / "README.txt", b"my images\n")
    return expected


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """(mode, content) of every entry under root, links not followed: compares folders exactly."""
    state: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = os.lstat(path)
            if path.is_symlink():
                content = os.readlink(path)
            elif path.is_file():
                content = zlib.crc32(path.read_bytes()).to_bytes(4, "big").hex() + f":{info.st_mtime_ns}"
            else:
                content = ""
            state[path.relative_to(root).as_posix()] = (info.st_mode, content)
    return state
