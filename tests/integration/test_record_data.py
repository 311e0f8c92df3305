"""The flow's data-version step in real git + DVC repos: new images become a new `dvc add`
version; an empty raw folder (a fresh clone) gets its recorded version back, or a clear error;
a stage reproduced for the flow prints no "git add" hint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dvcrepo import copy_project, init_repo
from images import class_folder
from imgclf.data import demo
from imgclf.errors import StageInputError
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


def test_a_reproduced_stage_prints_no_git_add_hint(repo: Path) -> None:
    """DVC's "git add dvc.lock / autostage" hint would come after every stage of the flow;
    the flow says it once, at its end. In a process of its own: DVC's log handlers keep the
    stream of the first test that set them up, so this process's capture would miss them."""
    # check is the cheapest stage (no TensorFlow). Without its entry, dvc.lock changes when it
    # runs, and that change is what DVC hints about.
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    del lock["stages"]["check"]
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
    # DVC's log handlers as the flow has them: its data-version step's `dvc add` sets them up.
    code = (
        "import sys; from dvc.logger import setup; setup(); from imgclf.orchestration import dvcrun; "
        "sys.exit(0 if dvcrun.reproduce(sys.argv[1], 'check', force=True) else 1)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(repo)], capture_output=True, text=True, timeout=120, check=False
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed
    assert "Running stage 'check'" in printed
    assert "To track the changes with git" not in printed
    assert "core.autostage" not in printed
