"""A clean stop: `imgclf schedule` (a served deployment on a real `prefect server`) and
`imgclf run` end within 10 s of one SIGTERM or SIGINT, to the process alone (Docker,
Kubernetes) or to its whole process group (systemd, Ctrl-C), aimed at the start of a flow
run or mid-stage. Every process of the tree is gone, the flow run ends Cancelled, DVC's
locks are free and the next run starts cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psutil
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from dvcrepo import sh
from imgclf.orchestration.stopping import running
from pipeline import flow_project

pytestmark = pytest.mark.slow

IMGCLF = str(Path(sys.executable).with_name("imgclf"))
STOP_WITHIN = 10.0  # seconds, from the signal to the last process of the tree gone
WATCH = 0.1  # seconds between looks at the flow run: the signal lands within this of its aim
TAKEN = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED])))
RUNNING = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))


def start(command: list[str], repo: Path, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    # Its own session, as a service manager starts it; output to a file, which never blocks it.
    return subprocess.Popen(
        [IMGCLF, *command], cwd=repo, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
    )


def said(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")


def stop(process: subprocess.Popen[bytes], signum: int, group: bool, log: IO[bytes]) -> tuple[float, int]:
    """Send one signal; the seconds until the process and every descendant it had are gone,
    and the process's exit status."""
    main = psutil.Process(process.pid)
    tree = [main, *main.children(recursive=True)]
    sent = time.monotonic()
    (os.killpg if group else os.kill)(process.pid, signum)
    gone, alive = psutil.wait_procs(tree, timeout=STOP_WITHIN)  # reaps the main process
    took = time.monotonic() - sent
    alive = [p for p in alive if running(p)]
    if alive:
        os.killpg(process.pid, signal.SIGKILL)
        for leftover in alive:
            leftover.kill()
        name = signal.Signals(signum).name
        pytest.fail(f"{len(alive)} still running {took:.0f} s after one {name}:\n{said(log)[-4000:]}")
    status = next((p.returncode for p in gone if p.pid == process.pid), None)
    return took, process.wait() if status is None else status


def assert_dvc_unlocked(repo: Path) -> None:
    """No stage's entry left in DVC's rwlock, and the repo lock free: `dvc status` takes it."""
    rwlock = repo / ".dvc" / "tmp" / "rwlock"
    if rwlock.exists():
        held = json.loads(rwlock.read_text(encoding="utf-8"))
        assert not held.get("read") and not held.get("write"), held
    done = sh("dvc", "status", cwd=repo, check=False)
    assert done.returncode == 0, done.stderr


def stage_running(process: subprocess.Popen[bytes], stage: str) -> bool:
    """The stage's command (DVC's child, in the flow run process) has started."""
    try:
        return any(f"imgclf {stage}" in " ".join(p.cmdline()) for p in psutil.Process(process.pid).children(True))
    except psutil.Error:
        return False


def dvc_busy(repo: Path) -> bool:
    """A DVC operation holds the rwlock: the data-version task's `dvc add` of data/raw, or a stage."""
    try:
        return '"pid"' in (repo / ".dvc" / "tmp" / "rwlock").read_text(encoding="utf-8")
    except OSError:
        return False


def wait_for(aim: str, process: subprocess.Popen[bytes], repo: Path, client: SyncPrefectClient, runs: Any) -> bool:
    """Poll until the aim: a flow run just Running; DVC's lock taken (data-version's `dvc add`,
    a stage starting); or validate's command running. False if the process ended first."""
    deadline = time.monotonic() + 150
    while process.poll() is None and time.monotonic() < deadline:
        if aim == "flow-running":
            if any(r.state_name == "Running" for r in runs()):
                return True
            time.sleep(WATCH)
        elif dvc_busy(repo) if aim == "dvc-lock" else stage_running(process, "validate"):
            return True
        else:
            time.sleep(0.005)
    return False


@pytest.fixture(scope="module")
def served_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return flow_project(tmp_path_factory.mktemp("stop") / "project")


