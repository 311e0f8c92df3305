"""Running the flow ``training-pipeline`` with Prefect: once (``imgclf run``, on
PREFECT_API_URL or a temporary server of its own) or served on a schedule
(``imgclf schedule``). The stages themselves run through DVC: imgclf.orchestration.dvcrun.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import chdir, contextmanager
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from imgclf import telemetry
from imgclf.errors import ImgclfError, ParamsError, Stopped
from imgclf.orchestration import stopping
from imgclf.orchestration.dvcrun import check_stages
from imgclf.params import Params
from imgclf.waiting import wait_until_up

FLOW_FILE = "pipelines/training_flow.py"  # relative to the project root; also the deployments' entrypoint
# Seconds `imgclf schedule`, stopping, leaves its flow runs to end on the runner's own cancel
# before it signals them itself (a run's Cancelled report takes 1-3 s on 2 cores).
RUNNER_GRACE = 3.0


def load_flow(params: Params) -> Any:
    """The project's flow ``training_pipeline``, imported from FLOW_FILE.

    A true import (the file's folder on sys.path), not an exec of the file: a served
    deployment runs each flow run in a child process that must import it by name.
    """
    import importlib

    telemetry.quiet()
    path = params.root / FLOW_FILE
    if not path.is_file():
        raise ImgclfError(f"{path}: no flow file")
    cached = sys.modules.get(path.stem)
    if cached is not None and Path(str(cached.__file__)).resolve() != path.resolve():  # another project's
        del sys.modules[path.stem]
        sys.path[:] = [p for p in sys.path if p != str(Path(str(cached.__file__)).parent)]
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))
    return importlib.import_module(path.stem).training_pipeline


def run_flow(
    params: Params, params_file: Path, *, force: bool = False, stages: list[str] | None = None, push: bool = False
) -> dict[str, str]:
    """Run the project's flow once and wait; its outcome per stage.

    Raises:
        ImgclfError: the failed stage's own message (the flow run ends Failed).
    """
    check_stages(stages)  # before a Prefect server starts
    try:
        # SIGTERM and SIGINT: the flow run ends Cancelled, then the server stops (stopping.DEADLINE).
        with stopping.stop_on_signals(interrupt=True), _prefect_api() as ready:
            flow = load_flow(params)
            ready()
            state = flow(params_file=str(params_file), force=force, stages=stages, push=push, return_state=True)
    except KeyboardInterrupt:  # before or after the flow run (during it, the flow returns Cancelled)
        raise Stopped(stopping.requested() or signal.SIGINT) from None
    signum = stopping.requested()
    if state.is_cancelled() and signum is not None:
        raise Stopped(signum)
    if not state.is_completed():
        failure = state.result(raise_on_failure=False)
        if isinstance(failure, ImgclfError):
            raise failure
        raise ImgclfError(f"the flow ended {state.name}: {state.message}")
    return dict(state.result())


@contextmanager
def _prefect_api() -> Iterator[Callable[[], None]]:
    """The Prefect API the flow reports to: PREFECT_API_URL when set (environment or
    profile), else a temporary ``prefect server start`` on 127.0.0.1 for this run.

    Yields a function that waits until the API answers. Prefect would start a temporary
    server itself, but only when the flow is called, and only after importing its whole
    server in this process (~4 s on 2 cores); started first, the server boots on the
    other core while this process imports the flow.
    """
    from prefect.logging import get_logger
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, get_current_settings, temporary_settings

    settings = get_current_settings()
    if settings.api.url:
        check_api(settings.api.url)
        yield lambda: None
        return
    telemetry.quiet()  # before the server inherits this environment
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    command = [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-services", "--no-ui"]  # a run, not a deployment: no scheduler
    # The first start on a new PREFECT_HOME migrates its database: over a minute on 2 cores.
    timeout = max(300, settings.server.ephemeral.startup_timeout_seconds)
    with tempfile.TemporaryFile() as log:  # not a pipe: a server that logs a lot would fill it and block
        server = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )

        def ready() -> None:
            _wait_for_api(url, server, log, timeout)
            get_logger("imgclf").info("a temporary Prefect server on %s, for this run", url)

        try:
            # No UI URL: the server has no UI, and is gone when the run ends.
            with temporary_settings({PREFECT_API_URL: url, PREFECT_UI_URL: ""}):
                yield ready
                _flush_to_api(timeout=2 if stopping.requested() else 10)  # stopping: within the deadline
        finally:
            _stop(server, timeout=3 if stopping.requested() else 15)


def check_api(url: str) -> None:
    """One line instead of Prefect's traceback when the configured API does not answer.
    Any HTTP answer will do (Prefect Cloud answers 401 without a key)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10):
            pass
    except urllib.error.HTTPError:
        pass
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise ImgclfError(f"PREFECT_API_URL {url} does not answer ({reason}); is the Prefect server running?") from None


