"""The Prefect flow `training-pipeline` end to end, against the session's real Prefect
server: every stage through DVC in a git + DVC repo in tmp_path, artifacts, a no-op rerun,
the failure path, a served deployment on its interval (a transient fault retried), and
`imgclf run` with a temporary server of its own."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    TaskRunFilter,
    TaskRunFilterName,
    TaskRunFilterState,
    TaskRunFilterStateName,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL, temporary_settings

from dvcrepo import sh
from images import class_folder, write
from imgclf.errors import ImgclfError
from imgclf.orchestration.dvcrun import STAGES
from imgclf.orchestration.flowrun import run_flow
from imgclf.params import load_params
from imgclf.provenance import dvc_md5
from netgate import Gate
from pipeline import Reproduced, flow_project
from runner import free_port, mlflow_server

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

IN_PROCESS = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(is_null_=True))
TAKEN = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED])))
SERVED = DeploymentFilter(name=DeploymentFilterName(any_=["scheduled"]))


@pytest.fixture(autouse=True)
def local_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def runs_of(prefect: SyncPrefectClient, repo: Path, served: bool = False) -> list[FlowRun]:
    """The project's flow runs, newest first: those this process ran, or those its served
    deployment took. The server is the session's: other tests' runs are there too."""
    found = prefect.read_flow_runs(
        flow_run_filter=TAKEN if served else IN_PROCESS,
        deployment_filter=SERVED if served else None,
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=50,
    )
    return [run for run in found if run.parameters.get("params_file") == str((repo / "params.yaml").resolve())]


def test_the_flow_runs_every_stage_then_skips_them_all(reproduced: Reproduced) -> None:
    repo = reproduced.repo  # the first run's project, this test's to go on with
    params = load_params(repo / "params.yaml")

    assert reproduced.outcome == {"data": "new version", **dict.fromkeys(STAGES, "ran")}
    # The new images were recorded (dvc add) and every stage is in dvc.lock: nothing is pending.
    assert "Data and pipelines are up to date." in sh("dvc", "status", cwd=repo).stdout
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    assert set(lock["stages"]) == set(STAGES)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("catdog-cnn", "champion").version) == "1"

    with get_client(sync_client=True) as prefect:
        [flow_run] = runs_of(prefect, repo)
        assert flow_run.state_name == "Completed"
        tasks = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        assert {t.name for t in tasks} >= set(STAGES) and all(t.state_name == "Completed" for t in tasks)
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == {
        "validation-summary",
        "test-metrics",
        "confusion-matrix",
        "label-suspects",
        "promotion-decision",
    }
    assert "# Validation: passed" in str(by_key["validation-summary"].data)
    assert "Near-duplicate groups: 0" in str(by_key["validation-summary"].data)
    assert "# Suspected label errors: " in str(by_key["label-suspects"].data)
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
        [flow_run] = runs_of(prefect, repo)
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


@pytest.mark.usefixtures("no_waiting_scheduled_runs")
def test_a_served_deployment_runs_on_its_interval_and_retries_a_transient_fault(
    prefect_server: str, reproduced: Reproduced, tmp_path: Path
) -> None:
    """`imgclf schedule --interval 10` against the real `prefect server`: a scheduled flow
    run happens and completes the pipeline; then the process is stopped. The project is a
    copy of the reproduced one with a train key changed: train, evaluate and register rerun.
    Its train finds no tracking server (exit 75, a transient fault): the task waits its
    retry delay and runs again; the server answers by then."""
    retry = {"retries": 1, "retry_delay": 5}  # the gate opens within a second or two of AwaitingRetry
    repo = reproduced.copy(tmp_path / "scheduled", train={"epochs": 1}, orchestrate=retry)
    mlflow_port, events = free_port(), []
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    finished, started = threading.Event(), time.monotonic()
    with Gate(mlflow_port) as gate:
        env |= {"MLFLOW_TRACKING_URI": gate.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}  # MLflow's own: minutes
        command = [str(Path(sys.executable).with_name("imgclf")), "schedule", "--interval", "10"]
        served = subprocess.Popen(
            command, cwd=repo, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

        def open_the_gate_once_train_awaits_its_retry() -> None:
            waiting = TaskRunFilter(
                name=TaskRunFilterName(any_=["train"]),
                state=TaskRunFilterState(name=TaskRunFilterStateName(any_=["AwaitingRetry"])),
            )
            # Prefect's settings are a context of the test's thread: a thread names the server itself.
            with temporary_settings({PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as prefect:
                while not finished.wait(0.5):
                    ours = [run.id for run in runs_of(prefect, repo, served=True)]
                    runs = FlowRunFilter(id=FlowRunFilterId(any_=ours))
                    if ours and prefect.read_task_runs(flow_run_filter=runs, task_run_filter=waiting):
                        gate.open()
                        events.append(f"train awaited its retry {time.monotonic() - started:.0f} s in: gate open")
                        return

        opener = threading.Thread(target=open_the_gate_once_train_awaits_its_retry, daemon=True)
        opener.start()
        try:
            # The real server starts meanwhile; the gate holds each connection until it listens.
            with mlflow_server(tmp_path / "server", port=mlflow_port):
                deadline, completed, broken = time.monotonic() + 400, list[FlowRun](), list[FlowRun]()
                while not (completed or broken) and time.monotonic() < deadline and served.poll() is None:
                    time.sleep(3)
                    with get_client(sync_client=True) as prefect:
                        runs = runs_of(prefect, repo, served=True)
                    completed = [r for r in runs if r.state_name == "Completed"]
                    broken = [r for r in runs if r.state_name in ("Failed", "Crashed")]
                registry = mlflow.MlflowClient(tracking_uri=gate.url)
                champion = registry.get_model_version_by_alias("catdog-cnn", "champion")
        finally:
            finished.set()
            if served.poll() is None:
                os.killpg(served.pid, signal.SIGINT)
            output = served.communicate(timeout=60)[0].decode(errors="replace")
            opener.join(timeout=30)
    print(*events)
    assert not broken, f"{broken[0].state}:\n{output[-4000:]}"
    assert completed, f"no scheduled run completed in 400 s:\n{output[-3000:]}"
    assert completed[0].auto_scheduled
    with get_client(sync_client=True) as prefect:
        [train] = prefect.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[completed[0].id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=["train"])),
        )
    assert train.state_name == "Completed" and train.run_count == 2  # failed once, then retried
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    assert set(lock["stages"]) == set(STAGES)
    # The scheduled run retrained with the changed key, then registered that model through the server.
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] == 1
    promotion = json.loads((repo / "reports" / "promotion.json").read_text(encoding="utf-8"))
    assert str(champion.version) == "1" and champion.run_id == promotion["run_id"]


def test_imgclf_run_starts_and_stops_its_own_temporary_server(prefect_home: Path, tmp_path: Path) -> None:
    """`imgclf run` without PREFECT_API_URL, as a user runs it: a temporary server for the
    run, gone afterwards. Its home starts from a copy of a migrated database (a fresh one
    would spend a minute migrating)."""
    home = prefect_home
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