@pytest.mark.usefixtures("no_waiting_scheduled_runs")
@pytest.mark.parametrize(
    ("aim", "signum", "group"),
    [
        ("flow-running", signal.SIGTERM, False),  # Docker and Kubernetes signal the main process
        ("dvc-lock", signal.SIGTERM, False),  # inside data-version's `dvc add`: where the hang began
        ("validate", signal.SIGINT, True),  # Ctrl-C or systemd: every process of the group, mid-stage
    ],
    ids=["sigterm-at-flow-start", "sigterm-in-dvc-add", "ctrl-c-mid-stage"],
)
def test_a_served_deployment_stops_cleanly_at_the_start_of_a_run(
    prefect_server: str, served_project: Path, aim: str, signum: int, group: bool
) -> None:
    """`imgclf schedule --interval 10`, one signal as a scheduled run starts. The cases share
    one project, in this order: each next start proves the previous stop left DVC unlocked."""
    repo = served_project
    params_file = str((repo / "params.yaml").resolve())  # what `imgclf schedule` passes its runs
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    env["PREFECT_LOGGING_LEVEL"] = "INFO"
    with temporary_settings({PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as client:
        served = DeploymentFilter(name=DeploymentFilterName(any_=["scheduled"]))
        known = {r.id for r in client.read_flow_runs(deployment_filter=served, flow_run_filter=TAKEN)}

        def taken() -> list[FlowRun]:  # this process's runs of this project that left Scheduled
            fresh = client.read_flow_runs(deployment_filter=served, flow_run_filter=TAKEN, limit=20)
            return [r for r in fresh if r.id not in known and r.parameters.get("params_file") == params_file]

        with open(repo.parent / f"schedule-{aim}-{signum}-{group}.log", "w+b") as log:
            process = start(["schedule", "--interval", "10"], repo, env, log)
            if not wait_for(aim, process, repo, client, taken):
                process.kill()
                pytest.fail(f"never reached {aim!r}:\n{said(log)[-4000:]}")
            signalled = datetime.now(UTC)
            took, _ = stop(process, signum, group, log)
            output = said(log)
        print(f"{aim}: stopped {took:.1f} s after {signal.Signals(signum).name}{' to the group' if group else ''}")
        # Runs that ended before the signal (the aim can miss a short no-op run) are not the stop's.
        runs = [r for r in taken() if r.end_time is None or r.end_time >= signalled]
    assert runs and all(r.state_name == "Cancelled" for r in runs), f"{[r.state for r in runs]}\n{output[-4000:]}"
    assert "never awaited" not in output
    assert_dvc_unlocked(repo)


def test_imgclf_run_stops_cleanly_mid_stage(prefect_home: Path, tmp_path: Path) -> None:
    """`imgclf run` with its temporary server, SIGTERM while validate's command runs: the run,
    its stage command and its server are gone within 10 s, exit 143 with one line; the flow
    run, in the server's database, ended Cancelled; DVC is unlocked."""
    home = prefect_home  # its database migrated already: a fresh one would take a minute
    repo = flow_project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    env |= {"PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "INFO"}
    with open(tmp_path / "run.log", "w+b") as log:
        process = start(["run", "--stage", "validate"], repo, env, log)
        deadline, url, run = time.monotonic() + 120, None, None
        while run is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(WATCH)
            url = url or next(iter(re.findall(r"temporary Prefect server on (http://\S+/api)", said(log))), None)
            if url:
                with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
                    if stage_running(process, "validate"):  # the only Running one: the database was empty
                        run = next(iter(client.read_flow_runs(flow_run_filter=RUNNING, limit=1)), None)
        assert run is not None and url, said(log)[-4000:]
        took, status = stop(process, signal.SIGTERM, False, log)
        output = said(log)
    print(f"imgclf run: stopped {took:.1f} s after SIGTERM mid-validate")
    assert status == 128 + signal.SIGTERM, output[-4000:]
    assert output.rstrip().splitlines()[-1] == "error: stopped by SIGTERM", output[-4000:]
    with sqlite3.connect(home / "prefect.db") as db:
        [(state,)] = db.execute("SELECT state_name FROM flow_run WHERE id = ?", (str(run.id),)).fetchall()
    assert state == "Cancelled", output[-4000:]
    assert_dvc_unlocked(repo)
