"""The Prefect flow `training-pipeline` end to end, against a real (temporary) Prefect server:
every stage through DVC in a git + DVC repo in tmp_path, artifacts, a no-op rerun, and the
failure path."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterName,
)
from prefect.settings import PREFECT_API_URL, temporary_settings

from dvcrepo import sh
from images import class_folder, write
from imgclf.errors import ImgclfError
from imgclf.orchestration.dvcrun import STAGES
from imgclf.orchestration.flowrun import run_flow
from imgclf.params import load_params
from imgclf.tracking import dvc_md5
from pipeline import flow_project
from runner import free_port, mlflow_server

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(autouse=True)
def local_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def flow_run_state(outcome_run_id: str) -> str:
    with get_client(sync_client=True) as client:
        return str(client.read_flow_run(outcome_run_id).state_name)


def test_the_flow_runs_every_stage_then_skips_them_all(tmp_path: Path) -> None:
    repo = flow_project(tmp_path / "project")
    params = load_params(repo / "params.yaml")

    outcome = run_flow(params, repo / "params.yaml")
    assert outcome == {"data": "new version", **dict.fromkeys(STAGES, "ran")}
    # The new images were recorded (dvc add) and every stage is in dvc.lock: nothing is pending.
    assert "Data and pipelines are up to date." in sh("dvc", "status", cwd=repo).stdout
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    assert set(lock["stages"]) == set(STAGES)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("catdog-cnn", "champion").version) == "1"

    with get_client(sync_client=True) as prefect:
        [flow_run] = prefect.read_flow_runs(limit=1, sort="EXPECTED_START_TIME_DESC")  # type: ignore[arg-type]
        assert flow_run.state_name == "Completed"
        tasks = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        assert {t.name for t in tasks} >= set(STAGES) and all(t.state_name == "Completed" for t in tasks)
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == {"validation-summary", "test-metrics", "confusion-matrix", "promotion-decision"}
    assert "# Validation: passed" in str(by_key["validation-summary"].data)
    assert "f1" in str(by_key["test-metrics"].data)
    assert "http://127.0.0.1:5000/#/experiments/" in str(by_key["confusion-matrix"].data)
    assert "version 1: champion" in str(by_key["promotion-decision"].data)

    started = time.monotonic()
    assert run_flow(params, repo / "params.yaml") == {"data": "unchanged", **dict.fromkeys(STAGES, "skipped")}
    print(f"second flow run, nothing changed: {time.monotonic() - started:.1f} s")
    assert len(client.search_model_versions("name='catdog-cnn'")) == 1

    # New images land: the next run records them as a new data version, then does everything again.
    recorded = dvc_md5(repo / "data" / "raw.dvc")
    class_folder(repo / "data" / "raw", "cat", 10, seed=3, fmt="JPEG")
    # check's input, params.yaml, did not change: only the stages after it rerun.
    rerun = {"data": "new version", **dict.fromkeys(STAGES, "ran"), "check": "skipped"}
    assert run_flow(params, repo / "params.yaml") == rerun
    assert dvc_md5(repo / "data" / "raw.dvc") != recorded
    assert "Data and pipelines are up to date." in sh("dvc", "status", cwd=repo).stdout
    assert len(client.search_model_versions("name='catdog-cnn'")) == 2
    assert client.get_model_version("catdog-cnn", "2").tags["data_raw_md5"] == dvc_md5(repo / "data" / "raw.dvc")


def test_a_broken_data_set_fails_the_flow_at_validate_and_registers_nothing(tmp_path: Path) -> None:
    repo = flow_project(tmp_path / "broken", per_class=0)
    for label in ("cat", "dog"):
        for i in range(12):
            write(repo / "data" / "raw" / label / f"{i}.png", b"\x89PNG\r\n\x1a\n" + bytes([i]) * 40)
    params = load_params(repo / "params.yaml")

    with pytest.raises(ImgclfError, match=r"^stage validate failed: validation failed") as failure:
        run_flow(params, repo / "params.yaml")
    assert "\n" not in str(failure.value)
    with get_client(sync_client=True) as prefect:
        [flow_run] = prefect.read_flow_runs(limit=1, sort="EXPECTED_START_TIME_DESC")  # type: ignore[arg-type]
        assert flow_run.state_name == "Failed" and "stage validate failed" in str(flow_run.state.message)
        tasks = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    assert [t.name for t in tasks if t.state_name == "Failed"] == ["validate"]  # not retried, nothing after
    [summary] = [a for a in artifacts if a.key == "validation-summary"]  # why, in the UI
    assert "# Validation: FAILED" in str(summary.data)
    assert {t.name for t in tasks} & {"split", "train", "register"} == set()
    assert not (repo / "models" / "run.json").exists() and not (repo / "mlruns" / "mlflow.db").exists()
    report = json.loads((repo / "reports" / "validation.json").read_text(encoding="utf-8"))
    assert report["success"] is False


def test_a_tracking_server_that_does_not_answer_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train finds no tracking server (exit 75, a transient fault): the task waits its retry
    delay and runs again; the server is up by then and the flow completes."""
    repo = flow_project(tmp_path / "retry", orchestrate={"retries": 1, "retry_delay": 40})
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries take minutes
    api, finished, events = PREFECT_API_URL.value(), threading.Event(), []

    def start_the_server_once_train_awaits_its_retry() -> None:
        deadline = time.monotonic() + 600
        while not finished.is_set() and time.monotonic() < deadline:
            with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as prefect:
                waiting = prefect.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=["train"])))
            if any(t.state_name == "AwaitingRetry" for t in waiting):
                started = time.monotonic()
                with mlflow_server(tmp_path / "server", port=int(url.rsplit(":", 1)[1])):
                    events.append(f"mlflow server up in {time.monotonic() - started:.1f} s")
                    finished.wait(600)
                return
            time.sleep(1)

    helper = threading.Thread(target=start_the_server_once_train_awaits_its_retry, daemon=True)
    helper.start()
    try:
        outcome = run_flow(load_params(repo / "params.yaml"), repo / "params.yaml")
        version = mlflow.MlflowClient(tracking_uri=url).get_model_version_by_alias("catdog-cnn", "champion")
    finally:
        finished.set()
        helper.join(timeout=120)
    print(*events)
    assert outcome == {"data": "new version", **dict.fromkeys(STAGES, "ran")} and str(version.version) == "1"
    with get_client(sync_client=True) as prefect:
        [flow_run] = prefect.read_flow_runs(limit=1, sort="EXPECTED_START_TIME_DESC")  # type: ignore[arg-type]
        [train] = prefect.read_task_runs(  # this run's; earlier tests' runs are in the harness's database too
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=["train"])),
        )
    assert train.state_name == "Completed" and train.run_count == 2  # failed once, then retried


