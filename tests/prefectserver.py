"""One real `prefect server` for the whole test run, shared by pytest-xdist's workers.

Its first start migrates a new database, a minute or more on 2 cores, so the first worker
to collect a test that needs it starts it (under a lock; the others find it started) and
its migration overlaps the tests that need no Prefect. The server outlives the worker that
started it: the controller, the process that made the run's shared folder, stops it last.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from filelock import FileLock

from imgclf.waiting import wait_until_up
from runner import free_port

SHARED = "IMGCLF_TESTS_SHARED"  # the run's folder that every worker sees (set by the controller)


@dataclass(frozen=True)
class Server:
    pid: int
    url: str  # the API's, ending in /api
    home: Path

    def alive(self) -> bool:
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False


def make_shared() -> None:
    """In the controller (or a run without xdist): the folder that workers, which inherit
    the environment, find the server's address in."""
    os.environ[SHARED] = tempfile.mkdtemp(prefix="imgclf-tests-")


def _shared() -> Path:
    return Path(os.environ[SHARED])


def start() -> Server:
    """The run's server: started now unless a worker started it already."""
    with FileLock(_shared() / "prefect.lock"):
        info = _shared() / "prefect.json"
        if info.exists():
            said = json.loads(info.read_text(encoding="utf-8"))
            return Server(pid=said["pid"], url=said["url"], home=Path(said["home"]))
        server = _launch()
        info.write_text(json.dumps({"pid": server.pid, "url": server.url, "home": str(server.home)}), encoding="utf-8")
        return server


def _launch() -> Server:
    home = Path(tempfile.mkdtemp(prefix="imgclf-prefect-home-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL")}
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home / 'prefect.db'}"  # not the shell's
    # With its services: served deployments need the scheduler. No UI: no test opens it.
    command = [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1"]
    with open(home / "server.log", "wb") as log:  # a file: a pipe nobody reads would fill and block it
        process = subprocess.Popen(
            [*command, "--port", str(port), "--no-ui"], env=env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Server(pid=process.pid, url=f"http://127.0.0.1:{port}/api", home=home)


def ready(server: Server, seconds: float) -> None:
    """Wait until the server answers; then keep its database as the migration left it,
    before any test adds runs (`migrated.db`, which `imgclf run`'s own servers start from)."""
    if not wait_until_up(f"{server.url}/health", server.alive, seconds):
        said = (server.home / "server.log").read_text(encoding="utf-8", errors="replace")[-3000:]
        raise AssertionError(f"{server.url} did not answer:\n{said}")
    with FileLock(_shared() / "prefect.lock"):
        if not (server.home / "migrated.db").exists():
            with (
                sqlite3.connect(server.home / "prefect.db") as source,
                sqlite3.connect(server.home / "migrated.db") as target,
            ):
                source.backup(target)


def stop() -> None:
    """In the controller, after every worker ended: stop the server's process group."""
    info = _shared() / "prefect.json"
    if info.exists():
        said = json.loads(info.read_text(encoding="utf-8"))
        server = Server(pid=said["pid"], url=said["url"], home=Path(said["home"]))
        _stop_group(server)
        shutil.rmtree(server.home, ignore_errors=True)
    shutil.rmtree(_shared(), ignore_errors=True)


def _stop_group(server: Server, timeout: float = 60) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while server.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not server.alive():
            return
