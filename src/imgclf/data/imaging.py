"""Reading image files with Pillow: what a file is, and whether it is usable.

``probe`` never decodes more than it must: the header gives format and size, the
size limits are checked before any pixel is decoded (decompression bombs), and
JPEGs are decoded at the smallest DCT scale (1/2 to 1/8) that keeps 64 px for
validate's thumbnail (data.looks), which still reads every entropy-coded byte and so still
detects truncation and corruption at a fraction of the cost.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from imgclf.data.looks import Look

# What the pipeline accepts. MPO is what many cameras write for JPEG.
FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP", "TIFF"})
# The Pillow openers that identify them: the JPEG opener also returns MPO files.
_OPENERS = sorted(FORMATS - {"MPO"})
_EXIF_ORIENTATION = 0x0112
_DCT_SCALED = frozenset({"JPEG", "MPO"})  # formats libjpeg decodes at 1/2, 1/4 or 1/8 scale (Pillow draft)
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
# px a reduced decode keeps, twice validate's 32-px thumbnail (looks.THUMBNAIL): scaled down
# from 64 px or more by Lanczos, a copy's pHash matched its original's at distance 4 for
# 96-99% of photo-like re-encoded, resized or mirrored copies, against 85-94% from the
# 1/8 decode of a 400-px photo (bench/near_duplicates.py), for ~18% more time per image.
_DRAFT_SIDE = 64


class Reason(StrEnum):
    """Why a candidate file is excluded from the data set."""

    EMPTY = "empty"  # zero bytes
    UNREADABLE = "unreadable"  # the OS refused to read it (permissions, I/O error)
    NOT_A_FILE = "not_a_file"  # a fifo, socket or device under a class folder
    NOT_AN_IMAGE = "not_an_image"  # Pillow cannot identify it, whatever its extension
    UNSUPPORTED_FORMAT = "unsupported_format"  # an image, but not one of FORMATS
    TRUNCATED = "truncated"  # the pixel data ends early
    CORRUPT = "corrupt"  # the pixel data does not decode
    TOO_SMALL = "too_small"  # a side below validate.min_side
    TOO_LARGE = "too_large"  # over validate.max_side or validate.max_pixels
    SYMLINK_OUTSIDE = "symlink_outside"  # a link that leaves the raw folder
    BAD_FILENAME = "bad_filename"  # a path that is not UTF-8: DVC, MLflow and UTF-8 CSV cannot hold it
    DUPLICATE = "duplicate"  # the same bytes as an earlier file of the same class
    LABEL_CONFLICT = "label_conflict"  # the same bytes, or a near-duplicate group, under two or more classes
    EXCLUDED_BY_USER = "excluded_by_user"  # listed in validate.exclude_paths


@dataclass(frozen=True)
class Limits:
    min_side: int
    max_side: int
    max_pixels: int


@dataclass(frozen=True)
class Probe:
    """What one file turned out to be. ``reason`` is None for a usable image."""

    reason: Reason | None
    sha256: str = ""
    width: int = 0  # as displayed, i.e. after the EXIF orientation is applied
    height: int = 0
    mode: str = ""  # Pillow mode: RGB, L, RGBA, P, CMYK, I;16, ...
    bytes: int = 0
    look: Look | None = None  # of a usable image: its perceptual hash and grey levels


@dataclass(frozen=True)
class Inspected:
    """A usable image, from its header and a reduced-size decode."""

    width: int  # as displayed
    height: int
    mode: str
    look: Look | None  # when asked for


def probe(path: Path, root: Path, limits: Limits, look: Callable[[Image.Image], Look] | None = None) -> Probe:
    """Classify one file under ``root`` (an absolute, resolved folder) without modifying it.

    Args:
        look: validate's looks.look, called on the reduced decode of a usable image.
    """
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            if not Path(os.path.realpath(path)).is_relative_to(root):
                return Probe(Reason.SYMLINK_OUTSIDE)
            info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return Probe(Reason.NOT_A_FILE)
        if info.st_size == 0:
            return Probe(Reason.EMPTY)
        data = path.read_bytes()
    except OSError:
        return Probe(Reason.UNREADABLE)
    digest = hashlib.sha256(data).hexdigest()
    found = inspect_bytes(data, limits, look)
    if isinstance(found, Reason):
        return Probe(found, sha256=digest, bytes=len(data))
    return Probe(
        None, sha256=digest, width=found.width, height=found.height, mode=found.mode, bytes=len(data), look=found.look
    )


def inspect_bytes(data: bytes, limits: Limits, look: Callable[[Image.Image], Look] | None = None) -> Inspected | Reason:
    """What a usable image is, else why it is not usable; ``look``: see ``probe``."""
    try:
        with warnings.catch_warnings():
            # Our own limits decide; Pillow's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.format not in FORMATS:
                    return Reason.UNSUPPORTED_FORMAT
                width, height = im.size
                if width * height > limits.max_pixels or max(width, height) > limits.max_side:
                    return Reason.TOO_LARGE
                if min(width, height) < limits.min_side:
                    return Reason.TOO_SMALL
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
                if orientation in _ROTATED:
                    width, height = height, width
                mode = im.mode
                if im.format in _DCT_SCALED:
                    # DCT scaling: the smallest scale libjpeg offers whose sides stay >=
                    # _DRAFT_SIDE (1/8 for any photo of 512 px and more).
                    im.draft(im.mode, (_DRAFT_SIDE, _DRAFT_SIDE))
                im.load()
                shown = im if orientation == 1 else ImageOps.exif_transpose(im)  # as displayed
                seen = None if look is None else look(eight_bit(shown))
    except Image.DecompressionBombError:
        return Reason.TOO_LARGE
    except UnidentifiedImageError:
        return Reason.NOT_AN_IMAGE
    except OSError as exc:
        # Pillow says "image file is truncated" or "Truncated File Read", by plugin.
        return Reason.TRUNCATED if "truncated" in str(exc).lower() else Reason.CORRUPT
    except Exception:  # noqa: BLE001 - Pillow's plugins raise SyntaxError, ValueError, struct.error, ...
        return Reason.CORRUPT
    return Inspected(width, height, mode, seen)


class TooLarge(ValueError):
    """An image whose header declares more pixels than allowed; none of them was decoded."""


def load_rgb(data: bytes, max_pixels: int | None = None, min_side: int | None = None) -> np.ndarray:
    """Decode image bytes to (height, width, 3) uint8 RGB, as displayed.

    The one conversion used by training, evaluation, prediction and serving, so they
    cannot disagree: EXIF orientation applied; 16-bit samples scaled to 8 bits;
    grayscale, palette, CMYK and alpha images converted by Pillow (alpha dropped,
    as TensorFlow's own decoders do). Animated images give their first frame.

    Args:
        data: a file of one of FORMATS; any other kind, whatever Pillow could open, is
            not identified (UnidentifiedImageError): serving decodes what strangers send.
        max_pixels: refuse (TooLarge) an image whose header declares more pixels, before
            a pixel is decoded: validate.max_pixels. None leaves only Pillow's own limit.
        min_side: the side the image is resized to next (the model's image_size). A JPEG
            is then decoded by libjpeg's DCT scaling at the smallest scale (1/2, 1/4 or
            1/8) whose both sides stay >= min_side (Pillow's draft): a 12 Mpx photo
            decodes 4-16x faster (less for fine texture, whose entropy decoding remains).
            The result is that smaller image, a box filter of the full one; other
            formats, and None, decode at full size.

    Raises:
        TooLarge: over ``max_pixels``, or over Pillow's hard bomb limit (2x its warning).
    """
    with warnings.catch_warnings():
        if max_pixels is not None:
            # Our limit decides; Pillow's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(data), formats=_OPENERS)  # reads the header only
        except Image.DecompressionBombError as exc:
            raise TooLarge(str(exc)) from None
        with opened:
            width, height = opened.size
            if max_pixels is not None and width * height > max_pixels:
                raise TooLarge(
                    f"{width}x{height} is {width * height} pixels, over the limit of {max_pixels}; nothing was decoded"
                )
            if min_side is not None and opened.format in _DCT_SCALED:
                # The target is square, so it does not matter that these are the stored sides,
                # which EXIF orientation may swap. Its own mode: the colour conversion stays
                # Pillow's convert() below, as for every other file.
                opened.draft(opened.mode, (min_side, min_side))
            image: Image.Image = eight_bit(ImageOps.exif_transpose(opened))
            return np.asarray(image.convert("RGB"))


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit grey samples scaled to 8 bits ('L'); any other image as it is."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        # 'I' is 32-bit signed but holds 16-bit samples when it comes from a PNG.
        wide = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        return Image.fromarray((wide >> 8).astype(np.uint8), mode="L")
    return image
