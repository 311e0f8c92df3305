"""train.distribute on one machine, real TensorFlow: MirroredStrategy over two logical
CPU devices, and MultiWorkerMirroredStrategy as a one-worker and a two-worker cluster.

Each training runs in a process of its own (tests/train_on_cpus.py): logical devices
and cluster membership can only be set before TensorFlow's runtime starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from imgclf.params import Params
from imgclf.stages import augment, split, validate
from pipeline import make_project
from runner import free_port

pytestmark = pytest.mark.slow

HELPER = Path(__file__).resolve().parents[1] / "train_on_cpus.py"


def ready_project(root: Path, distribute: str) -> Params:
    params = make_project(root, ("cat", "dog"), train={"distribute": distribute})
    for stage in (validate, split, augment):
        stage.run(params)  # type: ignore[attr-defined]
    return params


def start_training(params: Params, cpus: int, **env: str) -> subprocess.Popen[str]:
    """The train stage in a child process whose CPU shows as ``cpus`` logical devices."""
    clean = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI", "TF_CONFIG"}}
    command = [sys.executable, str(HELPER), str(params.root / "params.yaml"), str(cpus)]
    return subprocess.Popen(command, env={**clean, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result_of(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The TrainResult the child printed as its last line."""
    try:
        out, err = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    assert process.returncode == 0, err[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


def logged_params(params: Params, run_id: str) -> dict[str, str]:
    saved = json.loads(params.path("run").read_text(encoding="utf-8"))
    assert saved["run_id"] == run_id
    mlflow.set_tracking_uri(saved["tracking_uri"])
    return dict(mlflow.MlflowClient().get_run(run_id).data.params)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Params, subprocess.Popen[str]]]]:
    """The mirrored and the one-worker trainings, started together: each is a process of its
    own anyway, and on two cores the second one's TensorFlow import overlaps the first's."""
    mirrored = ready_project(tmp_path_factory.mktemp("mirrored"), "mirrored")
    one_worker = ready_project(tmp_path_factory.mktemp("one_worker"), "multi_worker")
    trainings = {
        "mirrored": (mirrored, start_training(mirrored, cpus=2)),
        "one_worker": (one_worker, start_training(one_worker, cpus=1)),
    }
    yield trainings
    for _, process in trainings.values():  # a test not run (-k) leaves its training behind
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_mirrored_trains_on_two_cpu_devices(started: dict[str, tuple[Params, subprocess.Popen[str]]]) -> None:
    import keras

    params, process = started["mirrored"]
    result = result_of(process)
    assert (result["strategy"], result["replicas"], result["epochs_run"]) == ("MirroredStrategy", 2, 2)
    logged = logged_params(params, result["run_id"])
    assert (logged["strategy"], logged["replicas"], logged["train.distribute"]) == ("MirroredStrategy", "2", "mirrored")

    model = keras.models.load_model(params.path("model"), safe_mode=True)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.synchronized for layer in norms)  # statistics over the global batch
    images = np.random.default_rng(0).integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    predicted = np.asarray(model.predict(images, verbose=0))
    assert predicted.shape == (3, 1) and np.all((predicted >= 0) & (predicted <= 1))
    assert len(params.path("train_history").read_text(encoding="utf-8").splitlines()) == 3  # header + 2 epochs
    assert not params.path("checkpoints").exists()


def test_multi_worker_without_tf_config_is_a_one_worker_cluster(
    started: dict[str, tuple[Params, subprocess.Popen[str]]],
) -> None:
    params, process = started["one_worker"]
    result = result_of(process)
    assert (result["strategy"], result["replicas"]) == ("MultiWorkerMirroredStrategy", 1)
    assert logged_params(params, result["run_id"])["replicas"] == "1"
    assert params.path("model").stat().st_size > 0


def test_two_workers_train_together_and_only_the_chief_writes(tmp_path: Path) -> None:
    params = ready_project(tmp_path / "project", "multi_worker")
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    temporary = [tmp_path / "tmp0", tmp_path / "tmp1"]
    workers = []
    for index, folder in enumerate(temporary):
        folder.mkdir()
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(start_training(params, cpus=1, TF_CONFIG=tf_config, TMPDIR=str(folder)))
    chief, other = (result_of(worker) for worker in workers)

    # One replica per worker, each step over both: the same epochs on each.
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["epochs_run"] == other["epochs_run"] == 2
    assert chief["run_id"] and other["run_id"] == ""
    assert logged_params(params, chief["run_id"])["replicas"] == "2"
    runs = mlflow.search_runs(experiment_names=[params.tracking.experiment], output_format="list")
    assert [run.info.run_id for run in runs] == [chief["run_id"]]  # the other worker logged nothing
    assert params.path("model").exists() and not params.path("checkpoints").exists()
    assert not list(temporary[1].glob("imgclf-*"))  # its temporary model and backups, removed
