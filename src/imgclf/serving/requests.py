"""What a request to the model may hold, and its images decoded one at a time.

The registered pyfunc and `imgclf serve` accept images as clients send them:

- a DataFrame (``dataframe_split``/``dataframe_records`` in JSON) or a dict
  (``inputs: {"image": [...]}``) with a column ``image`` whose cells are base64 text
  of an image file (JPEG, PNG, GIF, BMP, WebP, TIFF), raw file bytes, or
  (height, width, 3) arrays;
- an array, (height, width, 3) or (batch, height, width, 3), of whole numbers from 0
  to 255: integers, or floats such as 12.0 (``inputs``/``instances`` in JSON). NaN,
  infinities, fractions (a 0-1 scaled image) and values outside 0-255 are refused:
  casting them would answer for another image.

Every request is held to ``Limits``, recorded with the model: at most ``max_images``
images, each at most ``max_pixels`` pixels as its header declares (validate.max_pixels),
checked before any pixel is decoded. A refused request names the image (``image 3: ...``)
and is answered 400. Files decode through imaging.load_rgb at the model's image_size,
the training pipeline's own conversion.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from imgclf.data.imaging import TooLarge, load_rgb

# validate.max_pixels' default (Pillow's own bomb threshold, ~ 268 MB as RGB): the limit
# of models logged before the limit was recorded with them.
DEFAULT_MAX_PIXELS = 89_478_485
# One model call's batch. 64 images of 12 Mpx (a phone photo) are ~2.3 GB to decode one
# after another; more per request only lengthens the wait of the requests behind it.
DEFAULT_MAX_IMAGES = 64


class InputError(ValueError):
    """A request the model cannot read; the message names the row."""


@dataclass(frozen=True)
class Limits:
    """What one request may hold; recorded as the pyfunc's model config (``log_model``)."""

    max_pixels: int = DEFAULT_MAX_PIXELS  # per image, from its header, before decoding
    max_images: int = DEFAULT_MAX_IMAGES  # per request

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Limits:
        """From a model config (a models logged without one gets the defaults)."""
        config = config or {}
        values = {key: config.get(key, getattr(cls, key)) for key in ("max_pixels", "max_images")}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model config {key}: must be a positive integer, got {value!r}")
        return cls(**values)

    def config(self) -> dict[str, int]:
        return asdict(self)


def decode_cell(cell: Any, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> np.ndarray:
    """One ``image`` cell (base64 text, file bytes or an array) as (height, width, 3) uint8.

    A file whose header declares more than ``max_pixels`` pixels is refused before decoding;
    with ``min_side`` (the model's image_size) a JPEG decodes DCT-scaled (imaging.load_rgb).
    An array is taken as given.
    """
    if isinstance(cell, str):
        try:
            cell = base64.b64decode(cell, validate=True)
        except (binascii.Error, ValueError):
            raise InputError("not base64 text") from None
    if isinstance(cell, bytes | bytearray):
        try:
            return load_rgb(bytes(cell), max_pixels, min_side)
        except TooLarge as exc:
            raise InputError(f"image too large: {exc} (the model's max_pixels, validate.max_pixels)") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad bytes
            raise InputError(f"not a readable image ({type(exc).__name__})") from None
    return as_uint8_image(_as_array(cell), max_pixels)


def as_uint8_image(array: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A (height, width, 3) array of whole numbers 0-255 as uint8; anything else is refused.

    Floats are accepted only when every value is a whole number: a fraction means the
    client scaled (0-1) or interpolated, and truncating it would answer for another image.
    """
    if array.ndim != 3 or array.shape[-1] != 3 or not array.size:
        raise InputError(f"an image array must be (height, width, 3), got {array.shape}")
    if array.shape[0] * array.shape[1] > max_pixels:
        raise InputError(
            f"image too large: {array.shape[1]}x{array.shape[0]}, over the model's max_pixels {max_pixels}"
        )
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "iuf":  # bool, complex, strings, objects
        raise InputError(f"image array values must be numbers from 0 to 255, got {array.dtype} values")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError("image array values must be numbers from 0 to 255, found NaN or infinity")
    low, high = array.min(), array.max()
    if low < 0 or high > 255:
        raise InputError(f"image array values must be numbers from 0 to 255, found {low if low < 0 else high}")
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        fraction = array[array != np.round(array)].flat[0]
        raise InputError(
            f"image array values must be whole numbers from 0 to 255 (uint8 pixels), found {fraction}; "
            "a 0-1 scaled image must be multiplied by 255 and rounded"
        )
    return array.astype(np.uint8)


def _as_array(value: Any) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError:  # ragged nested lists
        raise InputError("an image array must be (height, width, 3) numbers, with rows of one length") from None


def iter_images(model_input: Any, limits: Limits = Limits(), min_side: int | None = None) -> Iterator[np.ndarray]:
    """Every image of a request, in order, decoded one at a time as the caller asks;
    files at ``min_side`` (decode_cell).

    Raises:
        InputError: naming the first bad image (``image 3: ...``); over ``limits.max_images``
            before any is decoded.
    """
    import pandas as pd

    if isinstance(model_input, pd.DataFrame | dict):
        if "image" not in model_input:
            raise InputError("expected a column named 'image' (base64-encoded image bytes)")
        cells: Any = model_input["image"]
        cells = list(cells) if isinstance(cells, pd.Series | np.ndarray | list | tuple) else [cells]
    else:
        array = _as_array(model_input)
        if array.ndim not in (3, 4):
            raise InputError(
                "expected a column 'image', or an array of shape (height, width, 3) or (n, height, width, 3)"
            )
        cells = [array] if array.ndim == 3 else array
    if len(cells) > limits.max_images:
        raise InputError(f"{len(cells)} images in one request; at most {limits.max_images}: send them in several")
    for row, cell in enumerate(cells):
        try:
            yield decode_cell(cell, limits.max_pixels, min_side)
        except InputError as exc:
            raise InputError(f"image {row}: {exc}") from None


def read_images(model_input: Any, limits: Limits = Limits()) -> list[np.ndarray]:
    """Every image of a request, decoded (``iter_images`` holds one at a time)."""
    return list(iter_images(model_input, limits))
