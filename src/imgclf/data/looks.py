"""What an image looks like, from a 32x32 grey thumbnail: a perceptual hash for finding
near-duplicates, and the grey levels behind the quality warnings.

validate takes the thumbnail from the reduced-size decode it already does for every
file (imaging.inspect_bytes), so the hash costs no second read or decode. The hash is
imagehash's pHash, bit for bit (``str(imagehash.phash(image))`` is the manifest's
``phash``: it matched on all 2 000 demo images, 1 000 photo-like JPEGs and 1 000 photogen
pictures, mirrored hashes too; tests/unit/test_nearduplicates.py checks it): the
same thumbnail (a Lanczos resize of the grey image to 32x32), the same unnormalised
DCT-II on both axes, the 8x8 lowest frequencies against their median. It is computed
here with two 32x32 matrix products rather than by imagehash, whose scipy.fftpack import
cost each fresh validate worker 0.6 s and whose two calls per image (the image and its
mirror) cost 0.3 ms: the mirror's coefficients are the image's with the odd horizontal
frequencies negated, so one transform gives both hashes.

A cropped copy moves every edge, and pHash with it: a 5 % crop of one side left 32-36 %
of photo-like copies within 4 bits, a 2.5 % crop of every side 37-56 %. So a photo-sized
image (short side >= ``TRIM_FROM``) also gets the hashes of itself with ``TRIM`` of one
side cut, each side in turn, and with TRIM / 2 cut from every side (``Look.trimmed``): a
copy cropped by 2-5 % of a side, or 1-2.5 % of every side, lies near one of them (97-100 %
at 4 bits, bench/near_duplicates.py). They are only ever compared with other images' own
hashes, never stored. Small images get none: the demo's 28-px silhouettes differ by a
pixel or two, and trimmed hashes chained them into groups of hundreds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

THUMBNAIL = 32  # px: phash's own input, 8 x its highfreq_factor of 4
HASH_SIDE = 8  # the lowest 8x8 frequencies: 64 bits

# Quality warnings: flagged in the manifest and counted, never excluded (a dark photo is
# still a photo). Grey levels are of the thumbnail, 0-255.
BLANK_SPREAD = 4.0  # standard deviation below which an image is near-constant: a blank frame, a lens cap
DARK_MEAN = 20.0  # mean grey below which it is very dark (night shots, failed exposures)
BRIGHT_MEAN = 235.0  # above which it is very bright (blown-out, a white page)
MAX_ASPECT = 3.0  # long side / short side above which the model's square resize distorts it badly

TRIM = 0.04  # share of one side cut for the trimmed hashes: 4 % is within 2 % of crops of 2-6 %
TRIM_FROM = 64  # px: the short side from which an image gets them (at most validate's reduced decode)


class QualityWarning(StrEnum):
    """A usable image that is suspicious, though not excluded."""

    BLANK = "blank"
    DARK = "dark"
    BRIGHT = "bright"
    ASPECT = "extreme_aspect"


@dataclass(frozen=True)
class Look:
    """One image's thumbnail, summarised."""

    phash: int  # imagehash.phash's 64 bits, first row first: near-duplicates differ in few
    mirrored: int  # the phash of the image mirrored left to right: a mirrored copy's phash is near it
    mean: float  # grey level, 0-255
    spread: float  # standard deviation of the grey levels
    trimmed: tuple[int, ...] = ()  # phash with TRIM of the left, right, top, bottom, TRIM/2 all round cut; () if small

    @property
    def queries(self) -> tuple[int, ...]:
        """The hashes this image looks for its near-duplicates' hashes with, besides its own."""
        return (self.mirrored, *self.trimmed)


