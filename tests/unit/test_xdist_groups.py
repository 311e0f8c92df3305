"""`make test`'s two workers keep each xdist group on one worker: the module fixtures of a
file are built once, and the Prefect tests never run at the same time. Under pytest 9.2,
xdist 3.8's --dist loadgroup silently ignored every group; this fails if an upgrade does
that again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Groups set as tests/conftest.py sets them: a marker added at collection, first.
CONFTEST = """
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
"""
TESTS = """
import os, pathlib, pytest

@pytest.mark.parametrize("n", range(6))
def test_where(n):
    with open(pathlib.Path(__file__).with_suffix(".log"), "a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""


def test_each_group_runs_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    xdist_group(name): a group\n", encoding="utf-8")
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    for name in ("test_one", "test_two", "test_three"):
        (tmp_path / f"{name}.py").write_text(TESTS, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    workers = {
        name: set((tmp_path / f"{name}.log").read_text().split()) for name in ("test_one", "test_two", "test_three")
    }
    assert all(len(found) == 1 for found in workers.values()), workers
    assert len(set().union(*workers.values())) == 2  # and both workers had work
