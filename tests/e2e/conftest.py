"""Fixtures shared by the end-to-end tests: one real `prefect server` for the whole run, a
migrated empty database for `imgclf run`'s own temporary servers, and one project the
flow reproduced, which the tests that need a reproduced project copy.

The server's first start migrates a new database, a minute or more on 2 cores: it starts
as soon as collection ends, so the migration overlaps the tests that need no Prefect.
Under pytest-xdist every worker shares it (tests/prefectserver.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import prefectserver
from pipeline import Reproduced, copy_reproduced, flow_project

_server: list[prefectserver.Server] = []  # this process's view of the run's server


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = any("prefect_server" in getattr(item, "fixturenames", ()) for item in session.items)
    if wanted and not session.config.option.collectonly:
        _server[:] = [prefectserver.start()]


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """The API URL of a `prefect server start` on 127.0.0.1 with its own home and its
    services (the scheduler among them), one for the whole run (tests/prefectserver.py)."""
    if not _server:  # started at collection's end already, unless the tests were chosen later
        _server.append(prefectserver.start())
    prefectserver.ready(_server[0], 600)
    yield _server[0].url
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    # What this process still queues for the server, before it goes (it would retry for a minute).
    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


@pytest.fixture(scope="session")
def prefect_api(prefect_server: str) -> Iterator[str]:
    """Flows called in this process report to the session's server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        yield prefect_server


@pytest.fixture
def prefect_home(prefect_server: str, tmp_path: Path) -> Path:
    """A PREFECT_HOME for `imgclf run`'s temporary server, its database migrated already
    (a new one would spend a minute migrating): the session server's, before any run."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    shutil.copy2(_server[0].home / "migrated.db", home / "prefect.db")
    return home


@pytest.fixture
def no_waiting_scheduled_runs(prefect_server: str) -> Iterator[None]:
    """No run of `imgclf schedule`'s deployment left Scheduled, before and after the test.

    Runs that came due while an earlier test's run was under way (the runner takes one at
    a time) stay Scheduled, late, with that test's params_file; a redeploy deletes only
    future ones, so the next test's runner would run them first, one after another.
    """
    _delete_scheduled_runs(prefect_server)
    yield
    _delete_scheduled_runs(prefect_server)


def _delete_scheduled_runs(api: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    served = DeploymentFilter(name=DeploymentFilterName(any_=["scheduled"]))
    waiting = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])))
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        for _ in range(3):  # a deployment's schedule keeps at most 100 future runs
            runs = client.read_flow_runs(deployment_filter=served, flow_run_filter=waiting, limit=200)
            for run in runs:
                client.delete_flow_run(run.id)
            if not runs:
                return


@pytest.fixture(scope="session")
def reproduced(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Reproduced:
    from imgclf.orchestration.flowrun import run_flow
    from imgclf.params import load_params

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the project's own store
        repo = flow_project(tmp_path_factory.mktemp("reproduced") / "project")
        outcome = run_flow(load_params(repo / "params.yaml"), repo / "params.yaml")
    snapshot = copy_reproduced(repo, tmp_path_factory.mktemp("reproduced-snapshot") / "project")
    return Reproduced(repo=repo, outcome=outcome, snapshot=snapshot)
