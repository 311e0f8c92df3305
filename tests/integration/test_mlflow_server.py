"""The pipeline against a real `mlflow server` process on 127.0.0.1, instead of the local store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from pipeline import make_project, run_pipeline
from runner import mlflow_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("server")) as url:
        yield url


def test_runs_metrics_and_artifacts_go_to_the_server(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    params = make_project(tmp_path, ("cat", "dog"))
    run_pipeline(params)

    saved = json.loads(params.path("run").read_text(encoding="utf-8"))
    assert saved["tracking_uri"] == server
    assert not (tmp_path / "mlruns").exists()  # nothing went to a local store
    client = mlflow.MlflowClient(tracking_uri=server)
    run = client.get_run(saved["run_id"])
    assert run.info.status == "FINISHED" and "test_f1" in run.data.metrics
    assert run.data.params["train.epochs"] == "2"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "registry")} >= {"registry/model_card.md"}
    # The registry is the server's too: the version, its tags and the alias read back.
    version = client.get_model_version_by_alias("catdog-cnn", "champion")
    assert version.run_id == saved["run_id"] and len(version.tags["content_hash"]) == 64
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "imgclf" and experiment.artifact_location.startswith("mlflow-artifacts:")