def test_a_served_deployment_runs_on_its_interval(prefect_server: str, tmp_path: Path) -> None:
    """`imgclf schedule --interval 10` against a real `prefect server`: a scheduled flow run
    happens and completes the pipeline; then the process is stopped."""
    repo = flow_project(tmp_path / "scheduled")
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    command = [str(Path(sys.executable).with_name("imgclf")), "schedule", "--interval", "10"]
    served = subprocess.Popen(
        command, cwd=repo, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline, completed, broken = time.monotonic() + 300, [], []
        while not (completed or broken) and time.monotonic() < deadline and served.poll() is None:
            time.sleep(3)
            with temporary_settings({PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as prefect:
                runs = prefect.read_flow_runs(
                    deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["scheduled"]))
                )
            completed = [r for r in runs if r.state_name == "Completed"]
            broken = [r for r in runs if r.state_name in ("Failed", "Crashed")]
    finally:
        if served.poll() is None:
            os.killpg(served.pid, signal.SIGINT)
        output = served.communicate(timeout=60)[0].decode(errors="replace")
    assert not broken, f"{broken[0].state}:\n{output[-4000:]}"
    assert completed, f"no scheduled run completed in 300 s:\n{output[-3000:]}"
    assert completed[0].auto_scheduled
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    assert set(lock["stages"]) == set(STAGES)  # the scheduled run did the whole pipeline


def test_imgclf_run_starts_and_stops_its_own_temporary_server(
    prefect_server: str, prefect_home: Path, tmp_path: Path
) -> None:
    """`imgclf run` without PREFECT_API_URL, as a user runs it: a temporary server for the
    run, gone afterwards. Its home starts from a copy of the migrated database (a fresh one
    would spend a minute migrating)."""
    home = tmp_path / "home"
    home.mkdir()
    with sqlite3.connect(prefect_home / "prefect.db") as source, sqlite3.connect(home / "prefect.db") as copy:
        source.backup(copy)
    repo = flow_project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    env |= {"PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "INFO"}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("imgclf")), "run", "--stage", "validate", "--stage", "split"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "run: data new version, check ran, validate ran, split ran"
    [url] = re.findall(r"a temporary Prefect server on (http://127\.0\.0\.1:\d+/api)", done.stderr)
    with pytest.raises(OSError):  # stopped with the run
        urllib.request.urlopen(f"{url}/health", timeout=5)
    assert "Error logging to API" not in done.stderr  # logs were sent while the server was up
