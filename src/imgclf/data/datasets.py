"""The tf.data input pipeline: decode in parallel, resize, cache, shuffle, batch, prefetch.

Decoding goes through imaging.load_rgb (Pillow), the same function prediction and
serving use, at the same size (the model's image_size, so JPEGs decode DCT-scaled),
so every image becomes the same pixels everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgclf.data.imaging import TooLarge, load_rgb
from imgclf.tables import read_csv

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf


@dataclass(frozen=True)
class Examples:
    files: list[Path]  # absolute
    labels: list[int]  # index into the class list


def split_examples(split_csv: Path, raw: Path, split: str, classes: list[str]) -> Examples:
    """The images of one split, as files under ``raw`` and class indices."""
    rows = [r for r in read_csv(split_csv) if r["split"] == split]
    return Examples([raw / r["path"] for r in rows], [classes.index(r["label"]) for r in rows])


def _decode(path: bytes, max_pixels: int | None, image_size: int) -> np.ndarray:
    with open(path, "rb") as src:
        data = src.read()
    try:
        return load_rgb(data, max_pixels, min_side=image_size)
    except TooLarge as exc:  # a file changed since validate checked it
        raise TooLarge(f"{path.decode(errors='replace')}: {exc}") from None


def make_dataset(
    examples: Examples,
    image_size: int,
    batch_size: int,
    shuffle_seed: int | None = None,
    max_pixels: int | None = None,
) -> tf.data.Dataset:
    """Batches of ((batch, image_size, image_size, 3) uint8, (batch,) int32).

    Images are resized here as well as inside the model, so they can be batched; the
    model's own Resizing is then a no-op, and the bilinear resize is the same op.
    Decoded images are cached in memory: every epoch after the first reads no file.
    JPEGs decode at the smallest DCT scale still >= image_size (imaging.load_rgb), the
    bulk of epoch 1 for photos; serving and ``imgclf predict`` decode at the same size.
    ``max_pixels`` refuses a file from its header, before decoding.
    """
    import tensorflow as tf

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.numpy_function(lambda p: _decode(p, max_pixels, image_size), [path], tf.uint8, stateful=False)
        image.set_shape([None, None, 3])
        return resize_uint8(image, image_size), label

    # The OS's bytes, not str: TF would encode a str as UTF-8, which no surrogate-escaped
    # (non-UTF-8) name survives; _decode opens these exact bytes.
    paths = [os.fsencode(f) for f in examples.files]
    data = tf.data.Dataset.from_tensor_slices((paths, tf.constant(examples.labels, tf.int32)))
    data = data.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    if shuffle_seed is not None:
        data = data.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def resize_uint8(image: Any, size: int) -> Any:
    """(h, w, 3) uint8 -> (size, size, 3) uint8, bilinear like keras Resizing; a tensor or an array.

    Used before batching in training, evaluation, prediction and serving alike, after
    load_rgb(..., min_side=size) decoded the image.
    """
    import tensorflow as tf

    resized = tf.image.resize(image, (size, size))
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def predict_examples(
    model: keras.Model, examples: Examples, image_size: int, batch_size: int, max_pixels: int | None = None
) -> np.ndarray:
    """The model's raw outputs for ``examples``, in order: (n, 1) sigmoid or (n, k) softmax."""
    import numpy as np

    data = make_dataset(examples, image_size, batch_size, max_pixels=max_pixels)
    return np.asarray(model.predict(data, verbose=0))
