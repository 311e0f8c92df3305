"""The data stages (validate, split) under real DVC: repro, status, params, remotes, data versions.

Each `dvc repro` targets `split`, so these tests about data versioning train nothing;
tests/e2e runs the whole pipeline.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dvcrepo import copy_project, init_repo, ran, sh
from images import class_folder, encode, rgb, snapshot, write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project repo with a small data set versioned and pushed to a local remote, pipeline run."""
    base = tmp_path_factory.mktemp("dvc")
    repo = copy_project(base / "origin")
    for shipped in ("data/raw.dvc", "dvc.lock"):  # this repo versions its own, smaller data set
        (repo / shipped).unlink(missing_ok=True)
    for seed, label in enumerate(("cat", "dog")):
        class_folder(repo / "data" / "raw", label, 24, seed=seed + 1)
    init_repo(repo)
    sh("dvc", "remote", "add", "-d", "local", base / "remote", cwd=repo)
    sh("dvc", "add", "data/raw", cwd=repo)
    assert ran(sh("dvc", "repro", "split", cwd=repo)) == ["check", "validate", "split"]
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "data v1 and pipeline outputs", cwd=repo)
    sh("dvc", "push", cwd=repo)
    return repo


@pytest.fixture
def clone(origin: Path, tmp_path: Path) -> Path:
    """A fresh clone of origin with its data pulled from the remote."""
    sh("git", "clone", "-q", origin, tmp_path / "clone", cwd=tmp_path)
    sh("dvc", "pull", "--with-deps", "split", cwd=tmp_path / "clone")
    return tmp_path / "clone"


def test_second_repro_is_a_no_op_and_everything_is_committed(origin: Path) -> None:
    assert ran(sh("dvc", "repro", "split", cwd=origin)) == []
    assert "Data and pipelines are up to date." in sh("dvc", "status", "split", cwd=origin).stdout
    assert sh("git", "status", "--porcelain", cwd=origin).stdout == ""
    # Reports in git (cache: false outs), not DVC metrics: dvc exp show leads with the test metrics.
    assert {"reports/validation.json", "reports/split.json"} <= set(sh("git", "ls-files", cwd=origin).stdout.split())


def test_remote_round_trip_gives_identical_files(origin: Path, clone: Path) -> None:
    assert snapshot(clone / "data" / "raw").keys() == snapshot(origin / "data" / "raw").keys()
    for path in (origin / "data" / "raw").rglob("*.png"):
        assert (clone / path.relative_to(origin)).read_bytes() == path.read_bytes()
    for output in ("data/manifest.csv", "data/split.csv"):
        assert (clone / output).read_bytes() == (origin / output).read_bytes()
    assert "Data and pipelines are up to date." in sh("dvc", "status", "split", cwd=clone).stdout


def test_a_param_change_reruns_only_the_stages_that_read_it(clone: Path) -> None:
    params = yaml.safe_load((clone / "params.yaml").read_text(encoding="utf-8"))
    params["split"]["seed"] = 7
    (clone / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    # check reads the whole file (in a second), and its unchanged output reruns nothing.
    assert ran(sh("dvc", "repro", "split", cwd=clone)) == ["check", "split"]

    params["validate"]["workers"] = 1  # not a dependency: how fast, not what
    (clone / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    assert ran(sh("dvc", "repro", "split", cwd=clone)) == ["check"]

    params["validate"]["min_side"] = 17  # reruns validate; the manifest is unchanged, so split is skipped
    (clone / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    assert ran(sh("dvc", "repro", "split", cwd=clone)) == ["check", "validate"]


def test_checking_out_an_older_data_version_brings_back_the_older_images(clone: Path) -> None:
    raw = clone / "data" / "raw"
    old = {p.relative_to(raw).as_posix(): p.read_bytes() for p in raw.rglob("*.png")}
    write(raw / "cat" / "new.png", encode(rgb(4242), "PNG"))
    (raw / "dog" / "dog_000.png").unlink()
    sh("dvc", "add", "data/raw", cwd=clone)
    sh("git", "commit", "-q", "-am", "data v2", cwd=clone)

    sh("git", "checkout", "HEAD~1", "--", "data/raw.dvc", cwd=clone)
    sh("dvc", "checkout", "data/raw.dvc", cwd=clone)
    assert {p.relative_to(raw).as_posix(): p.read_bytes() for p in raw.rglob("*.png")} == old


def test_failed_validation_stops_repro_before_split(clone: Path) -> None:
    lock = (clone / "dvc.lock").read_text(encoding="utf-8")
    split_before = (clone / "data" / "split.csv").read_bytes()
    for path in sorted((clone / "data" / "raw" / "dog").glob("*.png"))[3:]:
        path.unlink()
    result = sh("dvc", "repro", "split", cwd=clone, check=False)
    assert result.returncode != 0
    assert ran(result) == ["validate"]
    assert "min_per_class" in result.stderr + result.stdout
    assert (clone / "dvc.lock").read_text(encoding="utf-8") == lock
    assert (clone / "data" / "split.csv").read_bytes() == split_before
