"""Real git + DVC repositories for tests: the project's pipeline files copied into tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from runner import REPO

BIN = Path(sys.executable).parent  # the venv's bin: imgclf, which dvc.yaml's commands call
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "DVC_NO_ANALYTICS": "1",
}


def sh(*args: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git or dvc (``dvc`` means the venv's) and return the finished process."""
    command = [str(a) for a in args]
    if command[0] == "dvc":
        command = [str(BIN / "dvc"), *command[1:]]
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def copy_project(target: Path) -> Path:
    """The project's files as git tracks them (working-tree content), without data or outputs."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    for rel in filter(None, listed.stdout.split("\0")):
        source = REPO / rel
        if source.is_file() and not rel.startswith(("tests/", "bench/")):
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)
    return target


def init_repo(root: Path) -> None:
    """git init + commit of what is in ``root`` (its .dvc/ folder included)."""
    sh("git", "init", "-q", "-b", "main", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-q", "-m", "project", cwd=root)


def ran(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The stages `dvc repro` ran, from its output."""
    return [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")]
