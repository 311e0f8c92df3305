"""`imgclf lineage` and `imgclf reproduce` on a real git + DVC project in tmp_path with a real
MLflow store (tests/audited.py): version 1 trained from a dirty tree (uncommitted params,
code and a new `dvc add`), then images, params and code changed and committed for version
2, the champion. The rebuild runs the project's own code at version 1's commit, with its
logged diff: the logging line that diff adds shows in its output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import pytest

import inprocess
from audited import MARKER, NAME, TRAIN_STAGE
from dvcrepo import sh
from images import snapshot
from imgclf.audit import lineage, store

pytestmark = pytest.mark.slow

BUILDER = Path(__file__).resolve().parents[1] / "audited.py"


@dataclass(frozen=True)
class Audited:
    root: Path
    remote: Path
    commit_1: str  # version 1's commit (it trained with uncommitted changes on top)
    data_1: str  # version 1's data md5 (its `dvc add` was not committed)
    uri: str

    def version(self, number: str) -> mlflow.entities.model_registry.ModelVersion:
        return mlflow.MlflowClient(tracking_uri=self.uri).get_model_version(NAME, number)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Audited:
    """The project, built in a fresh interpreter (tests/audited.py says why)."""
    base = tmp_path_factory.mktemp("audit")
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    built = subprocess.run(
        [sys.executable, str(BUILDER), str(base)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert built.returncode == 0, built.stderr[-3000:]
    facts = json.loads(built.stdout.strip().splitlines()[-1])
    return Audited(Path(facts["root"]), Path(facts["remote"]), facts["commit_1"], facts["data_1"], facts["uri"])


def _env(tmp: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    return {**env, "TMPDIR": str(tmp)}


def _imgclf(audited: Audited, *args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("imgclf")), "--params", str(audited.root / "params.yaml"), *args]
    return subprocess.run(command, cwd=audited.root, env=_env(tmp), capture_output=True, text=True, timeout=600)


def _cached(audited: Audited, md5: str) -> list[Path]:
    """The data version's listing (.dir object) in the project's cache and on the remote."""
    rel = Path("files", "md5", md5[:2], md5[2:])
    return [audited.root / ".dvc" / "cache" / rel, audited.remote / rel]


def test_lineage_json_names_every_link_of_the_chain(audited: Audited, tmp_path: Path) -> None:
    done = _imgclf(audited, "lineage", "1", "--json", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    version = audited.version("1")
    assert found["model"] == NAME
    assert found["version"] == "1"
    assert found["aliases"] == []  # version 2 took champion
    assert [e["version"] for e in found["champion_history"]] == ["1"]
    assert found["run"]["id"] == version.run_id
    assert found["run"]["experiment"] == "imgclf"
    assert found["run"]["status"] == "FINISHED"
    assert found["run"]["link"].startswith("http://127.0.0.1:5000/#/experiments/")
    assert found["code"] == {
        "commit": audited.commit_1,
        "branch": "main",
        "dirty": True,
        "dirty_code": [TRAIN_STAGE],
        "dirty_params": ["params.yaml"],
        "diff_artifact": "lineage/git_diff.patch",
        "commit_in_repo": True,
    }
    assert found["data"] == {
        "raw_md5": audited.data_1,
        "files": 66,
        "classes": {"cat": 36, "dog": 30},
        "available": "cache",
        "remote": str(audited.remote),
    }
    assert found["split_md5"] == version.tags["data_split_md5"]
    assert found["params"]["digest"] == version.tags["params_digest"]
    assert found["params"]["champion"] == "2"
    assert found["params"]["differ_from_champion"] == {"train.epochs": {"this": "2", "champion": "1"}}
    assert [d["context"] for d in found["datasets"]] == ["training", "validation", "test"]
    assert all(len(d["digest"]) == 32 and d["rows"] > 0 for d in found["datasets"])
    assert found["content_hash"] == version.tags["content_hash"]
    assert found["test_metrics"]["f1"] == float(version.tags["test_f1"])
    assert "reproduced" in found


def test_lineage_text_of_the_champion(audited: Audited, tmp_path: Path) -> None:
    done = _imgclf(audited, "lineage", "champion", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{NAME} version 2 (champion), registered ")
    head = sh("git", "rev-parse", "HEAD~1", cwd=audited.root).stdout.strip()  # version 2's commit
    assert f"  code:       commit {head[:12]} on main, clean (code and params as committed)" in lines
    assert any(line.startswith("  params:     ") and line.endswith("this is the champion") for line in lines)
    assert any(line.startswith("  data:       ") and "72 files, 2 classes (cat 36, dog 36)" in line for line in lines)


def test_reproduce_rebuilds_the_dirty_version_1_identically_and_leaves_the_workspace(
    audited: Audited, tmp_path: Path
) -> None:
    root = audited.root
    listing = _cached(audited, audited.data_1)[0]
    kept = shutil.copy2(listing, tmp_path / "listing")
    listing.unlink()  # version 1's data on the remote only: reproduce must fetch it from there
    status = sh("git", "status", "--porcelain", cwd=root).stdout, sh("dvc", "status", cwd=root).stdout
    files = snapshot(root / "data"), snapshot(root / "models")
    assert status[0] == ""
    try:
        done = _imgclf(audited, "reproduce", "1", tmp=tmp_path)
    finally:
        shutil.move(kept, listing)

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert done.stdout.splitlines()[-2] == "reproduced (identical weights)"
    assert MARKER in done.stderr  # the version's code ran, with its logged diff applied
    assert f"reproduce: data {audited.data_1} from the remote {audited.remote};" in done.stderr
    assert (sh("git", "status", "--porcelain", cwd=root).stdout, sh("dvc", "status", cwd=root).stdout) == status
    assert (snapshot(root / "data"), snapshot(root / "models")) == files
    assert sh("git", "worktree", "list", "--porcelain", cwd=root).stdout.count("worktree ") == 1
    assert not list(tmp_path.glob("imgclf-reproduce-*"))  # the temporary worktree is gone

    tags = audited.version("1").tags
    assert tags[lineage.REPRODUCE_VERDICT] == "reproduced (identical weights)"
    assert tags[lineage.REPRODUCED_AT]
    client = mlflow.MlflowClient(tracking_uri=audited.uri)
    rebuilt = client.get_run(tags[lineage.REPRODUCE_RUN])
    assert client.get_experiment(rebuilt.info.experiment_id).name == "imgclf-reproduce"
    assert rebuilt.data.tags["reproduces"] == f"{NAME}/1"
    real = client.get_experiment_by_name("imgclf")
    assert len(client.search_runs([real.experiment_id])) == 2  # the real experiment: versions 1 and 2 only
    shown = json.loads(_imgclf(audited, "lineage", "1", "--json", tmp=tmp_path).stdout)["reproduced"]
    assert shown["verdict"] == "reproduced (identical weights)"


def test_data_or_commit_gone_is_one_line_and_exit_2(audited: Audited, tmp_path: Path) -> None:
    cached = _cached(audited, audited.data_1)
    aside = [tmp_path / f"listing-{i}" for i in range(2)]
    client = mlflow.MlflowClient(tracking_uri=audited.uri)
    run_id = audited.version("1").run_id
    try:
        for path, kept in zip(cached, aside, strict=True):
            if path.exists():
                shutil.move(path, kept)
        gone = inprocess.imgclf("reproduce", "1", cwd=audited.root)
        assert gone.returncode == 2
        assert gone.stderr.splitlines() == [
            f"error: {NAME} version 1: its data version {audited.data_1} is in neither DVC's cache "
            f"nor the remote {audited.remote}"
        ]
        shown = inprocess.imgclf("lineage", "1", cwd=audited.root)
        assert f"MISSING: in neither DVC's cache nor the remote {audited.remote}" in shown.stdout

        client.set_tag(run_id, "git_commit", "0" * 40)  # as after a rewritten history
        lost = inprocess.imgclf("reproduce", "1", cwd=audited.root)
        assert lost.returncode == 2
        assert lost.stderr.splitlines() == [
            f"error: {NAME} version 1: its commit {'0' * 40} is not in this repository "
            "(`git fetch` it; a rewritten history loses it)"
        ]
    finally:
        client.set_tag(run_id, "git_commit", audited.commit_1)
        for path, kept in zip(cached, aside, strict=True):
            if kept.exists():
                shutil.move(kept, path)
    assert sh("git", "worktree", "list", "--porcelain", cwd=audited.root).stdout.count("worktree ") == 1


def test_unknown_version_is_one_line_and_exit_2(audited: Audited) -> None:
    done = inprocess.imgclf("lineage", "7", cwd=audited.root)
    assert (done.returncode, done.stderr.splitlines()) == (
        2,
        [f"error: {NAME} has no version or alias '7' (versions: 1, 2; aliases: champion)"],
    )


def test_the_store_read_without_mlflow_answers_as_mlflow_does(audited: Audited) -> None:
    """The sqlite reads behind `imgclf lineage` and MLflow's own answers, for a tracking server."""
    direct = store.registered_model(audited.uri, NAME)
    unlocated = [replace(v, storage_location=None) for v in direct.versions]  # MLflow's versions do not say it
    assert store._registered(audited.uri, NAME) == replace(direct, versions=unlocated)
    via = store._fetch(audited.uri, str(audited.version("1").run_id))
    assert via is not None and store.run(audited.uri, via.run_id) == via
    client = mlflow.MlflowClient(tracking_uri=audited.uri)
    versions = {str(v.version): dict(v.tags) for v in client.search_model_versions(f"name='{NAME}'")}
    assert {v.version: v.tags for v in direct.versions} == versions
