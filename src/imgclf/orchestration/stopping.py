"""A clean stop on SIGTERM or SIGINT for the commands that run the flow (`imgclf run`,
`imgclf schedule`). systemd, Docker and Kubernetes stop a service with SIGTERM, to the main
process or to its whole group; Ctrl-C sends SIGINT to the terminal's whole group.

- ``uninterrupted`` runs one DVC call so that no signal lands inside it (a signal turned
  into an exception mid-write could tear DVC's rwlock file). DVC runs in a worker thread;
  the main thread takes the signal, stops the stage's command (DVC's child), and waits
  (DVC_GRACE at most) for DVC to unwind and release its locks; then ``Stopped`` is raised.
- ``stop_on_signals`` makes the signals a stop for a command's main thread, with a hard
  deadline: the process exits DEADLINE seconds after the first signal whatever still
  runs (its exit included; every process it started killed first), and at once after a
  second signal.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, TypeVar

from imgclf.errors import Stopped

T = TypeVar("T")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# From the first signal to the process's exit at the latest: inside the 10 s that Docker
# waits before SIGKILL (systemd waits 90 s, Kubernetes 30 s), with a second to spare.
DEADLINE = 9.0
STAGE_GRACE = 2.0  # seconds a stage's command has to exit after SIGTERM, then SIGKILL
# Seconds DVC has, after a signal, to end its call (its stage's command stopped) and release
# its locks; one still busy (hashing a large new data set) is left to end with the process:
# DVC drops a dead process's rwlock entry itself next time.
DVC_GRACE = 3.0

_lock = threading.Lock()
_requested: int | None = None  # the signal that asked this process to stop
_requested_at = 0.0  # when (time.time())
_deadline_armed = False  # by stop_on_signals, in a command's own process
_deadline: threading.Timer | None = None
_sections: dict[int, set[int]] = {}  # per DVC call under way: pids of the children that predate it


def requested() -> int | None:
    """The signal that asked this process to stop, if one did."""
    return _requested


def requested_at() -> float:
    """When the stop was asked (time.time()), if one was."""
    return _requested_at


def request(signum: int) -> None:
    """Record a stop asked by ``signum`` (the first one counts), start the hard deadline when
    a command armed it, and stop the commands of the DVC calls under way. Any thread."""
    global _requested, _requested_at, _deadline
    with _lock:
        first = _requested is None
        if first:
            _requested, _requested_at = signum, time.time()
        if first and _deadline_armed:
            _deadline = threading.Timer(DEADLINE, exit_now, args=(signum,))
            _deadline.daemon = True
            _deadline.start()
        older = [set(pids) for pids in _sections.values()]
    for before in older:
        terminate([child for child in _children() if child.pid not in before])


def uninterrupted(call: Callable[[], T]) -> T:
    """``call()``, a DVC operation, with SIGTERM and SIGINT held off it: DVC runs to its end
    (its stage's command, DVC's child, stopped when a signal comes) and releases its locks.

    Raises:
        Stopped: a stop was asked, before the call (it does not start) or during it.
    """
    _raise_if_requested()
    key = object()
    with _lock:
        _sections[id(key)] = {child.pid for child in _children()}
    try:
        # Off the main thread, the main thread is someone else's: its handler calls request().
        result = _in_worker(call) if threading.current_thread() is threading.main_thread() else call()
    except Exception:
        _raise_if_requested()  # the stage's command failed because it was stopped
        raise
    finally:
        with _lock:
            del _sections[id(key)]
    _raise_if_requested()
    return result


def _in_worker(call: Callable[[], T]) -> T:
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as is
            outcome["error"] = exc

    def on_signal(signum: int, frame: FrameType | None) -> None:
        request(signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in SIGNALS}
    worker = threading.Thread(target=work, name="dvc", daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.1)  # the main thread stays free to take a signal
            if _requested is not None and time.time() - _requested_at > DVC_GRACE:
                raise Stopped(_requested)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if _requested is not None:
            hold_later_signals()  # in a flow run's own process: see there
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]  # type: ignore[no-any-return]


def _raise_if_requested() -> None:
    if _requested is not None:
        raise Stopped(_requested) from None


@contextmanager
def stop_on_signals(*, interrupt: bool) -> Iterator[None]:
    """SIGTERM and SIGINT ask this process to stop (``requested``), with the hard deadline.

    Args:
        interrupt: also raise KeyboardInterrupt in the main thread, as Ctrl-C does, to end
            what it waits for (a flow run in this process ends Cancelled; see the flow).
            Without it the caller watches ``requested()`` and stops its own work.
    """
    global _requested, _deadline_armed

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if _requested is not None:  # a second signal: the user insists
            exit_now(signum)
        request(signum)
        if interrupt:
            raise KeyboardInterrupt

    with _lock:
        _requested, _deadline_armed = None, True
    previous = {signum: signal.signal(signum, on_signal) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        with _lock:  # a deadline already started stays: the process is on its way out
            _deadline_armed = False


def hold_later_signals() -> None:
    """Once a flow run took its stop in a process that a Prefect runner or worker started for
    it (``PREFECT__FLOW_RUN_ID`` set): later SIGTERM and SIGINT are only recorded. The runner
    signals the run too, and a second signal, raised inside Prefect as it reports the task
    Failed or the run Cancelled, cuts that report short (a coroutine "never awaited" at
    exit). The runner ends the process if it lingers: Prefect's SIGKILL after its grace, or
    `imgclf schedule`'s before its deadline. Anywhere else nothing changes: in a command's
    own process (``stop_on_signals``) a second signal still exits at once."""
    if (
        _deadline_armed
        or not os.environ.get("PREFECT__FLOW_RUN_ID")
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    for signum in SIGNALS:
        signal.signal(signum, lambda signum, frame: request(signum))


def exit_now(signum: int) -> None:
    """Kill every process this one started, then exit 128 + ``signum`` without cleanup."""
    try:
        terminate(_children(), grace=0)
    finally:
        sys.stderr.write(f"error: stopped by {signal.Signals(signum).name} (forced)\n")
        sys.stderr.flush()
        os._exit(128 + signum)


def terminate(processes: list[Any], grace: float = STAGE_GRACE) -> None:
    """SIGTERM each process and its descendants; SIGKILL the ones left after ``grace`` s
    (in the background: the caller does not wait). psutil.Process objects."""
    import psutil

    tree = [p for process in processes for p in _with_descendants(process)]
    if not tree:
        return
    for process in tree:
        with suppress(psutil.Error):
            process.kill() if grace <= 0 else process.terminate()
    if grace > 0:
        threading.Thread(target=_kill_after, args=(tree, grace), name="stop-stage", daemon=True).start()


def _kill_after(tree: list[Any], grace: float) -> None:
    import psutil

    for process in wait_gone(tree, grace):
        with suppress(psutil.Error):
            process.kill()


def wait_gone(processes: list[Any], timeout: float) -> list[Any]:
    """Wait until none of ``processes`` runs, ``timeout`` s at most; the ones still running.

    Polled, never waited for: psutil's wait() reaps a child of another's (DVC's subprocess
    call, a Prefect runner's process handle), which then reads exit status 0 and takes a
    killed stage or flow run for one that ended by itself."""
    deadline = time.monotonic() + timeout
    while (alive := [p for p in processes if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def running(process: Any) -> bool:
    """Alive and not a zombie (exited, its status left for its parent to collect); a pid or
    a psutil.Process. Checked, never waited for: waiting would reap a child of another's."""
    import psutil

    try:
        proc = psutil.Process(process) if isinstance(process, int) else process
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def live_descendants(pid: int) -> list[int]:
    """The pids of every live process below ``pid`` (none if it is gone)."""
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True) if running(child)]
    except psutil.Error:
        return []


def _with_descendants(process: Any) -> list[Any]:
    import psutil

    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def descendants() -> list[Any]:
    """Every process this one started, and theirs (psutil.Process objects)."""
    import psutil

    return list(psutil.Process().children(recursive=True))


def _children() -> list[Any]:
    """This process's children (psutil.Process objects)."""
    import psutil

    return list(psutil.Process().children())
