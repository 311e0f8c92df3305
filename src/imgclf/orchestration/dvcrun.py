"""Running dvc.yaml stages one at a time through DVC for the Prefect flow, and recording
the raw folder as a DVC data version before them.

Each stage runs through the DVC Python API (``reproduce`` of that single stage), so
dvc.lock stays the one record of what ran on which data, and a stage whose deps and
params are unchanged is skipped. The stage's stderr still reaches the terminal, and
its own one-line ``error: ...`` becomes the failure's message. DVC resolves some
paths against the working directory, so each call runs inside the project folder.
Each DVC call runs ``uninterrupted`` (imgclf.orchestration.stopping): a SIGTERM or SIGINT stops the
stage's command, lets DVC release its locks, then raises Stopped.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import chdir, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from imgclf.errors import ImgclfError, ParamsError, StageInputError, TrackingUnavailable
from imgclf.orchestration.stopping import uninterrupted

if TYPE_CHECKING:
    from dvc.repo import Repo

STAGES = ("check", "validate", "split", "augment", "train", "evaluate", "register")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b: ")
# TensorFlow's C++ log lines (glog format: I0000 00:00:17... file.cc:31] ...), never the cause.
_NATIVE_LOG = re.compile(r"^[IWEF]\d{4} |^WARNING: All log messages before absl")


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
        # DVC's "To track the changes with git, run: git add dvc.lock" hint would come once per
        # stage (five times a flow); the flow says it once, at the end.
        repo.scm_context.quiet = True
        yield repo


def check_stages(stages: list[str] | None) -> None:
    """A subset of STAGES, or a ParamsError naming the unknown ones."""
    unknown = sorted(set(stages or ()) - set(STAGES))
    if unknown:
        raise ParamsError(f"stages: unknown {unknown}; choose from {list(STAGES)}")


def scripts_first() -> str:
    """PATH with this environment's scripts (imgclf, dvc, uvicorn) first: commands started
    by name are this environment's, whatever PATH the caller has."""
    scripts, path = str(Path(sys.executable).parent), os.environ.get("PATH", "")
    return path if path.split(os.pathsep)[0] == scripts else os.pathsep.join([scripts, path])


def record_data(root: Path, raw: str) -> bool:
    """``dvc add`` the raw folder, so every model points at a versioned data set; True if
    its content changed since the last recorded version (or none was recorded)."""
    from imgclf.provenance import dvc_md5

    pointer = root / f"{raw}.dvc"
    before = dvc_md5(pointer)
    if not _has_files(root / raw):
        restore_data(root, raw, before)

    def add() -> None:
        with _in_project(root) as repo:
            repo.scm_context.quiet = True  # its "git add" hint comes every time; the flow says when it matters
            repo.add(raw)  # re-hashes only files whose size or mtime changed (DVC's state cache)

    uninterrupted(add)
    return dvc_md5(pointer) != before


def restore_data(root: Path, raw: str, recorded: str) -> None:
    """Fill an empty raw folder (a fresh clone) with its recorded version: from DVC's cache
    or default remote, or, when that version is the built-in demo set, by exporting it
    again (byte-identical). The folder is empty, so nothing can be lost.

    Raises:
        StageInputError: no images and no way to bring the recorded version back.
    """
    from dvc.exceptions import DvcException

    from imgclf.data import demo

    if recorded == "untracked":
        raise StageInputError(f"{raw}: no images; add one folder per class (or run `imgclf demo-data`)")

    def bring_back() -> None:
        with _in_project(root) as repo:
            try:
                if repo.config["core"].get("remote"):
                    repo.pull(targets=[f"{raw}.dvc"])
                else:
                    repo.checkout(targets=[f"{raw}.dvc"])
            except DvcException:
                pass

    uninterrupted(bring_back)
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

        def run() -> list[object]:
            with _in_project(root) as repo:
                return list(repo.reproduce(targets=[stage], single_item=True, force=force))

        try:
            ran = uninterrupted(run)
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

    def run() -> int | None:
        with _in_project(root) as repo:
            return int(repo.push()) if repo.config["core"].get("remote") else None

    return uninterrupted(run)


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
