"""What an image looks like, from a 32x32 grey thumbnail: a perceptual hash for finding
near-duplicates, and the grey levels behind the quality warnings.

validate takes the thumbnail from the reduced-size decode it already does for every
file (imaging.inspect_bytes), so the hash costs no second read or decode. The hash is
imagehash's pHash of that thumbnail, bit for bit (``str(imagehash.phash(image))`` is the
manifest's ``phash``): the thumbnail is the one phash makes itself, a Lanczos resize of
the grey image to 32x32, and phash leaves an image of that size as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

THUMBNAIL = 32  # px: phash's own input, 8 x its highfreq_factor of 4

# Quality warnings: flagged in the manifest and counted, never excluded (a dark photo is
# still a photo). Grey levels are of the thumbnail, 0-255.
BLANK_SPREAD = 4.0  # standard deviation below which an image is near-constant: a blank frame, a lens cap
DARK_MEAN = 20.0  # mean grey below which it is very dark (night shots, failed exposures)
BRIGHT_MEAN = 235.0  # above which it is very bright (blown-out, a white page)
MAX_ASPECT = 3.0  # long side / short side above which the model's square resize distorts it badly


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


def look(image: Image.Image) -> Look:
    """The Look of an image as displayed (EXIF orientation applied), 8 bits per sample."""
    import imagehash
    import numpy as np
    from PIL import Image

    grey = image.convert("L").resize((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    mirror = grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return Look(
        phash=_bits(imagehash.phash(grey).hash),
        mirrored=_bits(imagehash.phash(mirror).hash),
        mean=float(pixels.mean()),
        spread=float(pixels.std()),
    )


def _bits(hash_bits: object) -> int:
    import numpy as np

    return int.from_bytes(np.packbits(np.asarray(hash_bits, dtype=bool).reshape(-1)).tobytes(), "big")


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


def hex64(bits: int) -> str:
    """A 64-bit hash as imagehash writes it: 16 hex digits."""
    return f"{bits:016x}"
