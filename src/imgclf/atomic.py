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


def umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask can
    only be read by setting it, which races with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def publish(path: Path) -> None:
    """Give a file or folder made by ``tempfile`` (0600, 0700: for secrets) the mode that
    open() or mkdir() would have given it, so teammates and a served artifact store can
    read what a stage wrote, as the user's umask says."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask())


@contextmanager
def replacing(path: Path) -> Iterator[TextIO]:
    """Open a temporary file beside ``path`` for text; it replaces ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            yield out
        publish(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path: Path, payload: Any) -> None:
    with replacing(path) as out:
        out.write(json.dumps(payload, indent=2) + "\n")
