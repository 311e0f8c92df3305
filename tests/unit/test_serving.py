"""How the served model reads requests: base64, bytes and arrays, and the errors it names."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from images import encode, pixels, png_bomb, rgb
from imgclf.serving.classifier import Classifier
from imgclf.serving.requests import InputError, Limits, as_uint8_image, decode_cell, iter_images, read_images
from models import tiny_model


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png(seed: int, size: tuple[int, int] = (12, 10)) -> bytes:
    return encode(rgb(seed, size), "PNG")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_base64_image_decodes_to_rgb(fmt: str) -> None:
    image = decode_cell(b64(encode(rgb(1, (20, 14)), fmt)))  # Pillow sizes are (width, height)
    assert image.shape == (14, 20, 3) and image.dtype == np.uint8


def test_png_round_trips_exactly() -> None:
    assert np.array_equal(decode_cell(b64(encode(rgb(2, (9, 7)), "PNG"))), pixels(2, (9, 7)))


@pytest.mark.parametrize("wrap", [bytes, bytearray])
def test_raw_bytes_decode(wrap: type) -> None:
    image = decode_cell(wrap(png(3)))
    assert image.shape == (10, 12, 3) and image.dtype == np.uint8


def test_text_that_is_not_base64_is_refused() -> None:
    with pytest.raises(InputError, match="not base64 text"):
        decode_cell("this is *not* base64!")


def test_base64_of_something_else_is_not_an_image() -> None:
    with pytest.raises(InputError, match="not a readable image"):
        decode_cell(b64(b"hello"))


def test_nested_list_becomes_uint8() -> None:
    cells = pixels(4, (5, 4)).tolist()  # Python ints, 0..255
    image = decode_cell(cells)
    assert image.dtype == np.uint8 and image.shape == (4, 5, 3)
    assert np.array_equal(image, pixels(4, (5, 4)))


@pytest.mark.parametrize("bad", [256, -1, 300.0])
def test_values_out_of_range_are_refused(bad: float) -> None:
    array = np.zeros((2, 2, 3), dtype=np.int64 if isinstance(bad, int) else np.float64)
    array[1, 1, 2] = bad
    with pytest.raises(InputError, match="from 0 to 255"):
        as_uint8_image(array)


def test_non_numeric_arrays_are_refused() -> None:
    with pytest.raises(InputError, match="from 0 to 255"):
        as_uint8_image(np.full((2, 2, 3), "x"))


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 4), (4, 4, 1), (0, 4, 3), (1, 4, 4, 3)])
def test_wrong_shapes_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match=r"must be \(height, width, 3\)"):
        as_uint8_image(np.zeros(shape, dtype=np.uint8))


def test_in_range_ints_are_converted_and_uint8_kept() -> None:
    converted = as_uint8_image(np.full((2, 3, 3), 255, dtype=np.int64))
    assert converted.dtype == np.uint8 and int(converted.max()) == 255
    original = np.zeros((2, 3, 3), dtype=np.uint8)
    assert as_uint8_image(original) is original


def test_dataframe_of_base64_images_in_order() -> None:
    sizes = [(12, 10), (20, 8), (6, 30)]
    frame = pd.DataFrame({"image": [b64(png(i, s)) for i, s in enumerate(sizes)]})
    images = read_images(frame)
    assert [im.shape for im in images] == [(h, w, 3) for w, h in sizes]
    for i, (im, size) in enumerate(zip(images, sizes, strict=True)):
        assert np.array_equal(im, pixels(i, size))


def test_dict_with_image_key() -> None:
    images = read_images({"image": [b64(png(5)), png(6)]})
    assert len(images) == 2
    assert np.array_equal(images[1], pixels(6, (12, 10)))


@pytest.mark.parametrize("payload", [pd.DataFrame({"img": [b64(png(1))]}), {"images": []}])
def test_missing_image_column_is_refused(payload: Any) -> None:
    with pytest.raises(InputError, match="column named 'image'"):
        read_images(payload)


def test_bad_cell_names_its_row() -> None:
    frame = pd.DataFrame({"image": [b64(png(1)), b64(b"hello"), "not base64!"]})
    with pytest.raises(InputError) as caught:
        read_images(frame)
    assert str(caught.value).startswith("image 1: not a readable image")


def test_batch_array_gives_one_image_per_row() -> None:
    batch = np.stack([pixels(1, (12, 10)), pixels(2, (12, 10))])
    assert batch.shape == (2, 10, 12, 3)
    images = read_images(batch)
    assert len(images) == 2
    assert np.array_equal(images[1], batch[1])


def test_single_array_is_one_image() -> None:
    images = read_images(pixels(3, (12, 10)))
    assert len(images) == 1 and images[0].shape == (10, 12, 3)


@pytest.mark.parametrize("payload", [np.zeros((4, 4), dtype=np.uint8), np.zeros((1, 1, 4, 4, 3), dtype=np.uint8)])
def test_arrays_of_other_ranks_are_refused(payload: np.ndarray) -> None:
    with pytest.raises(InputError, match="expected a column 'image', or an array"):
        read_images(payload)


def test_table_has_a_label_and_one_probability_per_class() -> None:
    classifier = Classifier(model=None, classes=["cat", "dog"], image_size=8)
    table = classifier.table(np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert list(table.columns) == ["label", "p_cat", "p_dog"]
    assert table["label"].tolist() == ["cat", "dog"]
    assert table["p_dog"].tolist() == [0.1, 0.8]


def test_table_of_no_images_is_empty_with_the_columns() -> None:
    table = Classifier(model=None, classes=["cat", "dog"], image_size=8).table(np.zeros((0, 2)))
    assert list(table.columns) == ["label", "p_cat", "p_dog"] and len(table) == 0


def test_probabilities_of_images_of_different_sizes() -> None:
    classifier = Classifier(model=tiny_model(), classes=["cat", "dog"], image_size=8)

    images = [pixels(1, (12, 10)), pixels(2, (20, 30))]
    probs = classifier.probabilities(images)
    assert probs.shape == (2, 2)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert ((probs >= 0) & (probs <= 1)).all()
    # Batching does not change the answer.
    assert np.allclose(classifier.probabilities(images, batch_size=1), probs, atol=1e-6)
    assert classifier.probabilities([]).shape == (0, 2)


# The limits: decompression bombs, floats that are not pixels, too many images.


def test_a_png_bomb_is_refused_from_its_header() -> None:
    bomb = b64(png_bomb(13_000, 13_000))  # 0.2 MB of base64, 169 Mpx (0.5 GB as RGB)
    with pytest.raises(InputError, match=r"^image too large: 13000x13000 is 169000000 pixels, over the limit"):
        decode_cell(bomb)  # the default: validate.max_pixels' default


def test_a_bomb_is_refused_before_any_pixel_is_decoded() -> None:
    data = png_bomb(13_000, 13_000)
    header_only = data[: data.index(b"IDAT") + 100]  # decoding would fail: truncated
    with pytest.raises(InputError, match="image too large"):
        decode_cell(b64(header_only))


def test_the_model_limit_applies_to_files_and_arrays() -> None:
    small = encode(rgb(1, (40, 25)), "PNG")  # 1000 pixels
    assert decode_cell(small, max_pixels=1000).shape == (25, 40, 3)
    with pytest.raises(InputError, match="image too large"):
        decode_cell(small, max_pixels=999)
    with pytest.raises(InputError, match="image too large: 40x25"):
        as_uint8_image(np.zeros((25, 40, 3), dtype=np.uint8), max_pixels=999)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinite_values_are_refused(bad: float) -> None:
    array = np.full((2, 2, 3), 7.0)
    array[0, 1, 2] = bad
    with pytest.raises(InputError, match="found NaN or infinity"):
        as_uint8_image(array)


@pytest.mark.parametrize("fraction", [0.5, 0.1, 254.5])
def test_fractions_are_refused_not_truncated(fraction: float) -> None:
    array = np.full((2, 2, 3), 9.0)
    array[1, 0, 0] = fraction  # a 0-1 scaled image would be black after a cast: a confident wrong answer
    with pytest.raises(InputError, match=rf"whole numbers from 0 to 255 \(uint8 pixels\), found {fraction}"):
        as_uint8_image(array)


def test_whole_floats_from_0_to_255_are_pixels() -> None:
    expected = pixels(5, (6, 4))
    for dtype in (np.float64, np.float32):
        image = as_uint8_image(expected.astype(dtype))
        assert image.dtype == np.uint8 and np.array_equal(image, expected)


@pytest.mark.parametrize("dtype", [bool, complex])
def test_non_real_values_are_refused(dtype: type) -> None:
    with pytest.raises(InputError, match="from 0 to 255"):
        as_uint8_image(np.zeros((2, 2, 3), dtype=dtype))


def test_the_bad_row_of_a_batch_is_named() -> None:
    batch = np.stack([pixels(1, (4, 4)), pixels(2, (4, 4)), pixels(3, (4, 4))]).astype(np.float64)
    batch[2, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"^image 2: .*NaN"):
        read_images(batch)
    with pytest.raises(InputError, match=r"^image 0: .*whole numbers"):
        read_images(np.full((3, 3, 3), 0.5))  # one (height, width, 3) image is image 0


def test_ragged_arrays_are_refused() -> None:
    with pytest.raises(InputError, match="rows of one length"):
        read_images([[[1, 2, 3]], [[1, 2, 3], [4, 5, 6]]])


def test_too_many_images_are_refused_before_decoding_any() -> None:
    frame = pd.DataFrame({"image": ["not base64!"] * 5})  # decoding the first would fail
    with pytest.raises(InputError, match=r"^5 images in one request; at most 4"):
        read_images(frame, Limits(max_images=4))
    with pytest.raises(InputError, match=r"^65 images in one request; at most 64"):
        read_images(np.zeros((65, 2, 2, 3), dtype=np.uint8))  # the default
    assert len(read_images(np.zeros((4, 2, 2, 3), dtype=np.uint8), Limits(max_images=4))) == 4


def test_images_are_decoded_one_at_a_time() -> None:
    frame = pd.DataFrame({"image": [b64(png(1)), "not base64!"]})
    images = iter_images(frame)
    assert next(images).shape == (10, 12, 3)  # the bad one is not read yet
    with pytest.raises(InputError, match=r"^image 1: not base64"):
        next(images)


def test_a_single_string_is_one_image() -> None:
    assert len(read_images({"image": b64(png(2))})) == 1


def test_limits_from_the_model_config() -> None:
    assert Limits.from_config(None) == Limits() == Limits(89_478_485, 64)  # models logged without them
    assert Limits.from_config({"max_pixels": 100, "max_images": 3}) == Limits(100, 3)
    assert Limits.from_config({"max_images": 3}) == Limits(89_478_485, 3)
    assert Limits.from_config(Limits(7, 8).config()) == Limits(7, 8)
    for bad in ({"max_pixels": 0}, {"max_images": "64"}, {"max_images": True}):
        with pytest.raises(ValueError, match="must be a positive integer"):
            Limits.from_config(bad)


def test_probabilities_of_a_generator() -> None:
    classifier = Classifier(model=tiny_model(), classes=["cat", "dog"], image_size=8)
    images = [pixels(i, (12 + i, 10)) for i in range(5)]
    assert np.allclose(classifier.probabilities(iter(images), batch_size=2), classifier.probabilities(images))


def test_scoring_files_refuses_one_over_the_limit_from_its_header(tmp_path: Path) -> None:
    """evaluate and register score through the tf.data pipeline: the same header check."""
    import tensorflow as tf

    from imgclf.data.datasets import Examples

    files = [tmp_path / "small.png", tmp_path / "large.png"]
    files[0].write_bytes(png(1, (30, 30)))  # 900 pixels
    files[1].write_bytes(png(2, (40, 25)))  # 1000 pixels
    classifier = Classifier(model=tiny_model(), classes=["cat", "dog"], image_size=8, max_pixels=999)
    assert classifier.score(Examples(files[:1], [0]), None, 0.5, 2).metrics["test_images"] == 1
    with pytest.raises(tf.errors.OpError, match=r"large.png: 40x25 is 1000 pixels, over the limit of 999"):
        classifier.score(Examples(files, [0, 1]), None, 0.5, 2)
