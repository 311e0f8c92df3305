"""What a run saw: the code's git commit (and whether the tree was dirty), and the data's
versions, as DVC recorded them (a `dvc add`-ed folder's .dvc pointer, a file's md5)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

from imgclf.params import Params


def collect(params: Params) -> dict[str, str]:
    """Tags that say exactly what a run saw: the code's commit and the data's DVC hashes."""
    root = params.root

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit or "unknown",
        "git_dirty": "unknown" if status is None else str(bool(status)).lower(),
        "data_raw_md5": dvc_md5(root / f"{params.paths.raw}.dvc"),
        "data_split_md5": file_md5(params.path("split")),
    }


def dvc_md5(dvc_file: Path) -> str:
    """The md5 DVC recorded for a `dvc add`-ed folder, or "untracked"."""
    try:
        outs = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"]
        return str(outs[0]["md5"])
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        return "untracked"


def file_md5(path: Path) -> str:
    """md5 of the file's bytes: what DVC 3 records for a file output."""
    with path.open("rb") as src:
        return hashlib.file_digest(src, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
