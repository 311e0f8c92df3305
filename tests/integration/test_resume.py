"""A training killed with SIGKILL resumes from its last epoch, in the same MLflow run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from imgclf.stages import augment, split, validate
from pipeline import make_project
from runner import imgclf

pytestmark = pytest.mark.slow


def epochs_logged(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8", newline="") as src:
        return sum(1 for _ in csv.DictReader(src))


def test_sigkill_then_restart_resumes(tmp_path: Path) -> None:
    # Many short epochs, no early stop: there is time to kill it mid-way.
    params = make_project(
        tmp_path,
        ("cat", "dog"),
        train={"epochs": 40, "batch_size": 4, "image_size": 32, "early_stopping_patience": 1000},
    )
    for stage in (validate, split, augment):
        stage.run(params)  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [str(Path(sys.executable).with_name("imgclf")), "train"]
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history = params.path("checkpoints") / "history.csv"
    deadline = time.monotonic() + 300
    while epochs_logged(history) < 5 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "training ended before it could be killed"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = epochs_logged(history)
    assert 5 <= killed_at < 40
    run_id = json.loads((params.path("checkpoints") / "state.json").read_text(encoding="utf-8"))["run_id"]
    assert not params.path("model").exists()

    second = imgclf("train", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    with params.path("train_history").open(encoding="utf-8", newline="") as src:
        assert [int(r["epoch"]) for r in csv.DictReader(src)] == list(range(40))
    saved = json.loads(params.path("run").read_text(encoding="utf-8"))
    assert saved["run_id"] == run_id  # the same MLflow run, continued
    mlflow.set_tracking_uri(saved["tracking_uri"])
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "loss")]
    # Started over, every epoch before the kill would be logged twice; resumed, at most
    # the one epoch in flight when the backup was taken is.
    assert steps.count(0) == 1
    assert len(steps) - len(set(steps)) <= 1 and set(steps) == set(range(40))
