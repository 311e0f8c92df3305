"""Keras 3 networks. Every model takes raw uint8 RGB images of any size: resizing,
rescaling and (online) augmentation are layers inside it, so training, evaluation,
prediction and serving cannot preprocess differently. No Lambda layers: saved models
load with ``safe_mode=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imgclf.errors import ParamsError
from imgclf.params import Augment, Model

if TYPE_CHECKING:
    import keras


def outputs(num_classes: int) -> int:
    """Two classes: one sigmoid unit (P of the second class); more: a softmax per class."""
    return 1 if num_classes == 2 else num_classes


def augmentation(cfg: Augment, seed: int) -> keras.Sequential:
    """Random transforms, active only in training; offline mode applies the same layers to files."""
    import keras

    layers: list[keras.Layer] = []
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if cfg.rotation:
        layers.append(keras.layers.RandomRotation(cfg.rotation, fill_mode="nearest", seed=seed + 1))
    if cfg.zoom:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="nearest", seed=seed + 2))
    if cfg.shift:
        layers.append(keras.layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="nearest", seed=seed + 3))
    if cfg.brightness:
        layers.append(keras.layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=seed + 4))
    if cfg.contrast:
        layers.append(keras.layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=seed + 5))
    return keras.Sequential(layers, name="augmentation")


def build_model(
    num_classes: int,
    image_size: int,
    cfg: Model,
    augment: keras.Sequential | None = None,
    *,
    sync_batch_norm: bool = False,
) -> tuple[keras.Model, keras.Model | None]:
    """The network for ``cfg.arch``, and for ``transfer`` its backbone (to freeze and unfreeze).

    Input: (batch, height, width, 3) uint8, any height and width.
    Output: (batch, 1) sigmoid for two classes, (batch, num_classes) softmax otherwise.

    Args:
        sync_batch_norm: small_cnn's batch statistics over the global batch rather
            than each replica's slice of it, for a strategy with several replicas: a
            slice (a quarter of the batch on four devices) gives noisier statistics
            than one device would, and results would depend on the device count.
    """
    import keras

    inputs = keras.Input(shape=(None, None, 3), dtype="uint8", name="image")
    x = keras.layers.Resizing(image_size, image_size, name="resize")(inputs)
    if augment is not None:
        x = augment(x)  # on 0..255 floats, before any model-specific scaling
    backbone = None
    if cfg.arch == "transfer":
        backbone = _backbone(cfg, image_size)
        x = backbone(_backbone_scaling(cfg.backbone, x), training=False)  # BN stays in inference mode
        x = keras.layers.Dropout(cfg.dropout)(x)
    else:
        x = keras.layers.Rescaling(1 / 255, name="rescale")(x)
        x = _seed_cnn(x) if cfg.arch == "seed_cnn" else _small_cnn(x, cfg, sync_batch_norm)
    units = outputs(num_classes)
    out = keras.layers.Dense(units, activation="sigmoid" if units == 1 else "softmax", name="classifier")(x)
    return keras.Model(inputs, out, name=cfg.arch), backbone


def _seed_cnn(x: keras.KerasTensor) -> keras.KerasTensor:
    """The seeds' network, kept as the baseline to beat."""
    import keras

    for filters in (32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    return keras.layers.Dense(512, activation="relu")(x)


def _small_cnn(x: keras.KerasTensor, cfg: Model, sync_batch_norm: bool) -> keras.KerasTensor:
    """Conv-BN-ReLU-MaxPool blocks, then global average pooling (94k parameters by default).

    Batch norm lets a high learning rate converge in few epochs (without it test F1
    fell from 0.98 to 0.93 on the demo set); global pooling instead of Flatten keeps
    the head tiny (the seeds' Dense 512 on a flattened map is most of their time).
    """
    import keras

    for block in range(cfg.blocks):
        x = keras.layers.Conv2D(cfg.filters * 2**block, 3, padding="same", use_bias=False)(x)
        # momentum 0.9, not Keras' 0.99: with ~45 steps an epoch the running statistics
        # otherwise lag so far that validation predicts one class for the first 5 epochs.
        x = keras.layers.BatchNormalization(momentum=0.9, synchronized=sync_batch_norm)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dropout(cfg.dropout)(x)


_BACKBONES = {"MobileNetV2": "mobilenet_v2", "EfficientNetB0": "efficientnet", "ResNet50": "resnet50"}


def _backbone(cfg: Model, image_size: int) -> keras.Model:
    """A keras.applications backbone with global average pooling, weights from a local file."""
    import keras

    weights = cfg.weights
    if weights is not None and not Path(weights).is_file():
        cache = Path(keras.config.keras_home() if hasattr(keras.config, "keras_home") else "~/.keras").expanduser()
        raise ParamsError(
            f"params.yaml: model.weights: {weights} not found. This machine has no network: download the ImageNet "
            f"'no top' weights for {cfg.backbone} elsewhere, put the file there (or under {cache}/models/) "
            "and point model.weights at it, or set model.weights: null to train from scratch"
        )
    factory = getattr(keras.applications, cfg.backbone)
    return factory(include_top=False, weights=weights, input_shape=(image_size, image_size, 3), pooling="avg")


def _backbone_scaling(name: str, x: keras.KerasTensor) -> keras.KerasTensor:
    """Each backbone's own input convention, as plain layers (its preprocess_input is a function)."""
    import keras

    if name == "MobileNetV2":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x)  # [-1, 1]
    if name == "ResNet50":
        # Caffe convention: BGR, ImageNet means subtracted, no scaling. A fixed 1x1
        # convolution swaps the channels (a layer, unlike tf.reverse, survives safe_mode).
        import numpy as np

        swap = keras.layers.Conv2D(3, 1, use_bias=True, trainable=False, name="rgb_to_bgr")
        y = swap(x)
        swap.set_weights(
            [np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3), -np.array([103.939, 116.779, 123.68], "float32")]
        )
        return y
    return x  # EfficientNet rescales and normalises inside itself
