"""How the served model reads requests: base64, bytes and arrays, and the errors it names."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pandas as pd
import pytest

from images import encode, pixels, rgb
from imgclf.serving import Classifier, InputError, as_uint8_image, decode_cell, read_images
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
