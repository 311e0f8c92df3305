"""Copies of a trained project with its local MLflow store, so tests that change the registry
start from one training instead of each paying their own."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path


def copy_trained(source: Path, to: Path) -> Path:
    """A copy of a project and its store (``mlruns/mlflow.db``); the store's absolute artifact
    locations are moved into the copy, so that nothing the copy logs lands in the source."""
    shutil.copytree(source, to, ignore=shutil.ignore_patterns("*.lock"))
    with sqlite3.connect(to / "mlruns" / "mlflow.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for _, column, kind, *_ in db.execute(f"PRAGMA table_info({table})").fetchall():
                if kind.upper().startswith(("VARCHAR", "TEXT")):
                    db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (str(source), str(to)))
    return to
