"""Photo-like image folders for benchmarks: Animal-MNIST shapes at photo scale, with fur.

``generate(out, classes, per_class, seed)`` writes ``out/<class>/<class>_<nnnn>.<ext>``:

* sizes 120-640 px on each side, aspect ratios from 9:16 to 16:9; RGB colour;
* a textured background: a gradient, soft colour blobs and sensor noise;
* one animal per picture: an Animal-MNIST silhouette (read with ``imgclf.data.demo``'s
  array-only unpickler), cropped to its extent, its longer side scaled to 30-80 % of
  the picture's short side, placed anywhere, mirrored
  half the time;
* the class's evidence at photo scale: the animal's coat carries a class-specific pattern
  (stripes, spots, scales, ...) with a period of 3-6 px *at 128 px* (so 3-30 px in the
  file, in proportion to its size), coloured from a class palette that shares colours
  with its neighbours. A 28-px thumbnail sees 0.7-1.3 px per period: the pattern
  averages out, as fur and faces do in a thumbnail of a real photo;
* the shape is a weak cue on purpose: ``SHAPE_MIX`` of the pictures take the
  silhouette of a random class of the set (pose and breed vary in real photos), so
  the coat is the only cue that is always right;
* files as cameras and phones write them: JPEG at quality 50-95 (some with an EXIF
  orientation tag and the pixels stored turned, so ``ImageOps.exif_transpose`` shows
  them upright), a few CMYK and grayscale JPEGs, RGBA and RGB PNGs.

Deterministic for a seed (numpy's seeded generator per picture, fixed encoder
settings); ~3-5 ms per picture, in worker processes when there are many.

    uv run --frozen python bench/photogen.py OUT --preset catdog --per-class 1000 [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgclf.data import demo

PRESETS: dict[str, tuple[str, ...]] = {"catdog": ("cat", "dog"), "animals10": demo.CLASSES}
SIDE = (120, 640)  # px, each side
ASPECT = (9 / 16, 16 / 9)  # width / height
OBJECT = (0.30, 0.80)  # animal's box side / the picture's short side
PERIOD = (3.0, 6.0)  # coat pattern period in px at a 128-px input
SHAPE_MIX = 0.3  # pictures whose silhouette is drawn from a random class of the set
QUALITY = (50, 95)  # JPEG quality
ORIENTED = 0.15  # RGB JPEGs stored turned, with the EXIF orientation tag that undoes it
ORIENTATION = 0x0112
# Pillow's exif_transpose applies, for each tag, the op on the left; the file stores the
# upright picture turned by its inverse.
_STORE_OP = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
# Fractions of pictures in the rarer file kinds; the rest are RGB JPEGs. No WebP by
# default (Picture encodes it): the seeds' ImageDataGenerator skips .webp files, and the
# benchmark scores both recipes on the same files.
KINDS = (("cmyk_jpeg", 0.03), ("gray_jpeg", 0.03), ("rgba_png", 0.03), ("rgb_png", 0.04))
EXTENSION = {"jpeg": "jpg", "png": "png", "webp": "webp"}

# A shared pool of coat colours; class k paints with POOL[k .. k+4] (mod 10), so
# neighbouring classes share most colours and the mean colour is a weak cue.
POOL = np.array(
    [
        [186, 140, 92],  # tan
        [120, 82, 50],  # brown
        [214, 190, 150],  # cream
        [90, 90, 96],  # slate
        [200, 120, 60],  # ginger
        [160, 160, 150],  # grey
        [230, 220, 205],  # off-white
        [150, 110, 80],  # fawn
        [110, 100, 70],  # olive brown
        [176, 150, 130],  # taupe
    ],
    dtype=np.float32,
)
PALETTE_WIDTH = 5
# Coat pattern per Animal-MNIST class; cat and dog (the 2-class set) are tabby stripes and spots.
PATTERN = {
    "bear": "crosshatch",
    "bird": "scales",
    "cat": "stripes",
    "cow": "patches",
    "dog": "spots",
    "elephant": "rings",
    "giraffe": "honeycomb",
    "horse": "dashes",
    "sheep": "dots",
    "zebra": "zigzag",
}


@dataclass(frozen=True)
class Picture:
    """One generated picture: its upright pixels and how it is stored."""

    name: str  # file name, extension included
    upright: Image.Image  # RGB, as a viewer shows it
    kind: str  # rgb_jpeg | cmyk_jpeg | gray_jpeg | rgba_png | rgb_png | webp
    quality: int  # JPEG/WebP quality (unused for PNG)
    orientation: int  # EXIF orientation tag, 1 = none

    def encode(self) -> bytes:
        """The file's bytes: fixed encoder settings, no timestamps, so a seed gives the same bytes."""
        image = self.upright
        if self.orientation != 1:
            image = image.transpose(_STORE_OP[self.orientation])
        buffer = io.BytesIO()
        if self.kind in ("rgb_jpeg", "cmyk_jpeg", "gray_jpeg"):
            mode = {"rgb_jpeg": "RGB", "cmyk_jpeg": "CMYK", "gray_jpeg": "L"}[self.kind]
            extra: dict[str, Any] = {}
            if self.orientation != 1:
                exif = Image.Exif()
                exif[ORIENTATION] = self.orientation
                extra["exif"] = exif.tobytes()
            image.convert(mode).save(buffer, format="JPEG", quality=self.quality, **extra)
        elif self.kind == "rgba_png":
            rgba = image.convert("RGBA")
            rgba.putalpha(_vignette(image.size))
            rgba.save(buffer, format="PNG", compress_level=1)
        elif self.kind == "rgb_png":
            image.save(buffer, format="PNG", compress_level=1)
        else:
            image.save(buffer, format="WEBP", quality=self.quality, method=0)
        return buffer.getvalue()


