"""Fitting a Keras model resumably: per-epoch backups, a history that survives a kill,
and per-epoch MLflow metrics. Everything it writes lives under one checkpoint folder.

Imports Keras at the top: only the train stage imports this module, inside its run().
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import mlflow

from imgclf.params import Params

if TYPE_CHECKING:
    import tensorflow as tf

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")


def fingerprint(params: Params, *inputs: Path) -> str:
    """What a training depends on: a backup made for anything else must not be resumed."""
    digest = hashlib.sha256()
    settings = params.model_dump(by_alias=True, include={"augment", "model", "train"})
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for path in inputs:
        digest.update(path.read_bytes())
    return digest.hexdigest()


class Checkpoints:
    """The checkpoint folder: a state file (fingerprint, MLflow run id), backups, history."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = folder
        state = self._read_state()
        if state.get("fingerprint") != fingerprint:
            shutil.rmtree(folder, ignore_errors=True)  # left by another configuration: start over
            state = {"fingerprint": fingerprint}
        folder.mkdir(parents=True, exist_ok=True)
        self.state = state
        self._write_state()

    @property
    def run_id(self) -> str | None:
        return self.state.get("run_id")

    @run_id.setter
    def run_id(self, value: str) -> None:
        self.state["run_id"] = value
        self._write_state()

    def history_rows(self) -> list[dict[str, str]]:
        """One row per epoch; an epoch redone after a kill keeps its latest row."""
        path = self.folder / "history.csv"
        if not path.exists():
            return []
        with path.open(encoding="utf-8", newline="") as src:
            rows = {int(r["epoch"]): r for r in csv.DictReader(src)}
        return [rows[e] for e in sorted(rows)]

    def phase_done(self, phase: str) -> Path:
        return self.folder / f"{phase}.weights.h5"

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _read_state(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.folder / "state.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def _write_state(self) -> None:
        (self.folder / "state.json").write_text(json.dumps(self.state), encoding="utf-8")


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
    done = checkpoints.phase_done(phase)
    if done.exists():  # this phase finished before a kill in a later one
        model.load_weights(done)
        return int(json.loads((checkpoints.folder / f"{phase}.json").read_text(encoding="utf-8"))["last_epoch"])
    log = _EpochLog(checkpoints.folder / "history.csv", track)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(checkpoints.folder / f"backup-{phase}"), delete_checkpoint=True),
        keras.callbacks.EarlyStopping(patience=cfg.early_stopping_patience, restore_best_weights=True),
        log,
    ]
    if cfg.lr_schedule == "plateau":  # a cosine schedule sets the rate itself
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(factor=cfg.reduce_lr_factor, patience=cfg.reduce_lr_patience)
        )
    model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        initial_epoch=initial_epoch,
        class_weight=class_weight,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=0,
    )
    last = log.last_epoch if log.last_epoch is not None else epochs - 1
    model.save_weights(done)
    (checkpoints.folder / f"{phase}.json").write_text(json.dumps({"last_epoch": last}), encoding="utf-8")
    return last


class _EpochLog(keras.callbacks.Callback):  # type: ignore[misc]
    """Appends each epoch to a CSV (flushed, so a kill keeps it) and, if ``track``, to the active MLflow run."""

    def __init__(self, path: Path, track: bool) -> None:
        super().__init__()
        self.path = path
        self.track = track
        self.last_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = dict(logs or {})
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row: dict[str, Any] = {"epoch": epoch, **{k: logs.get(k, "") for k in HISTORY_COLUMNS[1:]}}
        # MLflow first: once an epoch's row is in the CSV, its metrics are in the run.
        if self.track:
            mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "epoch" and v != ""}, step=epoch)
        new = not self.path.exists()
        with self.path.open("a", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.last_epoch = epoch
