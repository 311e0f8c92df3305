"""What a run saw: the code's git commit (and whether the tree was dirty), the data's
versions, as DVC recorded them (a `dvc add`-ed folder's .dvc pointer, a file's md5),
and the model's own identity (its content hash)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

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


def content_hash(model_file: Path) -> str:
    """sha256 of a .keras file's config and weights: equal for the same model saved twice,
    in any process.

    The archive's metadata.json holds the save date, and its config numbers shared
    objects by their Python id() (a memory address): both would make every save of an
    unchanged model a new version. The date is left out, the ids renumbered in order.
    """
    digest = hashlib.sha256()
    with zipfile.ZipFile(model_file) as archive:
        for name in sorted(n for n in archive.namelist() if n != "metadata.json"):
            data = archive.read(name)
            if name == "config.json":
                data = json.dumps(_renumber(json.loads(data), {}), sort_keys=True).encode()
            digest.update(name.encode() + b"\0")
            digest.update(data)
    return digest.hexdigest()


def _renumber(node: Any, seen: dict[Any, int]) -> Any:
    """The config with each shared_object_id replaced by its order of first appearance."""
    if isinstance(node, dict):
        return {
            key: seen.setdefault(value, len(seen)) if key == "shared_object_id" else _renumber(value, seen)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_renumber(item, seen) for item in node]
    return node