def look(image: Image.Image) -> Look:
    """The Look of an image as displayed (EXIF orientation applied), 8 bits per sample."""
    from PIL import Image

    grey = image.convert("L")
    pixels = _thumbnail(grey)
    low = _low_frequencies(pixels)
    phash, mirrored = _bits(np.stack([low, low * _MIRROR]))
    trimmed: tuple[int, ...] = ()
    if min(grey.size) >= TRIM_FROM:
        # A large PNG arrives whole (only JPEGs decode reduced): box-reduce it to a short
        # side of TRIM_FROM-2*TRIM_FROM first, so the five crops cost five small resizes.
        small = grey.reduce(min(grey.size) // TRIM_FROM) if min(grey.size) >= 2 * TRIM_FROM else grey
        width, height = small.size
        dx, dy = round(width * TRIM), round(height * TRIM)
        cx, cy = round(width * TRIM / 2), round(height * TRIM / 2)
        boxes = [
            (dx, 0, width, height),
            (0, 0, width - dx, height),
            (0, dy, width, height),
            (0, 0, width, height - dy),
            (cx, cy, width - cx, height - cy),
        ]
        # Bilinear, not pHash's Lanczos: a third of the cost, the same 96-98 % of 3-5 % crops
        # found (Lanczos 97-98 %); these hashes need not be imagehash's.
        resized = [
            np.asarray(small.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR, box=box)) for box in boxes
        ]
        trimmed = tuple(_bits(_low_frequencies(np.stack(resized).astype(np.float64))))
    return Look(phash, mirrored, float(pixels.mean()), float(pixels.std()), trimmed)


def _thumbnail(grey: Image.Image) -> np.ndarray:
    """pHash's input: the grey image Lanczos-resized to THUMBNAIL x THUMBNAIL, as floats."""
    from PIL import Image

    return np.asarray(grey.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS), dtype=np.float64)


def _low_frequencies(pixels: np.ndarray) -> np.ndarray:
    """The (..., HASH_SIDE, HASH_SIDE) lowest DCT-II coefficients of (..., 32, 32) thumbnails."""
    dct: np.ndarray = _DCT @ pixels @ _DCT.T  # scipy.fftpack.dct(dct(pixels, axis=0), axis=1)
    return dct[..., :HASH_SIDE, :HASH_SIDE]


def _bits(blocks: np.ndarray) -> list[int]:
    """pHash's bits of each (8, 8) block: each coefficient above the block's median, first
    row first. The median as numpy's: the mean of the two middle values of 64."""
    flat = blocks.reshape(len(blocks), -1)
    middle = np.sort(flat, axis=1)[:, flat.shape[1] // 2 - 1 : flat.shape[1] // 2 + 1]
    above = flat > middle.mean(axis=1, keepdims=True)
    return [int.from_bytes(row.tobytes(), "big") for row in np.packbits(above, axis=1)]


def _dct_matrix(n: int) -> np.ndarray:
    """(n, n) unnormalised DCT-II, scipy.fftpack's: y[k] = 2 sum_n x[n] cos(pi k (2n + 1) / 2N)."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return 2 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


def quality_warnings(width: int, height: int, seen: Look) -> list[QualityWarning]:
    """The quality warnings of a usable image of ``width`` x ``height`` px."""
    found = []
    if seen.spread < BLANK_SPREAD:
        found.append(QualityWarning.BLANK)
    if seen.mean < DARK_MEAN:
        found.append(QualityWarning.DARK)
    elif seen.mean > BRIGHT_MEAN:
        found.append(QualityWarning.BRIGHT)
    if max(width, height) > MAX_ASPECT * min(width, height):
        found.append(QualityWarning.ASPECT)
    return found


_DCT = _dct_matrix(THUMBNAIL)
# Mirroring a row reverses it, which negates its DCT-II coefficients of odd frequency.
_MIRROR = np.where(np.arange(HASH_SIDE) % 2, -1.0, 1.0)[None, :]


def hex64(bits: int) -> str:
    """A 64-bit hash as imagehash writes it: 16 hex digits."""
    return f"{bits:016x}"
