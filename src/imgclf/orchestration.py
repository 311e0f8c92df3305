"""Running dvc.yaml stages one at a time through DVC, for the Prefect flow.

Each stage runs through the DVC Python API (``reproduce`` of that single stage), so
dvc.lock stays the one record of what ran on which data, and a stage whose deps and
params are unchanged is skipped. The stage's stderr still reaches the terminal, and
its own one-line ``error: ...`` becomes the failure's message. DVC resolves some
paths against the working directory, so each call runs inside the project folder.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import chdir, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from imgclf.errors import ImgclfError, ParamsError, StageInputError, TrackingUnavailable
from imgclf.params import Params
from imgclf.tracking import quiet_telemetry

if TYPE_CHECKING:
    from dvc.repo import Repo

STAGES = ("validate", "split", "augment", "train", "evaluate", "register")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b: ")
# TensorFlow's C++ log lines (glog format: I0000 00:00:17... file.cc:31] ...), never the cause.
_NATIVE_LOG = re.compile(r"^[IWEF]\d{4} |^WARNING: All log messages before absl")
FLOW_FILE = "pipelines/training_flow.py"  # relative to the project root; also the deployments' entrypoint


class StageFailed(ImgclfError):
    """A stage exited non-zero. ``diagnosed``: it named its failure (an ``error:`` line from
    the CLI: bad data, bad params, missing inputs), which a retry cannot fix; a tracking
    server that did not answer (exit 75) is named too, but is worth a retry."""

    def __init__(self, stage: str, message: str, diagnosed: bool) -> None:
        super().__init__(f"stage {stage} failed: {message}")
        self.stage, self.diagnosed = stage, diagnosed


@contextmanager
def _in_project(root: Path) -> Iterator[Repo]:
    """The project's DVC repo, with the project as working directory (DVC resolves some
    paths against it) and DVC's messages printed once, by DVC's own handler."""
    import logging

    from dvc.repo import Repo

    logging.getLogger("dvc").propagate = False
    with chdir(root), Repo(str(root)) as repo:
        yield repo


def check_stages(stages: list[str] | None) -> None:
    """A subset of STAGES, or a ParamsError naming the unknown ones."""
    unknown = sorted(set(stages or ()) - set(STAGES))
    if unknown:
        raise ParamsError(f"stages: unknown {unknown}; choose from {list(STAGES)}")


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
        yield lambda: None
        return
    quiet_telemetry()  # before the server inherits this environment
    port = _free_port()
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


def _free_port() -> int:
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


def scripts_first() -> str:
    """PATH with this environment's scripts (imgclf, dvc, uvicorn) first: commands started
    by name are this environment's, whatever PATH the caller has."""
    scripts, path = str(Path(sys.executable).parent), os.environ.get("PATH", "")
    return path if path.split(os.pathsep)[0] == scripts else os.pathsep.join([scripts, path])


def record_data(root: Path, raw: str) -> bool:
    """``dvc add`` the raw folder, so every model points at a versioned data set; True if
    its content changed since the last recorded version (or none was recorded)."""
    from imgclf.tracking import dvc_md5

    pointer = root / f"{raw}.dvc"
    before = dvc_md5(pointer)
    if not _has_files(root / raw):
        restore_data(root, raw, before)
    with _in_project(root) as repo:
        repo.scm_context.quiet = True  # its "git add" hint comes every time; the flow says when it matters
        repo.add(raw)  # re-hashes only files whose size or mtime changed (DVC's state cache)
    return dvc_md5(pointer) != before


def restore_data(root: Path, raw: str, recorded: str) -> None:
    """Fill an empty raw folder (a fresh clone) with its recorded version: from DVC's cache
    or default remote, or, when that version is the built-in demo set, by exporting it
    again (byte-identical). The folder is empty, so nothing can be lost.

    Raises:
        StageInputError: no images and no way to bring the recorded version back.
    """
    from dvc.exceptions import DvcException

    from imgclf import demo

    if recorded == "untracked":
        raise StageInputError(f"{raw}: no images; add one folder per class (or run `imgclf demo-data`)")
    with _in_project(root) as repo:
        try:
            if repo.config["core"].get("remote"):
                repo.pull(targets=[f"{raw}.dvc"])
            else:
                repo.checkout(targets=[f"{raw}.dvc"])
        except DvcException:
            pass
    if _has_files(root / raw):
        return
    if recorded != demo.DEFAULT_DVC_MD5:
        raise StageInputError(
            f"{raw}: no images, and its recorded version ({recorded}) is in neither DVC's cache nor a remote; "
            "`dvc pull` it, or add one folder per class"
        )
    demo.export(demo.DEFAULT_CLASSES, root / raw)


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(path.is_file() for path in folder.rglob("*"))


def reproduce(root: Path, stage: str, force: bool = False) -> bool:
    """Run one dvc.yaml stage if its deps or params changed (or ``force``); True if it ran.

    Raises:
        StageFailed: with the stage's own error line when it printed one.
    """
    from dvc.exceptions import ReproductionError

    os.environ["PATH"] = scripts_first()  # dvc.yaml calls `imgclf`
    with _tee_stderr() as captured:
        try:
            with _in_project(root) as repo:
                ran = repo.reproduce(targets=[stage], single_item=True, force=force)
        except ReproductionError as exc:
            lines = [line.strip() for line in "".join(captured).splitlines() if line.strip()]
            lines = [line for line in lines if not _NATIVE_LOG.match(line)]
            errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
            # Without an error line: the traceback's last line (TensorFlow logs after it at
            # exit), else the command's last words, else what DVC says (the exit code).
            raised = [line for line in lines if _EXCEPTION.match(line)]
            message = (errors or raised or lines or [str(exc.__cause__ or exc)])[-1]
            transient = _exit_status(exc) == TrackingUnavailable.exit_code
            raise StageFailed(stage, message, diagnosed=bool(errors) and not transient) from None
    return bool(ran)


def _exit_status(exc: BaseException) -> int | None:
    """The stage command's exit status, from DVC's "failed to run: ..., exited with N"."""
    seen: BaseException | None = exc
    while seen is not None:
        found = re.search(r"exited with (-?\d+)", str(seen))
        if found:
            return int(found.group(1))
        seen = seen.__cause__ or seen.__context__
    return None


def push(root: Path) -> int | None:
    """``dvc push`` to the default remote; None when no default remote is configured."""
    with _in_project(root) as repo:
        if not repo.config["core"].get("remote"):
            return None
        return int(repo.push())


@contextmanager
def _tee_stderr() -> Iterator[list[str]]:
    """File descriptor 2 (the stage command's stderr too) copied into a list while still
    written to the real stderr."""
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    captured: list[str] = []

    def pump() -> None:
        with os.fdopen(read_end, "rb") as source:
            for chunk in iter(lambda: source.read1(65536), b""):
                os.write(saved, chunk)
                captured.append(chunk.decode(errors="replace"))

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield captured
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the last write end: the pump sees end of file
        thread.join(timeout=30)
        os.close(saved)