def _vignette(size: tuple[int, int]) -> Image.Image:
    """An alpha channel that fades the corners a little (opaque over the animal's usual place)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    return Image.fromarray(np.clip(255 - 120 * np.clip(r - 0.9, 0, 1), 0, 255).astype(np.uint8), mode="L")


@cache
def silhouettes() -> dict[str, Any]:
    """Animal-MNIST's (1000, 28, 28) uint8 silhouettes per class, bright on black."""
    from importlib import resources

    package = resources.files("animal_mnist") / "data" / "Animal_MNIST"
    images = demo.load_arrays(package.joinpath(demo._DATA_FILE).read_bytes())
    labels = demo.load_arrays(package.joinpath(demo._LABEL_FILE).read_bytes())
    return {name: images[labels == i] for i, name in enumerate(demo.CLASSES)}


def _tight(shape: Any) -> Any:
    """The silhouette cropped to its bright pixels, so the box is the animal's extent."""
    rows, cols = np.flatnonzero(shape.max(axis=1) > 32), np.flatnonzero(shape.max(axis=0) > 32)
    if rows.size == 0:
        return shape
    return shape[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _coat(kind: str, h: int, w: int, period: float, rng: np.random.Generator) -> Any:
    """(h, w) float32 in [0, 1]: where the coat's darker colour shows. About half covered."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    # A slow warp: fur stripes bend, spots are not on a perfect grid.
    warp = rng.uniform(0.3, 0.9) * period
    bend = rng.uniform(4, 9) * period
    phase = rng.uniform(0, 2 * math.pi, size=2)
    u0 = xx * math.cos(angle) + yy * math.sin(angle)
    v0 = -xx * math.sin(angle) + yy * math.cos(angle)
    u = u0 + warp * np.sin(v0 / bend * 2 * math.pi + phase[0])
    v = v0 + warp * np.sin(u0 / bend * 2 * math.pi + phase[1])
    k = 2 * math.pi / period
    if kind == "stripes":
        t = np.sin(k * u)
    elif kind == "spots":
        t = np.sin(k * u) * np.sin(k * v) * 2 - 0.6
    elif kind == "dots":  # small dense dots
        t = np.sin(1.6 * k * u) * np.sin(1.6 * k * v) * 2 - 0.9
    elif kind == "crosshatch":
        t = np.maximum(np.sin(k * u), np.sin(k * v)) - 0.4
    elif kind == "scales":  # offset rows of arcs
        row = np.floor(v * k / (2 * math.pi))
        t = np.sin(k * u + math.pi * row) * np.cos(k * v / 2) * 1.5
    elif kind == "patches":  # blotches at twice the period, broken by fine speckle
        t = np.sin(k / 2 * u) * np.sin(k / 2 * v) + 0.5 * np.sin(2 * k * u + 1.3)
    elif kind == "rings":
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        t = np.sin(k * np.hypot(yy - cy, xx - cx) + 0.5 * np.sin(k * u / 3))
    elif kind == "honeycomb":
        t = sum(np.cos(k * (u * math.cos(a) + v * math.sin(a))) for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)) - 0.6
    elif kind == "dashes":
        t = np.minimum(np.sin(k * u), np.sin(k / 3 * v) + 0.3)
    elif kind == "zigzag":
        t = np.sin(k * (u + period * 0.6 * np.abs(((v / period) % 2) - 1)))
    else:
        raise ValueError(f"unknown coat pattern {kind!r}")
    # A soft threshold: edges of ~1/6 period, like fur, not a binary mask.
    return np.clip(0.5 + 2.5 * t, 0.0, 1.0)


def _background(h: int, w: int, rng: np.random.Generator) -> Any:
    """(h, w, 3) float32: a gradient and soft blobs, computed at 1/8 scale and enlarged."""
    sh, sw = max(2, h // 8), max(2, w // 8)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    a, b = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    g = (xx / sw - 0.5) * math.cos(angle) + (yy / sh - 0.5) * math.sin(angle) + 0.5
    field = a + (b - a) * np.clip(g, 0, 1)[..., None]
    for _ in range(int(rng.integers(3, 9))):
        cy, cx = rng.uniform(0, sh), rng.uniform(0, sw)
        radius = rng.uniform(0.08, 0.35) * max(sh, sw)
        weight = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))[..., None] * rng.uniform(0.3, 0.8)
        field = field * (1 - weight) + rng.uniform(0, 255, size=3).astype(np.float32) * weight
    small = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8), mode="RGB")
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)


def picture(classes: Sequence[str], label: str, index: int, seed: int = 0) -> Picture:
    """The ``index``-th picture of class ``label`` in a set of ``classes``, for ``seed``."""
    rng = np.random.default_rng([seed, demo.CLASSES.index(label), index])
    aspect = math.exp(rng.uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
    long_side = int(rng.integers(SIDE[0], SIDE[1] + 1))
    w, h = (long_side, round(long_side / aspect)) if aspect >= 1 else (round(long_side * aspect), long_side)
    w, h = min(max(w, SIDE[0]), SIDE[1]), min(max(h, SIDE[0]), SIDE[1])
    canvas = _background(h, w, rng)

    shape_class = str(rng.choice(list(classes))) if rng.random() < SHAPE_MIX else label
    shapes = silhouettes()[shape_class]
    shape = _tight(shapes[int(rng.integers(len(shapes)))])
    # The animal's longer side, stretched a little either way (breeds differ).
    box = rng.uniform(*OBJECT) * min(w, h)
    stretch = rng.uniform(0.85, 1.2)
    scale = box / max(shape.shape[0], shape.shape[1] * stretch)
    bw = min(w, max(8, round(shape.shape[1] * stretch * scale)))
    bh = min(h, max(8, round(shape.shape[0] * scale)))
    mask_image = Image.fromarray(shape, mode="L").resize((bw, bh), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        mask_image = mask_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    alpha = np.asarray(mask_image, dtype=np.float32)[..., None] / 255.0

    period = rng.uniform(*PERIOD) * max(w, h) / 128
    k = demo.CLASSES.index(label)
    colours = POOL[[(k + j) % len(POOL) for j in rng.choice(PALETTE_WIDTH, size=2, replace=False)]]
    light = colours[0] * rng.uniform(0.85, 1.15)
    dark = colours[1] * rng.uniform(0.35, 0.55)  # the pattern's dark phase, as darker fur
    t = _coat(PATTERN[label], bh, bw, period, rng)[..., None]
    # Light from one side: the animal is not a flat sticker.
    lit = np.linspace(rng.uniform(0.7, 0.9), rng.uniform(1.0, 1.2), bw, dtype=np.float32)[None, :, None]
    coat = (light * (1 - t) + dark * t) * lit

    y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    region = canvas[y0 : y0 + bh, x0 : x0 + bw]
    canvas[y0 : y0 + bh, x0 : x0 + bw] = region * (1 - alpha) + coat * alpha
    canvas += rng.normal(0.0, rng.uniform(3, 10), size=(h, w, 1)).astype(np.float32)  # sensor noise
    upright = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), mode="RGB")

    kind, quality, orientation = storage(label, index, seed)
    fmt = "png" if kind.endswith("png") else "webp" if kind == "webp" else "jpeg"
    return Picture(f"{label}_{index:04d}.{EXTENSION[fmt]}", upright, kind, quality, orientation)


def storage(label: str, index: int, seed: int = 0) -> tuple[str, int, int]:
    """How picture ``index`` of ``label`` is stored: (kind, quality, EXIF orientation).

    From a random stream of its own, so it is cheap to ask without drawing the picture.
    """
    rng = np.random.default_rng([seed, demo.CLASSES.index(label), index, 1])
    draw, kind = rng.random(), "rgb_jpeg"
    for name, fraction in KINDS:
        if draw < fraction:
            kind = name
            break
        draw -= fraction
    orientation = 1
    if kind == "rgb_jpeg" and rng.random() < ORIENTED:
        orientation = int(rng.choice(sorted(_STORE_OP)))
    return kind, int(rng.integers(QUALITY[0], QUALITY[1] + 1)), orientation


def _write(job: tuple[Path, tuple[str, ...], str, int, int, int]) -> int:
    """Write pictures ``start .. stop - 1`` of one class; returns how many."""
    out, classes, label, start, stop, seed = job
    folder = out / label
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(start, stop):
        pic = picture(classes, label, index, seed)
        (folder / pic.name).write_bytes(pic.encode())
    return stop - start


def generate(out: Path, classes: Sequence[str], per_class: int, seed: int = 0, workers: int | None = None) -> None:
    """Write ``per_class`` photo-like pictures of each class under ``out/<class>/``.

    Args:
        classes: Animal-MNIST class names (``PRESETS`` has the two sets the benchmarks use).
        per_class: pictures per class; silhouettes repeat beyond 1000, coats never do.
        seed: the same seed gives the same bytes; files already there are overwritten.
        workers: processes; None = one per core for more than 1000 pictures (each
            worker pays ~1 s to start and load the silhouettes).
    """
    unknown = sorted(set(classes) - set(demo.CLASSES))
    if unknown or len(set(classes)) < 2:
        raise ValueError(f"classes must be two or more of {demo.CLASSES}, got {list(classes)}")
    names = tuple(classes)
    chunk = 100
    jobs = [
        (out, names, label, start, min(start + chunk, per_class), seed)
        for label in names
        for start in range(0, per_class, chunk)
    ]
    if workers is None:
        workers = (os.cpu_count() or 1) if per_class * len(names) > 1000 else 1
    if workers <= 1:
        for job in jobs:
            _write(job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(_write, jobs):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="catdog")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    generate(args.out, PRESETS[args.preset], args.per_class, args.seed, args.workers)
    total = args.per_class * len(PRESETS[args.preset])
    print(f"{total} pictures in {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
