"""Fitting a Keras model resumably: per-epoch backups, a history that survives a kill,
and per-epoch MLflow metrics. Everything it writes lives under one checkpoint folder
(imgclf.training.checkpoints, which makes each backup crash-consistent).

Imports Keras at the top: only the train stage imports this module, inside its run().
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
import mlflow

from imgclf.params import Params
from imgclf.training.checkpoints import HISTORY_COLUMNS, Backup, Checkpoints

if TYPE_CHECKING:
    import tensorflow as tf


def fit(
    model: keras.Model,
    train: tf.data.Dataset,
    val: tf.data.Dataset,
    *,
    phase: str,
    epochs: int,
    initial_epoch: int,
    checkpoints: Checkpoints,
    params: Params,
    class_weight: dict[int, float] | None,
    track: bool,
) -> int:
    """Fit from ``initial_epoch`` to ``epochs`` (resuming a killed run of this phase); the last epoch run.

    Every worker of a multi-worker cluster calls this with its own ``checkpoints``
    (callbacks see the same all-reduced logs everywhere, so all stop at the same epoch);
    ``track`` is False on all but the chief, which alone logs epochs to MLflow.
    """
    cfg = params.train
    backup = checkpoints.backup(phase)
    if backup is not None and backup.done:  # this phase finished before a kill in a later one
        _load(model, backup)
        return backup.last_epoch
    callbacks = [
        keras.callbacks.EarlyStopping(patience=cfg.early_stopping_patience, restore_best_weights=True),
        _EpochLog(checkpoints, track),
    ]
    if cfg.lr_schedule == "plateau":  # a cosine schedule sets the rate itself
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(factor=cfg.reduce_lr_factor, patience=cfg.reduce_lr_patience)
        )
    # Last: at the end it backs up the weights EarlyStopping restored; after each epoch,
    # once the epoch's row is in the history.
    saver = _Backup(checkpoints, phase, initial_epoch, backup)
    model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        initial_epoch=initial_epoch,
        class_weight=class_weight,
        callbacks=[*callbacks, saver],
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=0,
    )
    return saver.last_epoch


def _load(model: keras.Model, backup: Backup) -> None:
    """Restore weights and optimizer state, as keras.callbacks.BackupAndRestore does."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its variables must exist to be loaded
    model.load_weights(backup.path)


class _Backup(keras.callbacks.Callback):  # type: ignore[misc]
    """keras.callbacks.BackupAndRestore, crash-consistent: each backup is complete and
    verified before it is used (imgclf.training.checkpoints), and the phase's end is one too."""

    def __init__(self, checkpoints: Checkpoints, phase: str, initial_epoch: int, resume: Backup | None) -> None:
        super().__init__()
        self.checkpoints = checkpoints
        self.phase = phase
        self.resume = resume
        self.last_epoch = (resume.epoch if resume else initial_epoch) - 1

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        # Keras keeps _initial_epoch on the model across fits: set it every time, or a
        # resumed first phase would move the start of the next one.
        self.model._initial_epoch = None
        if self.resume is not None:
            _load(self.model, self.resume)
            self.model._initial_epoch = self.resume.epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.last_epoch = epoch
        self.checkpoints.save(self.phase, self.model, epoch=epoch + 1, done=False, last_epoch=epoch)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        last = self.last_epoch
        self.checkpoints.save(self.phase, self.model, epoch=last + 1, done=True, last_epoch=last)


class _EpochLog(keras.callbacks.Callback):  # type: ignore[misc]
    """Appends each epoch to the history CSV (flushed, so a kill keeps it) and, if ``track``,
    to the active MLflow run."""

    def __init__(self, checkpoints: Checkpoints, track: bool) -> None:
        super().__init__()
        self.checkpoints = checkpoints
        self.track = track

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = dict(logs or {})
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row: dict[str, Any] = {"epoch": epoch, **{k: logs.get(k, "") for k in HISTORY_COLUMNS[1:]}}
        # MLflow first: once an epoch's row is in the CSV, its metrics are in the run.
        if self.track:
            mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "epoch" and v != ""}, step=epoch)
        self.checkpoints.append_history(row)
