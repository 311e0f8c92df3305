"""The checkpoint folder a killed training resumes from, and what makes it valid.

It holds ``state.json`` (the fingerprint of every input of the training, and the MLflow
run it logs to), ``history.csv`` (a row per finished epoch) and, per phase, a marker
``<phase>.json`` naming its latest complete weights file and that file's sha256.

Crash consistency: weights are written under a temporary name and renamed into place
once complete (``os.replace`` is atomic), and the marker is renamed into place only
after the file it names, so a kill at any instant leaves the previous backup or the
new one. A marker whose file is missing or fails its digest (a torn copy, a disk
fault) is dropped: that phase starts again from its first epoch instead of crashing.

The folder is created with ``imgclf.owned.mark`` and removed only by
``imgclf.owned.remove``: params that name a folder of the user's
(``paths.checkpoints: data/raw``) fail with one line instead of wiping it.

No heavy imports: Keras models arrive as ``Any``, MLflow is imported by tracking when
an abandoned run must be closed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from imgclf import owned, tracking
from imgclf.atomic import write_json
from imgclf.params import Params

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr")
# The params sections training reads; split and validate settings reach it through the
# split and manifest files, whose content is hashed, and evaluate/register come after it.
TRAINING_SECTIONS = {"augment", "model", "train", "tracking", "paths"}
# The modules that build, feed and fit the model: what a backup's variables belong to.
TRAINING_CODE = (  # relative to the imgclf package
    "stages/train.py",
    "training/phases.py",
    "training/fitting.py",
    "training/checkpoints.py",
    "training/network.py",
    "training/distribution.py",
    "data/datasets.py",
    "data/imaging.py",
)
_TEMPORARY = ".tmp-"


def training_fingerprint(params: Params, *inputs: Path) -> str:
    """What a training depends on; a backup made for anything else must not be resumed.

    Covers the training's params sections (paths included: a resumed run keeps the
    params logged when it started), the tracking store (a run id means nothing in
    another), the content of ``inputs`` (the training list, the split, the manifest
    with every image's hash) and the code (code_version: a backup holds the variables
    of one model definition).
    """
    digest = hashlib.sha256()
    settings = params.model_dump(by_alias=True, include=TRAINING_SECTIONS)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(tracking.tracking_uri(params).encode())
    for path in inputs:
        digest.update(str(path).encode())
        digest.update(path.read_bytes() if path.is_file() else b"\0missing")
    digest.update(code_version().encode())
    return digest.hexdigest()


def code_version() -> str:
    """A digest of the code that defines the model and its training, and of the Keras and
    TensorFlow versions.

    Read from the files, not git: a training run from a dirty tree or an installed wheel
    has no commit that says what ran. Only the modules the train stage runs, so an edit
    elsewhere (serving, the CLI) keeps a killed training resumable.
    """
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for name in TRAINING_CODE:
        digest.update(name.encode())
        digest.update((package / name).read_bytes())
    for library in ("keras", "tensorflow"):
        try:
            digest.update(f"{library}=={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library} missing".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Backup:
    """A phase's latest complete weights, checked against its digest."""

    path: Path
    epoch: int  # the next epoch to run: the backup holds the weights after epoch - 1
    done: bool  # the phase finished: its final weights (early stopping's best ones)
    last_epoch: int  # the last epoch the phase ran


