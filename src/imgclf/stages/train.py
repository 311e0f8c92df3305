"""train stage: fit the network on the training files, validate on the val split.

Reads ``paths.augment_list`` (train) and ``paths.split`` (val); writes the model,
its classes, the MLflow run id and the per-epoch history. A training killed at any
point and started again resumes from its last finished epoch (same params and
data only), in the same MLflow run. ``train.distribute`` picks the TensorFlow
distribution strategy (see imgclf.training.distribution); in a multi-worker cluster only the
chief writes these outputs and logs to MLflow.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgclf import tracking
from imgclf.atomic import write_json
from imgclf.data.datasets import Examples, read_csv, split_examples
from imgclf.data.manifest import read_manifest, write_csv
from imgclf.errors import StageInputError
from imgclf.params import Params
from imgclf.serving.classifier import log_model
from imgclf.training import autoconf, trainset
from imgclf.training import checkpoints as checkpoints_core

if TYPE_CHECKING:
    from imgclf.training.checkpoints import Checkpoints

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setup:
    """A seeded, compiled model and its datasets, ready for the first fit."""

    model: Any
    backbone: Any  # transfer: the frozen keras.applications backbone; otherwise None
    train_data: Any  # tf.data.Dataset of (uint8 images, labels), shuffled
    val_data: Any
    class_weight: dict[int, float] | None
    steps: int  # batches an epoch


@dataclass(frozen=True)
class TrainResult:
    run_id: str  # "" on a non-chief worker, which logs nothing
    classes: list[str]
    epochs_run: int
    history: list[dict[str, str]]
    strategy: str  # the TF distribution strategy: default, MirroredStrategy, MultiWorkerMirroredStrategy
    replicas: int  # num_replicas_in_sync: devices sharing each batch, over all workers
    choices: list[str]  # what train.image_size / augment.preset "auto" chose (autoconf)


def class_weights(labels: list[int], num_classes: int) -> dict[int, float]:
    """Inverse frequency, normalised so a balanced set gets 1.0 everywhere."""
    counts = Counter(labels)
    return {c: len(labels) / (num_classes * counts[c]) if counts[c] else 0.0 for c in range(num_classes)}


def run(params: Params) -> TrainResult:
    listed, split_csv = params.path("augment_list"), params.path("split")
    if not listed.exists() or not split_csv.exists():
        raise StageInputError("no training files: run `imgclf split` and `imgclf augment` first")
    # From here on every setting is a number: the fingerprint, MLflow and classes.json see what ran.
    resolved = autoconf.resolve_from_manifest(params)
    params, choices = resolved.params, resolved.choices  # imgclf train prints the choices
    cfg = params.train
    train_rows = read_csv(listed)
    classes = sorted({r["label"] for r in read_csv(split_csv)})
    train = Examples([params.root / r["file"] for r in train_rows], [classes.index(r["label"]) for r in train_rows])
    val = split_examples(split_csv, params.path("raw"), "val", classes)
    if not train.files or not val.files:
        raise StageInputError("the train or val split is empty: add images or change split.val")
    trainset.require_files(params.root, train, val)  # before TensorFlow, which would fail with a traceback
    import mlflow

    from imgclf.training import distribution

    cluster = distribution.tf_config() if cfg.distribute == "multi_worker" else {}
    # Before any TensorFlow op (importing is fine): a cluster can only be joined before TF's runtime starts.
    strategy = distribution.make_strategy(cfg.distribute)
    name, replicas = distribution.strategy_name(strategy), int(strategy.num_replicas_in_sync)
    log.info("training with %s on %d replica(s)", name, replicas)
    fingerprint = checkpoints_core.training_fingerprint(params, listed, split_csv, params.path("manifest"))

    if not distribution.is_chief(cluster):
        # TF's pattern for the other workers: the same steps (every step all-reduces with
        # the chief), their files in a temporary folder, nothing logged.
        folder = distribution.worker_folder(cluster, fingerprint)
        checkpoints = checkpoints_core.Checkpoints(folder, fingerprint, key="the worker's folder")
        model = _fit(params, strategy, train, val, len(classes), checkpoints, track=False)
        history = checkpoints.history_rows()
        model.save(checkpoints.folder / "model.keras")  # as the chief does: saving may need every worker
        checkpoints.clear()
        return TrainResult("", classes, len(history), history, strategy=name, replicas=replicas, choices=choices)

    checkpoints = checkpoints_core.Checkpoints(params.path("checkpoints"), fingerprint)
    tracking.use_experiment(params)
    with mlflow.start_run(run_id=checkpoints.run_id) as run:
        if checkpoints.run_id is None:  # a new training, not a resumed one
            checkpoints.run_id = run.info.run_id
            _log_inputs(params, train_rows, split_csv)
            # What ran, beside what was asked (train.distribute): visible in the UI's params.
            mlflow.log_params({"strategy": name, "replicas": replicas})
        model = _fit(params, strategy, train, val, len(classes), checkpoints, track=True)
        history = checkpoints.history_rows()
        model_uri = _save_outputs(params, model, classes, history)
        tracking.save_run(params, run, model_uri)
    checkpoints.clear()
    return TrainResult(
        run.info.run_id, classes, len(history), history, strategy=name, replicas=replicas, choices=choices
    )


def _fit(
    params: Params,
    strategy: Any,
    train: Examples,
    val: Examples,
    num_classes: int,
    checkpoints: Checkpoints,
    *,
    track: bool,
) -> Any:
    """Build, compile and fit (head, then fine-tuning for transfer) under ``strategy``; the model."""
    from imgclf.training import distribution, fitting

    cfg = params.train
    # Model and optimizer variables are created here, so mirrored across the replicas.
    with strategy.scope():
        setup = prepare(params, train, val, num_classes)
        train_data, val_data = setup.train_data, setup.val_data
        if cfg.distribute == "multi_worker":
            train_data, val_data = distribution.shard_by_data(train_data), distribution.shard_by_data(val_data)
            distribution.build_from_spec(setup.model, train_data)
        fit = dict(
            train=train_data,
            val=val_data,
            checkpoints=checkpoints,
            params=params,
            class_weight=setup.class_weight,
            track=track,
        )
        last = fitting.fit(setup.model, phase="main", epochs=cfg.epochs, initial_epoch=0, **fit)
        if setup.backbone is not None and params.model.fine_tune_layers and cfg.fine_tune_epochs:
            _unfreeze_top(setup.backbone, params.model.fine_tune_layers)
            rate = _rate(cfg.fine_tune_learning_rate, cfg.lr_schedule, setup.steps * cfg.fine_tune_epochs)
            _compile(setup.model, rate, num_classes)  # a new optimizer: its variables need the scope too
            end = last + 1 + cfg.fine_tune_epochs
            fitting.fit(setup.model, phase="fine_tune", epochs=end, initial_epoch=last + 1, **fit)
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


def _log_inputs(params: Params, train_rows: list[dict[str, str]], split_csv: Path) -> None:
    """Params, provenance tags and the three splits as MLflow datasets.

    Each dataset's digest is over its images' content hashes (from the manifest), not
    their paths: renaming a file keeps the digest, changing a pixel changes it.
    """
    import warnings

    import mlflow
    import pandas as pd

    mlflow.log_params(tracking.flatten(params.model_dump(by_alias=True, exclude={"root"})))
    mlflow.set_tags(tracking.provenance(params))
    content = {r.path: r.sha256 for r in read_manifest(params.path("manifest"))}
    split_rows = read_csv(split_csv)
    sets = {
        "training": (params.paths.augment_list, [{**r, "path": r["source"]} for r in train_rows]),
        "validation": (params.paths.split, [r for r in split_rows if r["split"] == "val"]),
        "test": (params.paths.split, [r for r in split_rows if r["split"] == "test"]),
    }
    for context, (source, rows) in sets.items():
        lines = sorted(f"{r['label']},{content.get(r['path'], r['path'])}" for r in rows)
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]  # MLflow allows 36
        with warnings.catch_warnings():
            # MLflow registers one source class under two schemes and warns about its own ambiguity.
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways.*")
            dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
                pd.DataFrame(rows), source=source, name=context, targets="label", digest=digest
            )
        mlflow.log_input(dataset, context=context)


def _save_outputs(params: Params, model: Any, classes: list[str], history: list[dict[str, str]]) -> str:
    """The model file (atomically), its classes, the history CSV and plot, and the logged
    pyfunc model; returns the logged model's URI (what register registers)."""
    from imgclf.evaluation.reporting import history_plot

    path = params.path("model")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.stem}.tmp.keras")
    model.save(staging)
    staging.replace(path)
    write_json(params.path("classes"), {"classes": classes, "image_size": params.train.size})
    write_csv(params.path("train_history"), history, checkpoints_core.HISTORY_COLUMNS)
    import mlflow

    mlflow.log_figure(history_plot(history), "plots/train_history.png")
    mlflow.log_artifact(str(params.path("classes")))
    uri = log_model(path, params.path("classes"), params.validation.max_pixels)
    log.info("model saved to %s and logged as %s; %s", path, uri, json.dumps({"classes": classes}))
    return uri
