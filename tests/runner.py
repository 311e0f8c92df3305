"""Running the project's commands as a user would, from tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imgclf.orchestration.flowrun import free_port
from imgclf.waiting import wait_until_up

REPO = Path(__file__).resolve().parents[1]


def imgclf(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``imgclf`` entry point as a user would."""
    command = [str(Path(sys.executable).with_name("imgclf")), *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def wait_for_http(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    """Poll ``url`` until it answers 200; if ``process`` dies or time runs out, stop its
    process group and fail with the tail of its output."""
    if wait_until_up(url, lambda: process.poll() is None, seconds):
        return
    stop_group(process)
    stream = process.stderr or process.stdout
    said = stream.read().decode(errors="replace")[-3000:] if stream else ""
    raise AssertionError(f"{url} did not answer: {said}")


def stop_group(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM, timeout: float = 60) -> None:
    """Signal the process group ``process`` leads (started with start_new_session=True),
    wait for the leader; SIGKILL the group if it is still there after ``timeout`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signum)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@contextmanager
def mlflow_server(folder: Path, port: int | None = None) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 storing in ``folder``; yields its URL once it answers."""
    port = port or free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"),  # clients upload through the server
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process, 180)
        yield url
    finally:
        stop_group(process)