class Checkpoints:
    """The checkpoint folder: state (fingerprint, MLflow run), per-phase backups, history."""

    def __init__(self, folder: Path, fingerprint: str, key: str = "paths.checkpoints") -> None:
        """Open ``folder`` for a training with ``fingerprint``, starting over if it was made for another.

        Args:
            key: what named the folder (a params key), for the error when it is not imgclf's.

        Raises:
            StageInputError: the folder exists and imgclf did not make it; it is left untouched.
            TrackingUnavailable: a run left RUNNING by a killed training could not be closed.
        """
        self.folder = folder
        self.key = key
        # A state file is trusted only inside a folder imgclf marked as its own.
        state = self._read_state() if (folder / owned.MARKER).is_file() else {}
        if state.get("fingerprint") != fingerprint:
            if state.get("run_id") and state.get("tracking_uri"):
                # Its training was killed and will not be resumed: close the run before
                # forgetting it, or it stays RUNNING in the UI for good.
                tracking.end_abandoned_run(str(state["run_id"]), str(state["tracking_uri"]))
            owned.remove(folder, key)
            state = {"fingerprint": fingerprint}
        owned.mark(folder, "train")
        for stale in folder.glob(f"{_TEMPORARY}*"):  # a write a kill interrupted
            stale.unlink()
        self.state = state
        self._write_state()

    @property
    def run_id(self) -> str | None:
        return self.state.get("run_id")

    @run_id.setter
    def run_id(self, value: str) -> None:
        import mlflow

        # The store too: a later training with other inputs closes the run there.
        self.state.update(run_id=value, tracking_uri=mlflow.get_tracking_uri())
        self._write_state()

    def history_rows(self) -> list[dict[str, str]]:
        """One row per epoch; an epoch redone after a kill keeps its latest row."""
        path = self.folder / "history.csv"
        if not path.exists():
            return []
        with path.open(encoding="utf-8", newline="") as src:
            rows = {int(r["epoch"]): r for r in csv.DictReader(src) if _complete(r)}
        return [rows[e] for e in sorted(rows)]

    def append_history(self, row: dict[str, Any]) -> None:
        """Add an epoch's row, first cutting off a row a kill left half-written."""
        path = self.folder / "history.csv"
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                with path.open("r+b") as out:
                    out.truncate(data.rfind(b"\n") + 1)
        new = not path.exists() or path.stat().st_size == 0
        with path.open("a", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def backup(self, phase: str) -> Backup | None:
        """The phase's latest backup, or None (never started, or its backup was torn)."""
        marker = self.folder / f"{phase}.json"
        try:
            saved = json.loads(marker.read_text(encoding="utf-8"))
            found = Backup(
                self.folder / Path(saved["weights"]).name,
                int(saved["epoch"]),
                bool(saved["done"]),
                int(saved["last_epoch"]),
            )
            intact = found.path.is_file() and _sha256(found.path) == saved["sha256"]
        except FileNotFoundError:
            found, intact = None, False
        except (OSError, ValueError, KeyError, TypeError):
            found, intact = None, False
            log.warning("%s is unreadable: phase %s starts again", marker, phase)
        if found is not None and not intact:
            log.warning("%s is missing or torn: phase %s starts again", found.path, phase)
            found = None
        if found is None:
            marker.unlink(missing_ok=True)
        self._remove_weights(phase, keep=found.path if found else None)
        return found

    def save(self, phase: str, model: Any, *, epoch: int, done: bool, last_epoch: int) -> None:
        """Back up ``model``'s weights (optimizer state included), then point the marker at them.

        Args:
            epoch: the next epoch to run when resuming from this backup.
            done: the phase finished; a restart loads these weights and skips it.
        """
        name = f"{phase}-final.weights.h5" if done else f"{phase}-e{epoch}.weights.h5"
        staging = self.folder / f"{_TEMPORARY}{uuid.uuid4().hex}.weights.h5"  # Keras wants this suffix
        model.save_weights(staging)
        digest = _sha256(staging)
        os.replace(staging, self.folder / name)
        marker = {"weights": name, "sha256": digest, "epoch": epoch, "done": done, "last_epoch": last_epoch}
        write_json(self.folder / f"{phase}.json", marker)  # atomic too: after the file it names
        self._remove_weights(phase, keep=self.folder / name)

    def clear(self) -> None:
        """Remove the folder (only if it is imgclf's): the training it served has finished."""
        owned.remove(self.folder, self.key)

    def _remove_weights(self, phase: str, keep: Path | None) -> None:
        """Older backups of the phase, and any a kill left that no marker names."""
        for path in self.folder.glob(f"{phase}-*.weights.h5"):
            if path != keep:
                path.unlink()

    def _read_state(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.folder / "state.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return {}

    def _write_state(self) -> None:
        write_json(self.folder / "state.json", self.state)


def _complete(row: dict[str, str | None]) -> bool:
    return all(row.get(column) is not None for column in HISTORY_COLUMNS) and str(row["epoch"]).isdigit()


def _sha256(path: Path) -> str:
    with path.open("rb") as src:
        return hashlib.file_digest(src, "sha256").hexdigest()
