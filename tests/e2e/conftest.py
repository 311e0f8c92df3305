"""Fixtures shared by the end-to-end tests: Prefect's test harness for flows run in this
process, and a real `prefect server` for the deployments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from runner import free_port, wait_for_http


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's test harness: a temporary server (its own SQLite database) that flows in
    this process report to. A fresh database is migrated first: over a minute on 2 cores."""
    with prefect_test_harness(server_startup_timeout=300):
        yield


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture(scope="session")
def prefect_server(prefect_home: Path) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 with its own home: unlike the test harness's
    temporary server, it runs the scheduler. Its first start migrates a new database."""
    home = prefect_home
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port)], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    wait_for_http(f"{url}/health", server, 300)
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)
