"""imgclf.orchestration.stopping: a signal during a DVC call stops the call's child command, lets the call
finish its own cleanup, then raises Stopped; nothing starts once a stop was asked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imgclf.errors import Stopped
from imgclf.orchestration import stopping


@pytest.fixture(autouse=True)
def no_stop_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stopping, "_requested", None)


def test_a_signal_stops_the_child_and_lets_the_call_clean_up(tmp_path: Path) -> None:
    """As DVC runs a stage: a child command, then cleanup (the rwlock's release) after it."""
    done = tmp_path / "cleaned-up"
    child: list[subprocess.Popen[bytes]] = []

    started = threading.Event()

    def call() -> None:
        child.append(subprocess.Popen(["sleep", "60"]))
        started.set()
        try:
            child[0].wait()
        finally:
            time.sleep(0.3)  # cleanup that a signal must not cut short
            done.write_text("yes", encoding="utf-8")

    before = signal.getsignal(signal.SIGTERM)

    def signal_once_started() -> None:
        # Once the child runs: a loaded machine may take longer than any fixed delay to start it.
        started.wait(60)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=signal_once_started, daemon=True).start()
    with pytest.raises(Stopped, match=r"^stopped by SIGTERM$") as stopped:
        stopping.uninterrupted(call)
    assert child[0].returncode == -signal.SIGTERM and done.read_text(encoding="utf-8") == "yes"
    assert stopped.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back


def test_nothing_starts_once_a_stop_was_asked(tmp_path: Path) -> None:
    stopping.request(signal.SIGINT)
    with pytest.raises(Stopped, match="SIGINT"):
        stopping.uninterrupted(lambda: (tmp_path / "started").touch())
    assert not (tmp_path / "started").exists()


def test_without_a_signal_the_call_returns_and_raises_as_usual() -> None:
    assert stopping.uninterrupted(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        stopping.uninterrupted(lambda: 1 / 0)


HOLD = """
import os, signal, subprocess
from imgclf.orchestration import stopping
from imgclf.errors import Stopped

def call():
    child = subprocess.Popen(["sleep", "60"])
    os.kill(os.getpid(), signal.SIGTERM)  # the stop, as DVC runs the stage's command
    child.wait()

try:
    stopping.uninterrupted(call)
except Stopped:
    pass
for _ in range(3):  # the runner's own SIGTERM, ours, a Ctrl-C: only recorded from now on
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
print("reported", stopping.requested())
"""


@pytest.mark.parametrize("flow_run_process", [True, False], ids=["flow-run-process", "elsewhere"])
def test_a_flow_run_process_that_took_its_stop_finishes_its_report(flow_run_process: bool) -> None:
    """In a process a Prefect runner started for a flow run, signals after the stop do not
    cut short Prefect's report of it; anywhere else the caller's handlers come back as they were."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT__FLOW_RUN_ID"}
    if flow_run_process:
        env["PREFECT__FLOW_RUN_ID"] = "01a23264-e221-749b-b6ea-ef6376f2818d"
    done = subprocess.run([sys.executable, "-c", HOLD], env=env, capture_output=True, text=True, timeout=60)
    if flow_run_process:
        assert (done.returncode, done.stdout) == (0, f"reported {int(signal.SIGTERM)}\n"), done.stderr
    else:
        assert done.returncode == -signal.SIGTERM  # the default handler, back: the process ends there
