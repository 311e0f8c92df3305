"""git_dirty on a real git repository: the files DVC writes during a repro do not count,
the code and params do."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from imgclf import provenance
from imgclf.params import load_params

LOCK = {
    "schema": "2.0",
    "stages": {
        "validate": {"cmd": "imgclf validate", "outs": [{"path": "reports/data_docs"}, {"path": "reports/v.json"}]},
        "register": {"cmd": "imgclf register", "outs": [{"path": "reports/model_card.md"}]},
    },
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, write_params: Callable[..., Path]) -> Path:
    """A committed project: code, params, dvc.lock and git-tracked stage outputs."""
    write_params(train={"epochs": 3})
    files = {
        "src/code.py": "x = 1\n",
        "dvc.lock": yaml.safe_dump(LOCK),
        "reports/v.json": "{}\n",
        "reports/model_card.md": "# card\n",
        "reports/data_docs/index.html": "<html></html>\n",
        "data/split.csv": "path,label,split\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return tmp_path


def _dirty(repo: Path) -> str:
    return provenance.collect(load_params(repo / "params.yaml"))["git_dirty"]


def test_what_dvc_writes_during_a_repro_is_not_dirt(repo: Path) -> None:
    assert _dirty(repo) == "false"
    lock = yaml.safe_load((repo / "dvc.lock").read_text(encoding="utf-8"))
    lock["stages"]["validate"]["deps"] = [{"path": "data/raw", "md5": "new"}]
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
    (repo / "reports/v.json").write_text('{"a": 1}\n', encoding="utf-8")
    (repo / "reports/model_card.md").unlink()
    (repo / "reports/data_docs/index.html").write_text("<html>new</html>\n", encoding="utf-8")
    assert _dirty(repo) == "false"


@pytest.mark.parametrize("edited", ["src/code.py", "params.yaml"])
def test_edited_code_or_params_are_dirt(repo: Path, edited: str) -> None:
    (repo / "dvc.lock").write_text(yaml.safe_dump({**LOCK, "schema": "2.0 "}), encoding="utf-8")
    with (repo / edited).open("a", encoding="utf-8") as out:
        out.write("# edited\n")
    assert _dirty(repo) == "true"


def test_status_parsing_keeps_renames_and_leading_spaces() -> None:
    status = " M src/a.py\0R  src/new.py\0src/old.py\0 M dvc.lock\0 D reports/x/y.html\0"
    assert provenance.changed(status, {"dvc.lock", "reports/x"}) == ["src/a.py", "src/new.py"]


def test_a_data_pointer_rewritten_by_dvc_add_is_not_dirt(repo: Path) -> None:
    """`dvc add` (the flow's data-version step) rewrites data/raw.dvc: the data is recorded by its md5 tag."""
    (repo / "data" / "raw.dvc").write_text("outs:\n- md5: a.dir\n  path: raw\n", encoding="utf-8")
    _git(repo, "add", "data/raw.dvc")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "data")
    (repo / "data" / "raw.dvc").write_text("outs:\n- md5: b.dir\n  path: raw\n", encoding="utf-8")
    assert _dirty(repo) == "false"


def test_the_logged_diff_puts_the_dirty_tree_back_on_its_commit(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """What train logs for a dirty tree: applied on a clean checkout of the commit, it gives back
    the edited code and params (a rename and a binary file too), and none of DVC's writes."""
    _git(repo, "mv", "src/code.py", "src/module.py")
    (repo / "src" / "module.py").write_text("x = 2  # edited\n", encoding="utf-8")
    (repo / "params.yaml").write_text("train:\n  epochs: 4\n", encoding="utf-8")
    (repo / "src" / "blob.bin").write_bytes(bytes(range(256)))
    _git(repo, "add", "src/blob.bin")
    (repo / "reports" / "v.json").write_text('{"rewritten": true}\n', encoding="utf-8")  # a stage output
    tags = provenance.collect(load_params(repo / "params.yaml"))
    assert tags["git_dirty"] == "true"
    assert sorted(tags["git_dirty_files"].split(",")) == ["params.yaml", "src/blob.bin", "src/module.py"]
    assert tags["git_branch"] not in ("unknown", "detached")
    patch = provenance.source_diff(repo)

    clean = tmp_path_factory.mktemp("clean") / "checkout"
    _git(repo, "worktree", "add", "-q", "--detach", str(clean), "HEAD")
    subprocess.run(["git", "apply", "--binary", "-"], cwd=clean, input=patch, check=True, capture_output=True)
    for name in ("src/module.py", "params.yaml", "src/blob.bin"):
        assert (clean / name).read_bytes() == (repo / name).read_bytes(), name
    assert not (clean / "src" / "code.py").exists()  # the rename's source is gone too
    assert (clean / "reports" / "v.json").read_text(encoding="utf-8") == "{}\n"


def test_a_clean_tree_logs_no_diff(repo: Path) -> None:
    tags = provenance.collect(load_params(repo / "params.yaml"))
    assert (tags["git_dirty"], "git_dirty_files" in tags, provenance.source_diff(repo)) == ("false", False, b"")
