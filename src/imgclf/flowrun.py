"""Running the flow ``training-pipeline`` with Prefect: once (``imgclf run``, on
PREFECT_API_URL or a temporary server of its own) or served on a schedule
(``imgclf schedule``). The stages themselves run through DVC: imgclf.orchestration.
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

from imgclf.errors import ImgclfError, ParamsError
from imgclf.orchestration import check_stages
from imgclf.params import Params
from imgclf.tracking import quiet_telemetry

FLOW_FILE = "pipelines/training_flow.py"  # relative to the project root; also the deployments' entrypoint


def load_flow(params: Params) -> Any:
    """The project's flow ``training_pipeline``, imported from FLOW_FILE.

    A true import (the file's folder on sys.path), not an exec of the file: a served
    deployment runs each flow run in a child process that must import it by name.
    """
    import importlib

    quiet_telemetry()
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
    with _prefect_api() as ready:
        flow = load_flow(params)
        ready()
        state = flow(params_file=str(params_file), force=force, stages=stages, push=push, return_state=True)
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
    quiet_telemetry()  # before the server inherits this environment
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
                _flush_to_api()
        finally:
            _stop(server)


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
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            said = log.read().decode(errors="replace").strip().splitlines()
            reason = said[-1] if said else f"no answer in {timeout:.0f} s"
            raise ImgclfError(f"the temporary Prefect server did not start: {reason}")
        time.sleep(0.2)


def _flush_to_api() -> None:
    """Send the logs and events Prefect still queues, while the server is there to take
    them (at exit, with it gone, Prefect would retry for a minute)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(params: Params, params_file: Path, cron: str | None, interval: int | None) -> None:
    """Serve the flow as the deployment ``training-pipeline/scheduled`` until interrupted.

    Each scheduled run is a whole flow run: unchanged data and params train nothing.
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
    with chdir(params.root):  # the deployment's entrypoint is relative to the project
        # limit=1: one run at a time; a second would find DVC's lock on the project taken.
        flow.serve(name="scheduled", parameters={"params_file": str(params_file)}, limit=1, **schedule)


def check_cron(cron: str, key: str) -> None:
    """Prefect's own check of a cron string (five fields, no random or hashed ones), as a
    ParamsError naming ``key`` rather than a traceback from inside ``flow.serve``."""
    from prefect._internal.schemas.validators import validate_cron_string

    try:
        validate_cron_string(cron)
    except ValueError as exc:
        raise ParamsError(f"{key}: {exc}") from None
