"""Scale-out on a process work pool, as pipelines/README.md tells it: the README's own
commands against a real `prefect server`, with prefect.yaml's deployment; one flow run
brings the whole pipeline up to date in the project folder (a reproduced project with a
train key changed: train, evaluate and register rerun)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from dvcrepo import sh
from imgclf.orchestration.dvcrun import STAGES
from pipeline import Reproduced
from runner import REPO, stop_group

pytestmark = pytest.mark.slow

PREFECT = str(Path(sys.executable).with_name("prefect"))
# The Scale-out steps, in order, as the README writes them (minus the server, the fixture's).
CREATE_POOL = ["prefect", "work-pool", "create", "imgclf-local", "--type", "process"]
ONE_AT_A_TIME = ["prefect", "work-pool", "set-concurrency-limit", "imgclf-local", "1"]
DEPLOY = ["prefect", "--no-prompt", "deploy", "--all"]
WORKER = ["prefect", "worker", "start", "--pool", "imgclf-local"]
RUN = ["prefect", "deployment", "run", "training-pipeline/nightly"]
FINAL = {"Completed", "Failed", "Crashed", "Cancelled"}


def test_the_readme_scale_out_steps_run_the_pipeline_on_a_process_worker(
    prefect_server: str, reproduced: Reproduced, tmp_path: Path
) -> None:
    readme = (REPO / "pipelines" / "README.md").read_text(encoding="utf-8").partition("## Scale-out")[2]
    for step in (CREATE_POOL, ONE_AT_A_TIME, DEPLOY, WORKER, RUN):
        assert shlex.join(step) in readme, f"pipelines/README.md no longer says `{shlex.join(step)}`"

    # The reproduced project with a train key changed: train, evaluate and register rerun on the worker.
    repo = reproduced.copy(tmp_path / "project", train={"epochs": 1})
    shutil.copy2(REPO / "prefect.yaml", repo)  # the file under test, whether git tracks it yet or not
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the project's own store
    env |= {"PREFECT_API_URL": prefect_server, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env["PREFECT_LOGGING_LEVEL"] = "INFO"  # the worker's log says which step failed

    def prefect(step: list[str]) -> str:
        done = subprocess.run([PREFECT, *step[1:]], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{shlex.join(step)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    for step in (CREATE_POOL, ONE_AT_A_TIME, DEPLOY):
        prefect(step)
    with temporary_settings({PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(RUN[-1])
    # `prefect deploy` recorded the folder it ran in: runs start in the project, wherever it is.
    set_folder = {"prefect.deployments.steps.set_working_directory": {"directory": str(repo.resolve())}}
    assert deployment.pull_steps == [set_folder]

    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [PREFECT, *WORKER[1:]], cwd=repo, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT
        )
    run_id, run = "", None  # the flow run, as last read
    try:
        printed = re.search(r"UUID: ([0-9a-f-]{36})", prefect(RUN))
        assert printed, "`prefect deployment run` printed no flow run id"
        run_id, deadline = printed[1], time.monotonic() + 300
        while time.monotonic() < deadline and worker.poll() is None:
            run = _read(prefect_server, run_id)
            if run.state_name in FINAL:
                break
            time.sleep(3)
    finally:
        _stop(worker)
        if run_id and (run is None or run.state_name not in FINAL):
            _kill_flow_run(_read(prefect_server, run_id))
    said = log.read_text(encoding="utf-8", errors="replace")[-4000:]
    assert run is not None and run.state_name == "Completed", f"flow run {run and run.state}; the worker said:\n{said}"
    # The stages ran in the project folder: its outputs are there, as dvc.lock records them.
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    assert set(lock["stages"]) == set(STAGES)
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] == 1  # retrained there
    assert "Data and pipelines are up to date." in sh("dvc", "status", cwd=repo).stdout


def _read(api: str, run_id: str) -> FlowRun:
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)  # type: ignore[arg-type]


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """Stop the worker like Ctrl-C; by force if it ignores that (a background job ignores SIGINT)."""
    stop_group(worker, signal.SIGINT, timeout=30)


def _kill_flow_run(run: FlowRun) -> None:
    """An unfinished flow run outlives its worker: it runs in a session of its own, led by
    the process the worker recorded."""
    if run.state_name not in FINAL and run.infrastructure_pid:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(run.infrastructure_pid), signal.SIGKILL)
