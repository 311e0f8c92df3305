"""What a run saw: the code's git commit (and whether the code or params differ from it), the data's
versions, as DVC recorded them (a `dvc add`-ed folder's .dvc pointer, a file's md5),
and the model's own identity (its content hash)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imgclf.params import Params

# Where a dirty tree's diff is logged in the training run, and the tag naming it: what
# `imgclf reproduce` applies on top of the commit, so the code that trained is never lost.
DIFF_ARTIFACT = "lineage/git_diff.patch"
DIFF_TAG = "git_diff"
DIRTY_FILES_MAX = 1000  # characters of the git_dirty_files tag; the diff has them all


def collect(params: Params) -> dict[str, str]:
    """Tags that say exactly what a run saw: the code's commit and branch, whether code or
    params differ from it (and which files), and the data's DVC hashes."""
    tree = git_tree(params.root)
    tags = {
        "git_commit": tree.commit or "unknown",
        "git_branch": tree.branch or ("detached" if tree.commit else "unknown"),
        "git_dirty": "unknown" if tree.dirty is None else str(bool(tree.dirty)).lower(),
        "data_raw_md5": dvc_md5(params.root / f"{params.paths.raw}.dvc"),
        "data_split_md5": file_md5(params.path("split")),
    }
    if tree.dirty:
        listed = ",".join(tree.dirty)
        tags["git_dirty_files"] = listed if len(listed) <= DIRTY_FILES_MAX else listed[: DIRTY_FILES_MAX - 1] + "…"
    return tags


@dataclass(frozen=True)
class GitTree:
    """The working tree against its commit; None where git could not tell (no repository)."""

    commit: str | None
    branch: str | None  # None when detached
    dirty: list[str] | None  # tracked files changed by a person, from the repository's top
    diff_paths: list[str] = field(default_factory=list)  # those, and the sources of their renames


def git(root: Path, *args: str) -> str | None:
    """``git ARGS`` run in ``root``: its output, or None when git failed (or is not there)."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout  # unstripped: a status line may start with a space


def git_tree(root: Path) -> GitTree:
    """The commit, the branch and the changed tracked files of the repository ``root`` is in."""
    commit = git(root, "rev-parse", "HEAD")
    branch = (git(root, "symbolic-ref", "--quiet", "--short", "HEAD") or "").strip() or None
    status = git(root, "status", "--porcelain=v1", "-z", "--untracked-files=no")
    prefix = (git(root, "rev-parse", "--show-prefix") or "").strip()  # status names paths from the repository's top
    written = {prefix + path for path in ("dvc.lock", *dvc_written(root / "dvc.lock"))}
    dirty = None if status is None else changed(status, written)
    paths = [] if status is None else changed(status, written, sources=True)
    return GitTree(commit.strip() if commit else None, branch, dirty, paths)


def source_diff(root: Path) -> bytes:
    """``git diff`` of the changed tracked files against HEAD (binary-safe, paths from the
    repository's top): what ``git apply`` at the repository's top puts back on a checkout
    of the commit. Empty when nothing a person changed. Bytes: a file need not be UTF-8."""
    paths = git_tree(root).diff_paths
    top = (git(root, "rev-parse", "--show-toplevel") or "").strip()
    if not paths or not top:
        return b""
    command = ["git", "diff", "HEAD", "--binary", "--", *paths]
    return subprocess.run(command, cwd=top, capture_output=True, timeout=60, check=True).stdout


def changed(status: str, written: set[str], sources: bool = False) -> list[str]:
    """The tracked files changed since the commit, leaving out those DVC writes itself.

    A `dvc repro` rewrites dvc.lock and the git-tracked outputs (reports) of each stage
    before the next stage runs, and `dvc add` rewrites a data folder's .dvc pointer (the
    data version, recorded by its md5 on its own): counting them would call every run's
    code "dirty". What is left is the code, params.yaml and anything else a person edited.

    Args:
        status: ``git status --porcelain=v1 -z`` output.
        written: paths (from the repository's top) of dvc.lock and every stage output, files or folders.
        sources: also list the source of each rename or copy (a diff needs it to delete the old path).
    """
    entries = iter(status.split("\0"))
    found = []
    for entry in entries:
        if not entry:
            continue
        code, path = entry[:2], entry[3:]
        paths = [path]
        if code[0] in "RC":
            source = next(entries, None)  # a rename's or copy's source follows it
            if sources and source and code[0] == "R":
                paths.append(source)
        for name in paths:
            if not name.endswith(".dvc") and not any(name == w or name.startswith(w + "/") for w in written):
                found.append(name)
    return found


def dvc_written(lock_file: Path) -> list[str]:
    """Every stage output's path as dvc.lock records it (relative to the DVC project)."""
    try:
        stages = yaml.safe_load(lock_file.read_text(encoding="utf-8"))["stages"]
        return sorted({str(out["path"]).rstrip("/") for stage in stages.values() for out in stage.get("outs", [])})
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return []


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


# Keras's own stamp for the archive's entries, given to every entry, and the save date's stand-in.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SAVED_AT = "1980-01-01@00:00:00"


def normalize_archive(model_file: Path) -> None:
    """Rewrite a .keras file in place so that its bytes, and so DVC's md5, depend only on
    the model: the same weights saved twice, in any process, give the same file.

    Keras stamps the weights entry with the save time and metadata.json with the save
    date (kept as a fixed stand-in: Keras's file editor reads the key), and numbers
    shared objects by id(); the ids are renumbered as content_hash does, so the
    archive's content hash is unchanged. Entries stay stored uncompressed, in order.
    """
    staging = model_file.with_name(f".{model_file.name}.normalizing")
    with zipfile.ZipFile(model_file) as source, zipfile.ZipFile(staging, "w", zipfile.ZIP_STORED) as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "metadata.json":
                data = json.dumps({**json.loads(data), "date_saved": SAVED_AT}).encode()
            elif entry.filename == "config.json":
                data = json.dumps(_renumber(json.loads(data), {})).encode()
            target.writestr(zipfile.ZipInfo(entry.filename, date_time=ZIP_EPOCH), data)
    staging.replace(model_file)


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
