"""A training killed with SIGKILL resumes from its last complete backup, in the same MLflow
run, wherever the kill lands: mid-training, between a weights file and its marker, at
the end of a phase, or after its backup was torn.

The kills are aimed with tests/kill_at.py (the K-th weights write), not by polling, in
`imgclf train` processes forked from the fault launcher (tests/faults.py), whose imports
are done.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
from pathlib import Path

import mlflow
import pytest
import yaml

from faults import Launcher
from imgclf.params import Params, load_params
from imgclf.stages import augment, split, train, validate
from pipeline import make_project

pytestmark = pytest.mark.slow

EPOCHS = 6


def ready_project(root: Path, epochs: int = EPOCHS) -> Params:
    # No early stop: every epoch runs, so the K-th weights write is a known epoch's.
    params = make_project(root, ("cat", "dog"), per_class=20, train={"epochs": epochs, "early_stopping_patience": 1000})
    for stage in (validate, split, augment):
        stage.run(params)  # type: ignore[attr-defined]
    return params


def train_killed(launched: Launcher, root: Path, point: str, count: int) -> None:
    """`imgclf train`, SIGKILLed right after its ``count``-th weights write reaches ``point``."""
    logs = root / "launched"
    logs.mkdir(exist_ok=True)
    log = logs / f"train-{point}-{count}.log"
    [done] = launched.run([{"cwd": str(root), "args": ["train"], "log": str(log), "kill_after": [point, count]}])
    assert done.code == -signal.SIGKILL, f"not killed at {point} {count}: {log.read_text()[-2000:]}"


def epochs_logged(params: Params) -> list[int]:
    with (params.path("checkpoints") / "history.csv").open(encoding="utf-8", newline="") as src:
        return [int(r["epoch"]) for r in csv.DictReader(src)]


def run_of(params: Params) -> str:
    return str(json.loads((params.path("checkpoints") / "state.json").read_text(encoding="utf-8"))["run_id"])


def finished(params: Params, run_id: str) -> mlflow.entities.Run:
    """Train ran to the end, in ``run_id``, with one history row per epoch."""
    with params.path("train_history").open(encoding="utf-8", newline="") as src:
        assert [int(r["epoch"]) for r in csv.DictReader(src)] == list(range(params.train.epochs))
    saved = json.loads(params.path("run").read_text(encoding="utf-8"))
    assert saved["run_id"] == run_id  # the same MLflow run, continued
    assert not params.path("checkpoints").exists()
    mlflow.set_tracking_uri(saved["tracking_uri"])
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    return run


def test_a_kill_in_every_write_window_resumes(
    launched: Launcher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    params = ready_project(tmp_path)
    folder = params.path("checkpoints")
    # Epoch 2's backup is complete but not in place: the one before it is used.
    train_killed(launched, tmp_path, "weights-saved", 3)
    assert epochs_logged(params) == [0, 1, 2]
    run_id = run_of(params)
    assert not params.path("model").exists()
    # Resumed at epoch 2; killed when the phase's final weights are written, before they
    # are in place (the old code's window: weights written, phase marker not).
    train_killed(launched, tmp_path, "weights-saved", EPOCHS - 2 + 1)
    assert epochs_logged(params)[-1] == EPOCHS - 1
    # The final weights are in place, their marker is not: resumes after the last epoch.
    train_killed(launched, tmp_path, "weights-renamed", 1)
    assert not any(p.name.startswith(".tmp-") for p in folder.iterdir())
    # Then a fault tears the backup the marker names (what a disk fault or a copy cut short
    # leaves): detected by its digest, the phase starts again instead of crashing.
    named = folder / json.loads((folder / "main.json").read_text(encoding="utf-8"))["weights"]
    named.write_bytes(named.read_bytes()[: named.stat().st_size // 2])

    train.run(params)
    assert "is missing or torn: phase main starts again" in caplog.text
    finished(params, run_id)
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "loss")]
    # Resumed, only the epoch whose backup was not in place yet (2) is logged twice before
    # the tear; after it, the phase's six epochs again.
    assert sorted(steps) == sorted([0, 1, 2, 2, 3, 4, 5, *range(EPOCHS)])


def test_other_inputs_start_a_new_run_and_close_the_killed_one(launched: Launcher, tmp_path: Path) -> None:
    params = ready_project(tmp_path, epochs=3)
    train_killed(launched, tmp_path, "weights-saved", 2)
    killed = run_of(params)
    # The same images elsewhere: only paths.raw differs, which the old fingerprint ignored.
    shutil.copytree(tmp_path / "data" / "raw", tmp_path / "data" / "photos")
    settings = yaml.safe_load((tmp_path / "params.yaml").read_text(encoding="utf-8"))
    settings["paths"] = {"raw": "data/photos"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    params = load_params(tmp_path / "params.yaml")

    new = train.run(params).run_id
    assert new != killed
    run = finished(params, new)
    assert run.data.params["paths.raw"] == "data/photos"
    old = mlflow.MlflowClient().get_run(killed)
    assert old.info.status == "KILLED" and old.data.params["paths.raw"] == "data/raw"