def _wait_for_api(url: str, server: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> None:
    if not wait_until_up(f"{url}/health", alive=lambda: server.poll() is None, timeout=timeout):
        log.seek(0)
        said = log.read().decode(errors="replace").strip().splitlines()
        reason = said[-1] if said else f"no answer in {timeout:.0f} s"
        raise ImgclfError(f"the temporary Prefect server did not start: {reason}")


def _flush_to_api(timeout: float) -> None:
    """Send the logs and events Prefect still queues, while the server is there to take
    them (at exit, with it gone, Prefect would retry for a minute)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout)
    EventsWorker.drain_all(timeout=timeout)


def _stop(server: subprocess.Popen[bytes], timeout: float) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(
    params: Params,
    params_file: Path,
    cron: str | None,
    interval: int | None,
    on_serving: Callable[[str], None] = lambda what: None,
) -> None:
    """Serve the flow as the deployment ``training-pipeline/scheduled`` until SIGTERM or SIGINT.

    Each scheduled run is a whole flow run: unchanged data and params train nothing.

    Args:
        on_serving: told what is served and how it runs, once it is.
    """
    every = interval or (None if cron else params.orchestrate.interval)
    schedule: dict[str, Any] = {"interval": every} if every else {"cron": cron or params.orchestrate.cron}
    if "cron" in schedule:
        check_cron(schedule["cron"], "--cron" if cron else "params.yaml: orchestrate.cron")
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:  # Prefect would start a temporary server, whose runs nothing schedules
        raise ImgclfError(
            "imgclf schedule needs a Prefect server with its scheduler: run `prefect server start` "
            "and export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    check_api(url)
    flow = load_flow(params)
    from prefect.runner import Runner

    with chdir(params.root):  # the deployment's entrypoint is relative to the project
        # What flow.serve does, but with our own stop (_serve_until_stopped). limit=1: one
        # run at a time; a second would find DVC's lock on the project taken.
        runner = Runner(name="scheduled", limit=1)
        deployment = runner.add_flow(flow, name="scheduled", parameters={"params_file": str(params_file)}, **schedule)
        assert isinstance(deployment, UUID)  # add_flow called from sync code
        when = f"every {schedule['interval']} s" if "interval" in schedule else f"on cron {schedule['cron']!r}"
        on_serving(f"serving training-pipeline/scheduled, {when}; SIGTERM or Ctrl-C stops it")
        _serve_until_stopped(runner, deployment)


def _serve_until_stopped(runner: Any, deployment: UUID) -> None:
    """Run Prefect's runner until SIGTERM or SIGINT, then stop within stopping.DEADLINE: the
    flow run under way ends Cancelled, its processes gone, DVC's locks released.

    The runner runs in a thread of its own: there, Prefect installs no SIGTERM handler of
    its own (Prefect 3.8.8's calls the async ``Runner.stop`` without awaiting it and exits
    from inside the event loop, which then waits for the flow run to finish: a hang).
    """
    import asyncio
    import threading

    loops: list[asyncio.AbstractEventLoop] = []
    failed: list[BaseException] = []

    async def start() -> None:
        loops.append(asyncio.get_running_loop())
        await runner.start()

    def serve_in_thread() -> None:
        try:
            asyncio.run(start())
        except BaseException as exc:  # noqa: BLE001 - the main thread raises it, unless stopping anyway
            failed.append(exc)

    serving = threading.Thread(target=serve_in_thread, name="prefect-runner", daemon=True)
    with stopping.stop_on_signals(interrupt=False):
        serving.start()
        while serving.is_alive() and stopping.requested() is None:
            serving.join(0.5)
        signum = stopping.requested()
        if signum is not None:
            _stop_serving(runner, loops[0] if loops else None, serving, deployment, signum)
            return
    if failed:
        raise failed[0]


def _stop_serving(runner: Any, loop: Any, serving: Any, deployment: UUID, signum: int) -> None:
    """Stop the runner and every flow run process it started, then mark the flow runs
    that were under way Cancelled (after their processes are gone: none can overwrite it)."""
    import asyncio
    import time

    from prefect.logging import get_logger

    logger = get_logger("imgclf")

    def left() -> float:  # seconds to spare before the hard deadline, counted from the signal
        return stopping.DEADLINE - 1 - (time.time() - stopping.requested_at())

    logger.info("%s: stopping the runner and the flow run under way", signal.Signals(signum).name)
    if loop is not None and not loop.is_closed():
        # Stops polling, and cancels the runs it started the way Prefect does: the flow run
        # process is told over its control channel, then one SIGTERM. Not awaited here: the
        # steps below bound it.
        asyncio.run_coroutine_threadsafe(runner.astop(), loop)
    under_way = _taken_runs(deployment)
    # The flow run processes and their stage commands; not multiprocessing's resource
    # tracker, which ignores SIGTERM and ends with this process. A second SIGTERM, from here,
    # would land in the run's own report of the cancel and cut it short (a coroutine "never
    # awaited"), so the runner's signal has RUNNER_GRACE first. What still runs then (a run
    # the runner had not registered yet) gets SIGTERM from here, SIGKILL 3 s before the deadline.
    runs = [p for p in stopping.descendants() if "multiprocessing.resource_tracker" not in _command(p)]
    left_running = stopping.wait_gone(runs, timeout=min(RUNNER_GRACE, max(0.0, left() - 4)))
    stopping.terminate(left_running, grace=max(0.5, left() - 2))
    stopping.wait_gone(left_running, timeout=max(0.0, left() - 1))
    cancelled = _cancel(under_way | _taken_runs(deployment), signum)
    serving.join(timeout=max(0.0, left()))
    logger.info("stopped; flow runs cancelled: %s", ", ".join(cancelled) or "none")


def _command(process: Any) -> str:
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _taken_runs(deployment: UUID) -> set[UUID]:
    """The deployment's flow runs that a runner took and that have not ended, or that ended
    Crashed or Failed since the stop was asked (the signal reached its process too)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    under_way = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]
    runs = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[deployment]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[*under_way, StateType.CRASHED, StateType.FAILED])),
    )
    since = stopping.requested_at() - 1  # a second's slack: the state's time is the server's clock
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(flow_run_filter=runs, limit=50)
    return {
        run.id
        for run in found
        if run.state and (run.state.type in under_way or run.state.timestamp.timestamp() >= since)
    }


def _cancel(runs: set[UUID], signum: int) -> list[str]:
    """Force each run that did not complete to Cancelled (a run its process reported Crashed
    or Failed as it was stopped included); the names of the runs now Cancelled."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    message = f"stopped by {signal.Signals(signum).name}"
    changed: list[str] = []
    with get_client(sync_client=True) as client:
        for run_id in runs:
            run = client.read_flow_run(run_id)
            if run.state is None or not (run.state.is_completed() or run.state.is_cancelled()):
                client.set_flow_run_state(run_id, Cancelled(message=message), force=True)
                changed.append(run.name)
            elif run.state.is_cancelled():
                changed.append(run.name)
    return sorted(changed)


def check_cron(cron: str, key: str) -> None:
    """Prefect's own check of a cron string (five fields, no random or hashed ones), as a
    ParamsError naming ``key`` rather than a traceback from inside ``flow.serve``."""
    from prefect._internal.schemas.validators import validate_cron_string

    try:
        validate_cron_string(cron)
    except ValueError as exc:
        raise ParamsError(f"{key}: {exc}") from None
