"""The flow's data-version step in real git + DVC repos: new images become a new `dvc add`
version; an empty raw folder (a fresh clone) gets its recorded version back, or a clear error;
a stage reproduced for the flow prints no "git add" hint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dvcrepo import copy_project, init_repo
from images import class_folder
from imgclf.data import demo
from imgclf.errors import StageInputError
from imgclf.orchestration import dvcrun
from imgclf.orchestration.dvcrun import record_data
from imgclf.provenance import dvc_md5


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_project(tmp_path / "clone")  # data/raw.dvc as shipped: the demo set's version
    init_repo(root)
    return root


def test_a_fresh_clone_gets_the_shipped_demo_version_back(repo: Path) -> None:
    assert not (repo / "data" / "raw").exists()
    assert record_data(repo, "data/raw") is False  # the same version as recorded
    assert dvc_md5(repo / "data" / "raw.dvc") == demo.DEFAULT_DVC_MD5
    assert len(files(repo / "data" / "raw")) == 2000


def test_new_images_are_a_new_version_and_a_deleted_folder_comes_back_from_the_cache(repo: Path) -> None:
    class_folder(repo / "data" / "raw", "cat", 5, seed=1)
    class_folder(repo / "data" / "raw", "dog", 5, seed=2)
    assert record_data(repo, "data/raw") is True
    recorded, before = dvc_md5(repo / "data" / "raw.dvc"), files(repo / "data" / "raw")
    assert record_data(repo, "data/raw") is False  # nothing new

    shutil.rmtree(repo / "data" / "raw")
    assert record_data(repo, "data/raw") is False
    assert files(repo / "data" / "raw") == before and dvc_md5(repo / "data" / "raw.dvc") == recorded

    shutil.rmtree(repo / "data" / "raw")
    shutil.rmtree(repo / ".dvc" / "cache")  # the version is nowhere now: say so, write nothing
    with pytest.raises(StageInputError, match=r"^data/raw: no images, and its recorded version \(\w+\.dir\) is"):
        record_data(repo, "data/raw")
    assert dvc_md5(repo / "data" / "raw.dvc") == recorded


def test_no_images_and_no_recorded_version_asks_for_images(repo: Path) -> None:
    (repo / "data" / "raw.dvc").unlink()
    (repo / "data" / "raw").mkdir(parents=True)
    with pytest.raises(StageInputError, match=r"^data/raw: no images; add one folder per class"):
        record_data(repo, "data/raw")


def test_a_reproduced_stage_prints_no_git_add_hint(repo: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """DVC's "git add dvc.lock / autostage" hint would come after every stage of the flow;
    the flow says it once, at its end."""
    # check is the cheapest stage (no TensorFlow); forced, it rewrites dvc.lock, which is what DVC hints about.
    assert dvcrun.reproduce(repo, "check", force=True) is True
    printed = capfd.readouterr()
    assert "Running stage 'check'" in printed.out + printed.err
    assert "To track the changes with git" not in printed.out + printed.err
    assert "core.autostage" not in printed.out + printed.err
