"""The ``imgclf`` command line run inside the test process, for tests whose subject is a
command's outcome (its exit code, its one-line error, its store) rather than the installed
entry point: the libraries are imported already, so a call costs its work, not a 3-10 s
interpreter start. Each command is still run somewhere as a subprocess too."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def imgclf(*args: str | Path, cwd: Path) -> Ran:
    """``imgclf --params cwd/params.yaml ARGS...`` in this process; its output captured and the
    environment variables it sets (MLflow's logging level, ...) put back afterwards."""
    from typer.testing import CliRunner

    from imgclf.cli import app

    saved = dict(os.environ)
    try:
        result = CliRunner().invoke(app, ["--params", str(cwd / "params.yaml"), *map(str, args)])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)
