"""Tiny Keras models for unit tests: real networks, built in milliseconds."""

from __future__ import annotations

from typing import Any


def tiny_model(size: int = 8) -> Any:
    """uint8 images of any size -> resized to size x size -> one sigmoid unit; seeded weights."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3), dtype="uint8")
    x = keras.layers.Resizing(size, size)(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
