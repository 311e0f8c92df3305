"""Atomic writes: a reader (or a later stage) sees the old file or the whole new one,
never a half-written file left by a crash or a kill. (Locks shared by processes are
filelock's FileLock.)"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO


@contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """Open a temporary file beside ``path`` for text; it replaces ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            yield out
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path: Path, payload: Any) -> None:
    with replacing(path) as out:
        out.write(json.dumps(payload, indent=2) + "\n")
