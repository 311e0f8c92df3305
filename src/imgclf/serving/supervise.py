"""Running a server as a child process that stops when we are told to stop.

``imgclf serve`` and ``imgclf ui`` run their server (uvicorn, MLflow) as a child, and
that child starts workers of its own. A SIGTERM (systemd, Docker, Kubernetes) or a
SIGINT (Ctrl-C) to imgclf must stop all of them, and leave none behind:

- the child runs in a process group of its own, and a signal to imgclf is forwarded
  to the whole group (the server's workers included);
- the server gets ``grace`` seconds to finish what it is answering; then, or on a
  second signal, the group is killed (SIGKILL);
- if imgclf itself is killed, Linux sends the child SIGTERM (PR_SET_PDEATHSIG); the
  child passes it on to its workers (imgclf.serving.workers), which no signal reached.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL = 0.1  # seconds between checks of the child while waiting


def run_child(command: list[str], env: Mapping[str, str], grace: float = 7.0) -> int:
    """Run ``command`` until it exits; forward SIGTERM/SIGINT to its process group.

    Returns its exit status: 0 when it stopped as asked (uvicorn ends by re-raising the
    signal it was sent), else 128 + N when signal N ended it (the shell's convention).
    """
    process = subprocess.Popen(command, env=dict(env), start_new_session=True, preexec_fn=_in_child)
    asked: list[float] = []  # when each stop signal arrived

    def forward(signum: int, frame: FrameType | None) -> None:
        asked.append(time.monotonic())
        _signal_group(process.pid, signum if len(asked) == 1 else signal.SIGKILL)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        while True:
            try:
                status = process.wait(timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                if asked and time.monotonic() - asked[0] > grace:
                    _signal_group(process.pid, signal.SIGKILL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # Workers the server left behind (it was killed, or it lost track of one).
        _signal_group(process.pid, signal.SIGKILL)
    if asked and status in (0, -signal.SIGTERM, -signal.SIGINT):
        return 0
    return 128 - status if status < 0 else status


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _in_child() -> None:
    """In the child, before exec: the stop signals' default handling, and SIGTERM when the
    parent dies, even by SIGKILL (Linux only).

    A process started in the background by a non-interactive shell (`nohup imgclf serve &`,
    some service managers) inherits SIGINT ignored, and Python keeps an ignored SIGINT
    ignored: the server would sit out the SIGINT we forward until the grace ran out."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
