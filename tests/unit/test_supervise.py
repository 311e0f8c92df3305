"""run_child: a SIGTERM or SIGINT to the parent stops the child and everything it started.

Real processes: a driver runs ``run_child`` on a child that starts a grandchild, the
test signals the driver only (as systemd or Ctrl-C would), and checks that all three
are gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The child starts a grandchild (a server's worker) and reports both pids; with
# "stubborn" it ignores SIGTERM and SIGINT, as a server stuck in a request would.
CHILD = """
import os, signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(os.getpid(), worker.pid, flush=True)
time.sleep(60)
"""

DRIVER = """
import os, sys
from imgclf.serving.supervise import run_child
sys.exit(run_child([sys.executable, "-c", sys.argv[1], sys.argv[2]], os.environ, grace=float(sys.argv[3])))
"""


def alive(pid: int) -> bool:
    """Running, i.e. neither gone nor a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def start(kind: str, grace: float, sigint_ignored: bool = False) -> tuple[subprocess.Popen[str], list[int]]:
    """The driver; ``sigint_ignored``: started as `nohup imgclf serve &` starts imgclf, SIGINT ignored."""

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, CHILD, kind, str(grace)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )
    assert driver.stdout is not None
    line = driver.stdout.readline()  # the child prints once its worker runs
    return driver, [driver.pid, *map(int, line.split())]


def stop(driver: subprocess.Popen[str], signum: int, pids: list[int], within: float) -> tuple[int, float]:
    started = time.monotonic()
    driver.send_signal(signum)  # the driver only, not its group
    try:
        code = driver.wait(timeout=within)
        while any(alive(pid) for pid in pids) and time.monotonic() - started < within:
            time.sleep(0.05)
        return code, time.monotonic() - started
    finally:  # whatever a failing run left
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        driver.wait()


@pytest.mark.parametrize(
    ("signum", "sigint_ignored"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)],
    ids=["SIGTERM", "SIGINT", "SIGINT-started-in-the-background"],
)
def test_a_signal_to_the_parent_stops_the_child_and_its_worker(signum: int, sigint_ignored: bool) -> None:
    driver, pids = start("polite", grace=5, sigint_ignored=sigint_ignored)
    code, took = stop(driver, signum, pids, within=5)
    assert not any(alive(pid) for pid in pids), pids
    assert code == 0 and took < 5  # the child died of the forwarded signal: a stop as asked


def test_a_child_that_ignores_the_signal_is_killed_after_the_grace() -> None:
    driver, pids = start("stubborn", grace=1)
    code, took = stop(driver, signal.SIGTERM, pids, within=8)
    assert not any(alive(pid) for pid in pids), pids
    assert code == 128 + signal.SIGKILL and 1 <= took < 8


# imgclf serve's child (imgclf.serving.workers) with two workers that a SIGTERM ends, as
# uvicorn's do: the workers are spawned, so they import this module from PYTHONPATH.
IDLE_WORKER = """
import time
def serve(host, port, sock):
    time.sleep(60)
"""
SERVE = """
import sys
import idle_worker
from imgclf.serving.workers import main
sys.exit(main("127.0.0.1", 0, 2, target=idle_worker.serve))
"""


def test_a_killed_parent_leaves_no_server_worker_behind(tmp_path: Path) -> None:
    """SIGKILL to imgclf serve: the kernel sends its child SIGTERM (PR_SET_PDEATHSIG), and
    the child stops its workers, which no signal reached. Seen before: the workers and
    their supervisor served on, reparented to init, 43 min after the test that started them."""
    import psutil

    (tmp_path / "idle_worker.py").write_text(IDLE_WORKER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    serve = DRIVER.replace("sys.argv[1], sys.argv[2]", "sys.argv[1]").replace("float(sys.argv[3])", "7.0")
    driver = subprocess.Popen([sys.executable, "-c", serve, SERVE], env=env, start_new_session=True)
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the supervisor and its two spawned workers
            tree = psutil.Process(driver.pid).children(recursive=True)
            if sum("multiprocessing.spawn" in " ".join(p.cmdline()) for p in tree) >= 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the workers never started")
        driver.kill()
        driver.wait()
        deadline = time.monotonic() + 10
        while any(alive(p.pid) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p.pid for p in tree if alive(p.pid)]
    finally:
        for process in tree:
            if alive(process.pid):
                process.kill()
