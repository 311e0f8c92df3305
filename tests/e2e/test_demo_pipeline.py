"""`make run`'s path on a fresh clone: demo data, then `dvc repro` of every stage, reproducing
what main committed; then a `dvc exp run` that logs a second, comparable MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from dvcrepo import copy_project, init_repo, ran, sh
from runner import REPO, imgclf

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
    assert ran(sh("dvc", "repro", cwd=repo)) == ["validate", "split", "augment", "train", "evaluate"]

    # Byte-identical demo data: data/raw.dvc as committed on main.
    assert sh("git", "diff", "--stat", "data/raw.dvc", cwd=repo).stdout == ""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    assert outs(lock, "split") == outs(committed_lock, "split")
    manifest = "data/manifest.csv"
    assert outs(lock, "validate")[manifest] == outs(committed_lock, "validate")[manifest]

    metrics = json.loads((repo / "reports" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["f1"] >= 0.96  # the defaults' promise on the demo set
    report = json.loads((repo / "reports" / "validation.json").read_text(encoding="utf-8"))
    assert report["success"] is True and report["files"]["candidates"] == 2000
    assert (repo / "reports" / "data_docs" / "index.html").is_file()
    assert ran(sh("dvc", "repro", cwd=repo)) == []
    assert "Data and pipelines are up to date." in sh("dvc", "status", cwd=repo).stdout
    assert imgclf("demo-data", "--if-empty", cwd=repo).stdout.startswith("demo-data: the target folder has content")

    # An experiment with fewer epochs reruns train and evaluate only, into the same store.
    experiment = sh("dvc", "exp", "run", "-S", "train.epochs=2", cwd=repo)
    assert ran(experiment) == ["train", "evaluate"]
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=["imgclf"], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    assert sorted(r.data.params["train.epochs"] for r in runs) == ["10", "2"]
    assert all("test_f1" in r.data.metrics for r in runs)
