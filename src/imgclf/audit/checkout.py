"""A registered version's inputs laid out again beside the workspace, never in it: a
temporary git worktree at its commit, its logged diff applied, its data version checked
out by DVC from the project's cache (or fetched from the default remote first).

The worktree shares the workspace's git objects and DVC cache, so nothing is copied but
the files checked out, and the workspace's files, `git status` and `dvc status` stay as
they were: git records the worktree under .git/worktrees/ until it is removed, and the
workspace's DVC cache is only read (the worktree has a cache of its own).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import chdir, contextmanager
from pathlib import Path

import yaml

from imgclf.audit import dataversion
from imgclf.errors import LineageError

WORKSPACE_CACHE = "imgclf-workspace-cache"  # the worktree's name for the workspace's DVC cache, as a remote


@contextmanager
def worktree(root: Path, commit: str, keep: bool = False) -> Iterator[Path]:
    """A detached git worktree at ``commit`` in a temporary folder; yields the project
    folder in it (``root``'s place in its repository). Removed afterwards unless ``keep``."""
    top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    prefix = _git(root, "rev-parse", "--show-prefix").strip()
    folder = Path(tempfile.mkdtemp(prefix="imgclf-reproduce-"))
    tree = folder / "tree"
    try:
        _git(top, "worktree", "add", "--quiet", "--detach", str(tree), commit)
        yield tree / prefix
    finally:
        if not keep:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=top, capture_output=True, check=False
            )
            shutil.rmtree(folder, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=top, capture_output=True, check=False)


def apply_diff(project: Path, patch: bytes) -> None:
    """The dirty tree's logged diff (paths from the repository's top) applied to the worktree."""
    top = Path(_git(project, "rev-parse", "--show-toplevel").strip())
    done = subprocess.run(
        ["git", "apply", "--binary", "--whitespace=nowarn", "-"], cwd=top, input=patch, capture_output=True, check=False
    )
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise LineageError(f"the logged diff does not apply to its commit: {said[-1] if said else 'git apply failed'}")


def restore_data(workspace: Path, project: Path, raw: Path, data: dataversion.DataVersion) -> None:
    """The folder ``raw`` of the worktree's ``project`` filled with the data version ``data``:
    fetched from the workspace's DVC cache when it holds it, else from the default remote,
    into the worktree's own cache, and checked out. The workspace's local DVC config
    (remotes, their credentials) is the worktree's too.

    The worktree's own cache (in its .dvc/, removed with it) takes what the rebuild writes
    as well: the workspace's cache is only read, so `dvc status` there cannot change. Its
    cache serves as a remote (the same files/md5/ layout).

    The worktree's pointer (``raw``.dvc) is set to ``data.md5`` first: a version trained
    right after `dvc add` (as the flow does) recorded data its commit's pointer does not name.

    Raises:
        LineageError: DVC could not bring the data version back.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    logging.getLogger("dvc").propagate = False  # DVC prints its own messages, once
    try:
        with Repo(str(workspace)) as source:
            local = source.config.read("local")  # its relative paths made absolute
            cache = source.cache.local_cache_dir
        with Repo(str(project)) as target, target.config.edit("local") as config:
            config.update({key: value for key, value in local.items() if value})
            config["cache"] = {**config.get("cache", {}), "dir": str(project / ".dvc" / "cache")}
            config["remote"] = {**config.get("remote", {}), WORKSPACE_CACHE: {"url": cache}}
        pointer = _point(raw, data)
        with chdir(project), Repo(str(project)) as target:
            source_remote = WORKSPACE_CACHE if data.where == dataversion.CACHE else None  # None: the default
            target.fetch(targets=[str(pointer)], remote=source_remote)
            target.checkout(targets=[str(pointer)], force=True)
    except DvcException as exc:
        raise LineageError(f"data version {data.md5} could not be restored: {exc}") from None


def _point(raw: Path, data: dataversion.DataVersion) -> Path:
    """``raw``.dvc naming the version ``data.md5`` (written only if it names another)."""
    pointer = raw.with_name(raw.name + ".dvc")
    try:
        meta = yaml.safe_load(pointer.read_text(encoding="utf-8"))
        if meta["outs"][0]["md5"] == data.md5:
            return pointer
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        pass
    out = {"md5": data.md5, **({"nfiles": data.files} if data.files else {}), "hash": "md5", "path": raw.name}
    pointer.write_text(yaml.safe_dump({"outs": [out]}, sort_keys=False), encoding="utf-8")
    return pointer


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise LineageError(f"git {args[0]}: {said[-1] if said else f'exit {done.returncode}'}")
    return done.stdout
