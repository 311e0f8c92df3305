"""The flow runs each stage through DVC's API: DVC's "git add dvc.lock / autostage" hint
must not come after every stage (the flow says it once, at its end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvcrepo import copy_project, init_repo
from imgclf.orchestration import dvcrun


def test_a_reproduced_stage_prints_no_git_add_hint(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root = copy_project(tmp_path / "clone")
    init_repo(root)
    # check is the cheapest stage (no TensorFlow); forced, it rewrites dvc.lock, which is what DVC hints about.
    assert dvcrun.reproduce(root, "check", force=True) is True
    printed = capfd.readouterr()
    assert "Running stage 'check'" in printed.out + printed.err
    assert "To track the changes with git" not in printed.out + printed.err
    assert "core.autostage" not in printed.out + printed.err
