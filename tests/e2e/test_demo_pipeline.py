"""`make run`'s path on a fresh clone: demo data, then `dvc repro` of every stage, reproducing
what main committed and registering the champion; then a `dvc exp run` that logs a second,
comparable MLflow run whose weaker model stays challenger."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from dvcrepo import copy_project, init_repo, ran, sh
from runner import REPO, imgclf

pytestmark = pytest.mark.slow


# The tracked files a fresh clone's `dvc repro` may change: trained weights and what is
# computed from them differ in the third decimal from one CPU to another.
NUMERICS = {
    "dvc.lock",
    "reports/metrics.json",
    "reports/train_history.csv",
    "reports/confusion_matrix.csv",
    "reports/roc_curve.csv",
    "reports/pr_curve.csv",
}


def outs(lock: dict, stage: str) -> dict[str, str]:
    return {out["path"]: out["md5"] for out in lock["stages"][stage]["outs"]}


def test_fresh_clone_reproduces_the_committed_data_and_outputs(tmp_path: Path) -> None:
    repo = copy_project(tmp_path / "project")
    init_repo(repo)
    committed_lock = yaml.safe_load((REPO / "dvc.lock").read_text(encoding="utf-8"))

    made = imgclf("demo-data", "--if-empty", cwd=repo)
    assert made.returncode == 0, made.stderr
    assert len(list((repo / "data" / "raw").rglob("*.png"))) == 2000
    # check is up to date: its output and params.yaml are committed with dvc.lock.
    stages = ["validate", "split", "augment", "train", "evaluate", "register"]
    assert ran(sh("dvc", "repro", cwd=repo)) == stages

    # Byte-identical demo data: data/raw.dvc as committed on main.
    assert sh("git", "diff", "--stat", "data/raw.dvc", cwd=repo).stdout == ""
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    assert outs(lock, "split") == outs(committed_lock, "split")
    manifest = "data/manifest.csv"
    assert outs(lock, "validate")[manifest] == outs(committed_lock, "validate")[manifest]

    # What the repro changed in git: only files whose numbers come from the CPU's float
    # arithmetic (on the machine kind main's dvc.lock was made on, nothing at all). No run id,
    # store path, save date or registry decision is in git or dvc.lock.
    changed = {line[3:] for line in sh("git", "status", "--porcelain", cwd=repo).stdout.splitlines()}
    assert changed <= NUMERICS, changed

    metrics = json.loads((repo / "reports" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["f1"] >= 0.96  # the defaults' promise on the demo set
    report = json.loads((repo / "reports" / "validation.json").read_text(encoding="utf-8"))
    assert report["success"] is True and report["files"]["candidates"] == 2000
    assert (repo / "reports" / "data_docs" / "index.html").is_file()
    # The registry: version 1 is champion, tagged with the commit, the data's md5 and metrics.
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("catdog-cnn", "champion")
    raw_md5 = yaml.safe_load((repo / "data" / "raw.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"]
    assert str(champion.version) == "1" and champion.tags["data_raw_md5"] == raw_md5
    assert champion.tags["git_commit"] == sh("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()
    assert float(champion.tags["test_f1"]) == pytest.approx(metrics["f1"], abs=1e-4)
    registered = json.loads((repo / "models" / "registered.json").read_text(encoding="utf-8"))
    assert registered == {"model_name": "catdog-cnn", "content_hash": champion.tags["content_hash"]}

    assert ran(sh("dvc", "repro", cwd=repo)) == []
    assert "Data and pipelines are up to date." in sh("dvc", "status", cwd=repo).stdout
    assert len(client.search_model_versions("name='catdog-cnn'")) == 1  # a second run adds no version
    labelled = imgclf("predict", "data/raw/cat", "--output", "cats.csv", cwd=repo)
    assert labelled.returncode == 0 and "1000 images labelled, 0 failed" in labelled.stderr
    assert imgclf("demo-data", "--if-empty", cwd=repo).stdout.startswith("demo-data: the target folder has content")

    # An experiment with fewer epochs reruns train and evaluate only, into the same store.
    experiment = sh("dvc", "exp", "run", "-S", "train.epochs=2", cwd=repo)
    assert ran(experiment) == ["check", "train", "evaluate", "register"]
    # Two epochs make a weaker model: registered, but the champion stays.
    assert str(client.get_model_version_by_alias("catdog-cnn", "challenger").version) == "2"
    assert str(client.get_model_version_by_alias("catdog-cnn", "champion").version) == "1"
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=["imgclf"], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    assert sorted(r.data.params["train.epochs"] for r in runs) == ["10", "2"]
    assert all("test_f1" in r.data.metrics for r in runs)
