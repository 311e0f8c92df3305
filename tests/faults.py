"""Fault injection: run imgclf commands and SIGKILL them just before their k-th write to MLflow.

``python tests/faults.py`` is a launcher. It imports imgclf, MLflow and TensorFlow once,
then reads one batch of jobs per line on stdin ({"jobs": [...], "parallel": n}: n children
at once) and answers one JSON list of results per line on stdout. Each job runs the real
CLI (``imgclf.cli:app``) in a forked child, a process of its own, with every method that
writes through MLflow's stores (sqlite tracking and registry) or its local artifact
repository counted. A job with ``kill_at`` k SIGKILLs itself just before the k-th write;
any job records the writes it made, so an uninterrupted run enumerates the kill points
and a new write is covered automatically.
Forking saves each run the ~10 s of imports that would make a test of every kill point
too slow.

A job: {"cwd": folder, "args": [...], "log": file for its output, "kill_at": k or null},
and optionally "env": {variables set in its process} and "kill_after": [point, k] (a
SIGKILL at the k-th checkpoint write of a training, tests/kill_at.py).
A result: {"code": exit code (-9 when killed), "writes": ["RegistryStore.set_...", ...]}.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PARALLEL = 2  # children at once: the machine's cores
WRITES = re.compile(r"^(create|set|delete|update|log|rename|transition|restore|link|finalize|record|copy|upsert)")

# The child's fault plan, set after the fork.
_plan: dict[str, Any] = {"kill_at": None, "writes": None, "count": 0, "depth": 0}


@dataclass(frozen=True)
class Result:
    code: int
    writes: list[str]


class Launcher:
    """The launcher process, seen from a test."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def run(self, jobs: list[dict[str, Any]], parallel: int = PARALLEL) -> list[Result]:
        """Run the jobs (``parallel`` at a time); their results in order."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"jobs": jobs, "parallel": parallel}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the fault launcher died (exit {self.process.wait()})")
        return [Result(**r) for r in json.loads(line)]


@contextmanager
def launcher() -> Iterator[Launcher]:
    """Start ``python tests/faults.py``; it imports while the caller prepares its jobs. Each
    job uses its project's own store, whatever the developer's shell points MLflow at."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield Launcher(process)
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> Any:
        if _plan["depth"]:  # a write inside a write: killing there is killing before the outer one
            return method(*args, **kwargs)
        _plan["count"] += 1
        with open(_plan["writes"], "a", encoding="utf-8") as log:
            log.write(name + "\n")
        if _plan["count"] == _plan["kill_at"]:
            os.kill(os.getpid(), signal.SIGKILL)
        _plan["depth"] += 1
        try:
            return method(*args, **kwargs)
        finally:
            _plan["depth"] -= 1

    return write


def _instrument() -> list[str]:
    """Wrap every writing method of the classes a local store writes through; their names."""
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.store.model_registry import sqlalchemy_store as registry_store
    from mlflow.store.tracking import sqlalchemy_store as tracking_store

    classes = {
        "RegistryStore": registry_store.SqlAlchemyStore,
        "TrackingStore": tracking_store.SqlAlchemyStore,
        "ArtifactRepository": LocalArtifactRepository,
    }
    wrapped = []
    for label, cls in classes.items():
        for name, method in inspect.getmembers(cls, inspect.isfunction):
            if WRITES.match(name):
                setattr(cls, name, _counted(f"{label}.{name}", method))
                wrapped.append(f"{label}.{name}")
    return wrapped


def _child(job: dict[str, Any]) -> None:
    """In the forked child: run the command with the fault plan; never returns."""
    code = 1
    try:
        os.chdir(job["cwd"])
        out = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        writes = Path(job["log"]).with_suffix(".writes")
        writes.unlink(missing_ok=True)
        writes.touch()
        os.environ.update(job.get("env", {}))
        _plan.update(kill_at=job.get("kill_at"), writes=str(writes))
        if job.get("kill_after"):
            import kill_at

            kill_at.arm(*job["kill_after"])
        from imgclf.cli import app

        app(job["args"], prog_name="imgclf")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported through the exit code and the log
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        Path(job["log"]).with_suffix(".modules").write_text("\n".join(sorted(sys.modules)), encoding="utf-8")
        os._exit(code)


def _run(jobs: list[dict[str, Any]], parallel: int = PARALLEL) -> list[dict[str, Any]]:
    running: dict[int, int] = {}  # pid -> job index
    codes: dict[int, int] = {}
    queue = list(enumerate(jobs))
    while queue or running:
        while queue and len(running) < parallel:
            index, job = queue.pop(0)
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(job)
            running[pid] = index
        pid, status = os.wait()
        codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    results = []
    for index, job in enumerate(jobs):
        writes = Path(job["log"]).with_suffix(".writes")
        results.append({"code": codes[index], "writes": writes.read_text(encoding="utf-8").split()})
        _warm(Path(job["log"]).with_suffix(".modules"))
    return results


def _warm(listing: Path) -> None:
    """Import what a child imported, so the next children start with it (imports only: no
    module runs a TensorFlow op or opens a store when imported)."""
    if not listing.exists():  # killed
        return
    for name in listing.read_text(encoding="utf-8").split():
        if name not in sys.modules and not name.startswith(("__", "model_code", "imgclf.serving.model_code")):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a module only its loader can import (a model's code)
                continue


def main() -> None:
    # What `imgclf register` imports, once; nothing runs (no TensorFlow op, no MLflow
    # store is opened) before the fork, so each child starts as a fresh process would.
    from imgclf.tfruntime import import_tensorflow

    import_tensorflow()
    import keras  # noqa: F401
    import mlflow.pyfunc  # noqa: F401
    from mlflow.utils import requirements_utils

    import imgclf.cli
    import imgclf.serving.classifier
    import imgclf.serving.pyfunc
    import imgclf.stages.evaluate
    import imgclf.stages.register  # noqa: F401

    # Loading a model compares its requirements with every installed distribution (~3 s a process).
    requirements_utils._init_packages_to_modules_map()
    _instrument()
    for line in sys.stdin:
        batch = json.loads(line)
        print(json.dumps(_run(batch["jobs"], batch["parallel"])), flush=True)


if __name__ == "__main__":
    main()
