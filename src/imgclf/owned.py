"""Folders imgclf may delete: only those it made itself, marked by a file it wrote.

A stage that rebuilds a folder (augment's variants, validate's Data Docs, train's
checkpoints) removes the old one first. If params.yaml names an existing folder of
the user's there, by a typo or on purpose (``paths.checkpoints: data/raw``), that
removal would wipe it; so a folder is removed only when imgclf's marker is inside.
The marker is an ordinary file of the folder, so DVC caches and restores it with
the folder's other files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from imgclf.errors import StageInputError

MARKER = ".imgclf-owned"


def mark(folder: Path, stage: str) -> None:
    """Create ``folder`` if needed and mark it as imgclf's to delete and rebuild."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(f"Written by `imgclf {stage}`, which deletes and rebuilds this folder.\n")


def remove(folder: Path, key: str) -> None:
    """Delete ``folder`` if imgclf made it (or it is empty); a missing folder is fine.

    Args:
        key: the params key that named the folder, e.g. ``paths.checkpoints``, for the error.

    Raises:
        StageInputError: the path holds something imgclf did not write; it is left untouched.
    """
    check(folder, key)
    if folder.exists():
        shutil.rmtree(folder)


def check(folder: Path, key: str) -> None:
    """Raise now what ``remove`` would raise, so a stage fails before its work, not after."""
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_dir() and not folder.is_symlink() and ((folder / MARKER).is_file() or not any(folder.iterdir())):
        return
    raise StageInputError(
        f"{key}: {folder} exists and imgclf did not write it (no {MARKER} inside); "
        "it was left untouched: move it away or choose another path"
    )
