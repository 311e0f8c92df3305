"""Where a data version (the md5 DVC recorded for a `dvc add`-ed folder) can be had: in the
project's DVC cache, on its default remote, or nowhere; and what it holds (files per class).

Asked through DVC's API (0.5 s to open the repo, no TensorFlow or MLflow). A remote is
checked only when it is a folder (local or mounted): asking a cloud remote is a network
call, which `imgclf lineage` does not make; `imgclf reproduce` tries it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE, REMOTE, MISSING = "cache", "remote", "missing"
UNCHECKED = "remote not checked"  # a cloud remote: it may have it
UNTRACKED = "untracked"  # no md5 recorded (the folder was never `dvc add`-ed)


@dataclass(frozen=True)
class DataVersion:
    md5: str
    where: str  # CACHE | REMOTE | MISSING | UNCHECKED | UNTRACKED
    remote: str | None = None  # the default remote's URL, if one is configured
    files: int | None = None  # None when the listing itself is nowhere to be read
    classes: dict[str, int] | None = None  # files per class folder

    @property
    def available(self) -> bool:
        """In the cache or on the remote; a remote not checked counts: `dvc fetch` will say."""
        return self.where in (CACHE, REMOTE, UNCHECKED)


def locate(root: Path, md5: str) -> DataVersion:
    """Where the folder version ``md5`` (a ``.dir`` hash) of the DVC project at ``root`` is.

    Complete means its listing and every file in it: a cache that lost one image cannot
    rebuild the version.
    """
    if not md5.endswith(".dir"):
        return DataVersion(md5, UNTRACKED)
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(root))
    except DvcException:
        return DataVersion(md5, MISSING)
    with repo:
        name = repo.config["core"].get("remote")
        url = str(repo.config["remote"][name]["url"]) if name else None
        listing = _listing(repo.cache.local, md5)
        if listing is not None and all(repo.cache.local.exists(oid) for oid in listing.values()):
            return _found(md5, CACHE, url, listing)
        if not name:
            return _found(md5, MISSING, url, listing)
        try:
            remote = repo.cloud.get_remote_odb(name, command="lineage")
        except DvcException:  # not usable as configured: `dvc fetch` would fail the same way
            return _found(md5, MISSING, url, listing)
        if remote.fs.protocol != "local":
            return _found(md5, UNCHECKED, url, listing)
        listing = listing or _listing(remote, md5)
        if listing is not None and all(repo.cache.local.exists(oid) or remote.exists(oid) for oid in listing.values()):
            return _found(md5, REMOTE, url, listing)
        return _found(md5, MISSING, url, listing)


def _listing(odb: Any, md5: str) -> dict[str, str] | None:
    """relpath -> md5 of every file in the folder version, from its ``.dir`` object in ``odb``."""
    try:
        entries = json.loads(Path(odb.oid_to_path(md5)).read_text(encoding="utf-8"))
        return {str(e["relpath"]): str(e["md5"]) for e in entries}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _found(md5: str, where: str, remote: str | None, listing: dict[str, str] | None) -> DataVersion:
    if listing is None:
        return DataVersion(md5, where, remote)
    classes = Counter(path.split("/", 1)[0] for path in listing if "/" in path)
    return DataVersion(md5, where, remote, len(listing), dict(sorted(classes.items())))
