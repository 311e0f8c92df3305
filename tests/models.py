"""Tiny Keras models for unit tests: real networks, built in milliseconds."""

from __future__ import annotations

from pathlib import Path
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


def log_tiny_model(root: Path, max_pixels: int, size: int = 8) -> str:
    """``tiny_model(size)`` logged as imgclf's pyfunc, with ``validate.max_pixels`` recorded,
    to the sqlite store of a project at ``root`` (its params.yaml is written here). Returns the
    models:/ URI; MLflow's tracking URI is left unset, as a fresh process would find it."""
    import json

    import mlflow
    import yaml

    from imgclf import tracking
    from imgclf.params import load_params
    from imgclf.serving.pyfunc import log_model

    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump({"validate": {"max_pixels": max_pixels}}), encoding="utf-8")
    params = load_params(params_file)
    tracking.use_experiment(params)
    model, classes = root / "model.keras", root / "classes.json"
    tiny_model(size).save(model)
    classes.write_text(json.dumps({"classes": ["cat", "dog"], "image_size": size}), encoding="utf-8")
    with mlflow.start_run():
        uri = log_model(model, classes, params.validation.max_pixels)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    return str(uri)
