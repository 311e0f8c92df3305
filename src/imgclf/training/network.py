"""Keras 3 networks. Every model takes raw uint8 RGB images of any size: resizing,
rescaling and (online) augmentation are layers inside it, so training, evaluation,
prediction and serving cannot preprocess differently. No Lambda layers: saved models
load with ``safe_mode=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from imgclf.errors import ParamsError
from imgclf.params import Augment, Model

if TYPE_CHECKING:
    import keras

    from imgclf.training.downloads import Wanted


def outputs(num_classes: int) -> int:
    """Two classes: one sigmoid unit (P of the second class); more: a softmax per class."""
    return 1 if num_classes == 2 else num_classes


def augmentation(cfg: Augment, seed: int) -> keras.Sequential:
    """Random transforms, active only in training; offline mode applies the same layers to files."""
    import keras

    r = cfg.ranges()  # resolved by imgclf.training.autoconf: no preset left to fill in
    layers: list[keras.Layer] = []
    if r["flip"]:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if r["rotation"]:
        layers.append(keras.layers.RandomRotation(r["rotation"], fill_mode="nearest", seed=seed + 1))
    if r["zoom"]:
        layers.append(keras.layers.RandomZoom(r["zoom"], fill_mode="nearest", seed=seed + 2))
    if r["shift"]:
        layers.append(keras.layers.RandomTranslation(r["shift"], r["shift"], fill_mode="nearest", seed=seed + 3))
    if r["brightness"]:
        layers.append(keras.layers.RandomBrightness(r["brightness"], value_range=(0, 255), seed=seed + 4))
    if r["contrast"]:
        layers.append(keras.layers.RandomContrast(r["contrast"], value_range=(0, 255), seed=seed + 5))
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

    def conv_bn_relu(x: keras.KerasTensor, filters: int, separable: bool, strides: int = 1) -> keras.KerasTensor:
        conv = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
        x = conv(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        # momentum 0.9, not Keras' 0.99: with ~45 steps an epoch the running statistics
        # otherwise lag so far that validation predicts one class for the first 5 epochs.
        x = keras.layers.BatchNormalization(momentum=0.9, synchronized=sync_batch_norm)(x)
        return keras.layers.ReLU()(x)

    if cfg.blocks is None or cfg.stem is None or cfg.filters is None:
        raise RuntimeError(
            "small_cnn built before imgclf.training.autoconf.resolve filled in model.blocks, stem and filters"
        )
    if cfg.stem:
        x = conv_bn_relu(x, cfg.filters, separable=False, strides=2)
    for block in range(cfg.blocks):
        x = conv_bn_relu(x, cfg.filters * 2**block, separable=cfg.separable and (block > 0 or cfg.stem))
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dropout(cfg.dropout)(x)


class _Backbone(NamedTuple):
    min_size: int  # smallest input side keras.applications accepts (obtain_input_shape's min_size)
    scaling: str  # its preprocess_input's mode: "tf" ([-1, 1]), "caffe" (BGR minus ImageNet means), "inside"
    weights: str  # origin of the ImageNet "no top" file; the cache keeps it under the URL's last part
    checks_hash: bool  # Keras refuses a cached file whose checksum is not the one it knows


_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
# From keras/src/applications/*.py (Keras 3.15); tests/unit/test_backbones.py checks each
# origin against the URL Keras itself tries, and each scaling against its preprocess_input.
_BACKBONES = {
    "MobileNetV2": _Backbone(
        32, "tf", _APPS + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5", False
    ),
    "EfficientNetB0": _Backbone(
        32, "inside", "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5", True
    ),
    "ResNet50": _Backbone(32, "caffe", _APPS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", True),
    "VGG16": _Backbone(32, "caffe", _APPS + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", True),
    "InceptionV3": _Backbone(
        75, "tf", _APPS + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", True
    ),
}
IMAGENET = "imagenet"  # model.weights: the ImageNet weights, through Keras's download cache
# MobileNetV2's ImageNet files exist for these input sides; Keras loads the 224 px one for
# any other (a no-top network's weights do not depend on the input size).
_MOBILENET_SIZES = (96, 128, 160, 192, 224)


def min_input_size(backbone: str) -> int:
    """The smallest train.image_size ``backbone`` takes (an auto size must not go below it)."""
    return _BACKBONES[backbone].min_size


def input_size_problem(backbone: str, image_size: int) -> str | None:
    """Why ``image_size`` is too small for ``backbone``, or None; imports no TensorFlow."""
    smallest = min_input_size(backbone)
    if image_size >= smallest:
        return None
    return f"{image_size} is below {smallest}, the smallest input model.backbone {backbone} takes"


def imagenet_file(backbone: str, image_size: int) -> Wanted:
    """The ImageNet "no top" weights file that ``weights="imagenet"`` makes Keras fetch."""
    from imgclf.training.downloads import Wanted

    spec = _BACKBONES[backbone]
    origin = spec.weights.format(rows=image_size if image_size in _MOBILENET_SIZES else 224)
    return Wanted(name=origin.rsplit("/", 1)[1], origin=origin, checks_hash=spec.checks_hash)


def _backbone(cfg: Model, image_size: int) -> keras.Model:
    """A keras.applications backbone with global average pooling.

    ``cfg.weights``: null (random), ``imagenet`` (from Keras's download cache, fetched into
    it when missing) or a local weights file.
    """
    import keras

    from imgclf.training import downloads

    problem = input_size_problem(cfg.backbone, image_size)
    if problem:
        raise ParamsError(f"params.yaml: train.image_size: {problem}")
    weights = cfg.weights
    if weights not in (None, IMAGENET) and not Path(weights).is_file():
        raise ParamsError(
            f"params.yaml: model.weights: {weights} not found. Point it at a local file of {cfg.backbone}'s "
            f"ImageNet 'no top' weights, set it to {IMAGENET} (Keras downloads them once, into "
            f"{downloads.cache_folder('models')}) or to null to train from scratch"
        )
    factory = getattr(keras.applications, cfg.backbone)

    def build() -> keras.Model:
        built: keras.Model = factory(
            include_top=False, weights=weights, input_shape=(image_size, image_size, 3), pooling="avg"
        )
        return built

    if weights != IMAGENET:
        return build()
    with downloads.fetching(
        f"params.yaml: model.weights: {IMAGENET}: the ImageNet weights of {cfg.backbone}",
        "models",
        [imagenet_file(cfg.backbone, image_size)],
        otherwise="or point model.weights at a local copy, or set it to null to train from scratch",
    ):
        return build()


def _backbone_scaling(name: str, x: keras.KerasTensor) -> keras.KerasTensor:
    """Each backbone's own input convention (its preprocess_input, a function) as plain layers."""
    import keras

    scaling = _BACKBONES[name].scaling
    if scaling == "tf":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x)  # [-1, 1]
    if scaling == "caffe":
        # BGR, ImageNet means subtracted, no scaling. A fixed 1x1 convolution swaps the
        # channels and its bias subtracts the means (a layer, unlike tf.reverse, survives safe_mode).
        import numpy as np

        # Resizing keeps uint8 as uint8, and a convolution refuses it: without augmentation
        # layers (augment.mode offline or none) nothing else would make the input float.
        x = keras.layers.Rescaling(1.0, name="to_float")(x)
        swap = keras.layers.Conv2D(3, 1, use_bias=True, trainable=False, name="rgb_to_bgr")
        y = swap(x)
        swap.set_weights(
            [np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3), -np.array([103.939, 116.779, 123.68], "float32")]
        )
        return y
    return x  # EfficientNet rescales and normalises inside itself
