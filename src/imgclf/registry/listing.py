"""The registered model as ``imgclf models`` and ``imgclf predict`` read it: its versions,
aliases and tags, from a local sqlite store without importing MLflow.

Importing MLflow and opening its SQLAlchemy store costs 3-8 s on 2 cores (its GenAI,
tracing and store modules), far more than the few rows these commands read. A local
store is a sqlite file whose registry tables (``registered_models``, ``model_versions``,
their ``*_tags`` and ``registered_model_aliases``) are read here with read-only queries,
the same rows MLflow's store returns. ``read`` answers None for anything else (a
tracking server, a store whose tables lack a column read here, workspaces): the caller
then asks MLflow. tests/integration/test_registry_listing.py checks both answer the
same on a store MLflow wrote.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

from imgclf.tracking import sqlite_file

# What MLflow's store marks a deleted version with (it keeps the row).
DELETED_STAGE = "Deleted_Internal"
DEFAULT_WORKSPACE = "default"  # where MLflow puts every row unless workspaces are enabled
# The columns read below, per table: a schema without one of them is left to MLflow.
COLUMNS = {
    "registered_models": {"name"},
    "registered_model_tags": {"name", "key", "value"},
    "registered_model_aliases": {"name", "alias", "version"},
    "model_versions": {"name", "version", "creation_time", "run_id", "current_stage", "storage_location"},
    "model_version_tags": {"name", "version", "key", "value"},
}


@dataclass(frozen=True)
class Version:
    """One model version, with the fields of MLflow's ModelVersion that imgclf reads."""

    version: str
    creation_timestamp: int  # milliseconds since the epoch, as MLflow stores it
    run_id: str | None
    storage_location: str | None  # where its files are (file:// for a local store)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """A registered model at one moment; ``exists`` False when there is none of that name."""

    exists: bool
    versions: list[Version] = field(default_factory=list)  # newest first
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version
    tags: dict[str, str] = field(default_factory=dict)  # the registered model's


def read(uri: str, name: str) -> Snapshot | None:
    """The registered model ``name`` from the local sqlite store ``uri``, or None when this
    store is not one to read directly (see the module's docstring)."""
    try:
        with readonly(uri, COLUMNS) as db:
            return None if db is None else _snapshot(db, name)
    except sqlite3.Error:  # locked past the timeout, not a database: MLflow says what is wrong
        return None


@contextmanager
def readonly(uri: str, columns: Mapping[str, set[str]]) -> Iterator[sqlite3.Connection | None]:
    """The local sqlite store ``uri`` opened read-only, or None when it is not one to read
    directly: not sqlite, not there, workspaces on, or its tables lack one of ``columns``
    (table -> column names read). A sqlite3.Error (locked past the timeout, not a
    database) reaches the caller, for whom it means the same as None."""
    path = sqlite_file(uri)
    if path is None or not path.is_file() or _workspaces_enabled():
        yield None
        return
    # Read-only: no journal or lock file is created, and a writer is waited for.
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)) as db:
        yield db if _has_columns(db, columns) else None


def _workspaces_enabled() -> bool:
    return os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in {"1", "true", "yes"} or bool(
        os.environ.get("MLFLOW_WORKSPACE")
    )


def _has_columns(db: sqlite3.Connection, columns: Mapping[str, set[str]]) -> bool:
    for table, wanted in columns.items():
        found = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if not wanted <= found:
            return False
    return True


def _snapshot(db: sqlite3.Connection, name: str) -> Snapshot:
    # Rows of other workspaces are not this one's; a store from before workspaces has none.
    workspace = _workspace_clause(db)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return db.execute(sql + workspace, (name,)).fetchall()

    if not rows("SELECT name FROM registered_models WHERE name = ?"):
        return Snapshot(exists=False)
    tags = {key: value for key, value in rows("SELECT key, value FROM registered_model_tags WHERE name = ?")}
    aliases = {alias: str(v) for alias, v in rows("SELECT alias, version FROM registered_model_aliases WHERE name = ?")}
    version_tags: dict[str, dict[str, str]] = {}
    for version, key, value in rows("SELECT version, key, value FROM model_version_tags WHERE name = ?"):
        version_tags.setdefault(str(version), {})[key] = value
    found = rows(
        "SELECT version, creation_time, run_id, storage_location FROM model_versions "
        f"WHERE name = ? AND current_stage != '{DELETED_STAGE}'"
    )
    versions = [
        Version(str(v), int(created or 0), run_id, location, version_tags.get(str(v), {}))
        for v, created, run_id, location in found
    ]
    versions.sort(key=lambda v: int(v.version), reverse=True)
    return Snapshot(exists=True, versions=versions, aliases=aliases, tags=tags)


def _workspace_clause(db: sqlite3.Connection) -> str:
    columns = {row[1] for row in db.execute("PRAGMA table_info(registered_models)")}
    return f" AND workspace = '{DEFAULT_WORKSPACE}'" if "workspace" in columns else ""
