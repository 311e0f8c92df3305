"""The network and its datasets compiled for training, and the fit in its phases: the head
(all of a from-scratch network), then, for a transfer backbone, fine-tuning its top layers.

What the train stage runs and what bench/train_speed.py times (``prepare``). TensorFlow,
Keras and the data pipeline are imported inside the functions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgclf.data.datasets import Examples
from imgclf.params import Params

if TYPE_CHECKING:
    from imgclf.training.checkpoints import Checkpoints


@dataclass(frozen=True)
class Setup:
    """A seeded, compiled model and its datasets, ready for the first fit."""

    model: Any
    backbone: Any  # transfer: the frozen keras.applications backbone; otherwise None
    train_data: Any  # tf.data.Dataset of (uint8 images, labels), shuffled
    val_data: Any
    class_weight: dict[int, float] | None
    steps: int  # batches an epoch


def class_weights(labels: list[int], num_classes: int) -> dict[int, float]:
    """Inverse frequency, normalised so a balanced set gets 1.0 everywhere."""
    counts = Counter(labels)
    return {c: len(labels) / (num_classes * counts[c]) if counts[c] else 0.0 for c in range(num_classes)}


def fit(
    params: Params,
    strategy: Any,
    train: Examples,
    val: Examples,
    num_classes: int,
    checkpoints: Checkpoints,
    *,
    track: bool,
) -> Any:
    """Build, compile and fit (head, then fine-tuning for transfer) under ``strategy``; the model.

    Args:
        checkpoints: where each epoch is saved and a killed training resumes from.
        track: log each epoch to the active MLflow run (the chief; other workers do not).
    """
    from imgclf.training import distribution, fitting

    cfg = params.train
    # Model and optimizer variables are created here, so mirrored across the replicas.
    with strategy.scope():
        setup = prepare(params, train, val, num_classes)
        train_data, val_data = setup.train_data, setup.val_data
        if cfg.distribute == "multi_worker":
            train_data, val_data = distribution.shard_by_data(train_data), distribution.shard_by_data(val_data)
            distribution.build_from_spec(setup.model, train_data)
        each = dict(
            train=train_data,
            val=val_data,
            checkpoints=checkpoints,
            params=params,
            class_weight=setup.class_weight,
            track=track,
        )
        last = fitting.fit(setup.model, phase="main", epochs=cfg.epochs, initial_epoch=0, **each)
        if setup.backbone is not None and params.model.fine_tune_layers and cfg.fine_tune_epochs:
            _unfreeze_top(setup.backbone, params.model.fine_tune_layers)
            rate = _rate(cfg.fine_tune_learning_rate, cfg.lr_schedule, setup.steps * cfg.fine_tune_epochs)
            _compile(setup.model, rate, num_classes)  # a new optimizer: its variables need the scope too
            end = last + 1 + cfg.fine_tune_epochs
            fitting.fit(setup.model, phase="fine_tune", epochs=end, initial_epoch=last + 1, **each)
    return setup.model


def prepare(params: Params, train: Examples, val: Examples, num_classes: int, epochs: int | None = None) -> Setup:
    """The model and datasets of ``params``, compiled for the first phase.

    What ``run`` fits, and what bench/train_speed.py times: ``params`` resolved by
    imgclf.training.autoconf (no ``auto`` left). ``epochs`` overrides
    ``train.epochs`` for the length of the learning-rate schedule. Built and compiled
    under the active distribution strategy: inside ``strategy.scope()``, or outside any
    for TF's one-device default.
    """
    import keras
    import tensorflow as tf

    from imgclf.data.datasets import make_dataset
    from imgclf.training import network

    cfg = params.train
    keras.utils.set_random_seed(cfg.seed)
    augment = network.augmentation(params.augment, cfg.seed) if params.augment.mode == "online" else None
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    model, backbone = network.build_model(num_classes, cfg.size, params.model, augment, sync_batch_norm=replicas > 1)
    if backbone is not None:
        backbone.trainable = False  # phase 1: only the head learns
    steps = -(-len(train.files) // cfg.batch_size)  # global batches: the same on any number of replicas
    _compile(model, _rate(cfg.learning_rate, cfg.lr_schedule, steps * (epochs or cfg.epochs)), num_classes)
    return Setup(
        model=model,
        backbone=backbone,
        train_data=make_dataset(train, cfg.size, cfg.batch_size, shuffle_seed=cfg.seed),
        val_data=make_dataset(val, cfg.size, cfg.batch_size),
        class_weight=class_weights(train.labels, num_classes) if cfg.class_weights else None,
        steps=steps,
    )


def _rate(initial: float, schedule: str, steps: int) -> Any:
    """The learning rate: a cosine decay to 0 over ``steps``, or a constant that
    ReduceLROnPlateau may lower."""
    import keras

    return keras.optimizers.schedules.CosineDecay(initial, steps) if schedule == "cosine" else initial


def _compile(model: Any, learning_rate: Any, num_classes: int) -> None:
    import keras

    loss = "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"])


def _unfreeze_top(backbone: Any, layers: int) -> None:
    """Unfreeze the top ``layers`` of the backbone; batch norm stays frozen (its statistics
    are ImageNet's, and small batches would wreck them)."""
    import keras

    backbone.trainable = True
    for index, layer in enumerate(backbone.layers):
        top = index >= len(backbone.layers) - layers
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)
