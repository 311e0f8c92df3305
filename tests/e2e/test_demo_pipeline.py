"""`make run`'s path on a fresh clone: demo data, then `dvc repro`, reproducing what main committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, imgclf
from dvcrepo import copy_project, init_repo, ran, sh

pytestmark = pytest.mark.slow


def outs(lock: dict, stage: str) -> dict[str, str]:
    return {out["path"]: out["md5"] for out in lock["stages"][stage]["outs"]}


def test_fresh_clone_reproduces_the_committed_data_and_outputs(tmp_path: Path) -> None:
    repo = copy_project(tmp_path / "project")
    init_repo(repo)
    committed_lock = yaml.safe_load((REPO / "dvc.lock").read_text(encoding="utf-8"))

    made = imgclf("demo-data", "--if-empty", cwd=repo)
    assert made.returncode == 0, made.stderr
    assert len(list((repo / "data" / "raw").rglob("*.png"))) == 2000
    assert ran(sh("dvc", "repro", cwd=repo)) == ["validate", "split"]

    # Byte-identical demo data: data/raw.dvc as committed on main.
    assert sh("git", "diff", "--stat", "data/raw.dvc", cwd=repo).stdout == ""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    assert outs(lock, "split") == outs(committed_lock, "split")
    manifest = "data/manifest.csv"
    assert outs(lock, "validate")[manifest] == outs(committed_lock, "validate")[manifest]

    report = json.loads((repo / "reports" / "validation.json").read_text(encoding="utf-8"))
    assert report["success"] is True and report["files"]["candidates"] == 2000
    assert (repo / "reports" / "data_docs" / "index.html").is_file()
    assert ran(sh("dvc", "repro", cwd=repo)) == []
    assert "Data and pipelines are up to date." in sh("dvc", "status", cwd=repo).stdout
    assert imgclf("demo-data", "--if-empty", cwd=repo).stdout.startswith("demo-data: the target folder has content")
