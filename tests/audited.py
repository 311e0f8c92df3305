"""The project tests/integration/test_lineage.py audits: a real git + DVC project with a local
DVC remote and an MLflow store, two registered versions.

Version 1 trains from a dirty tree: images added and `dvc add`-ed (and pushed) but not
committed, a params edit (train.seed) and a code edit (a logging line in the train stage)
not committed. Version 2: more images, train.epochs changed, everything committed; it is
made champion.

Built in a fresh interpreter (`python tests/audited.py BASE` prints the facts as JSON): a
model trained in a pytest worker can differ from a fresh process's, since earlier tests
there may have changed TensorFlow's global state (its devices, threads), and the audit
compares weights bit for bit. The versions train through the stages' own entry points in
that one process: their code is the project's (copied from this checkout) but for the
logging line, which changes no weight; the rebuild runs the project's own code, with it.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import chdir
from pathlib import Path

import yaml

from dvcrepo import sh
from images import encode, rgb, write
from pipeline import flow_project, run_pipeline

NAME = "catdog-cnn"
MARKER = "audit-marker: the version's own train stage"
TRAIN_STAGE = "src/imgclf/stages/train.py"


def build(base: Path) -> dict[str, str]:
    """The project under ``base``; its root, remote, version 1's commit and data md5, store URI."""
    from dvc.repo import Repo

    from imgclf import tracking
    from imgclf.params import load_params
    from imgclf.registry import registry

    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the project's own store
    root, remote = flow_project(base / "project"), base / "remote"
    with Repo(str(root)) as repo, repo.config.edit("local") as config:  # config.local: not in git
        config["core"]["remote"] = "store"
        config["remote"]["store"] = {"url": str(remote)}
    _record_data(root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-q", "-m", "data", cwd=root)
    commit_1 = sh("git", "rev-parse", "HEAD", cwd=root).stdout.strip()

    _add_images(root, "cat", 0, 6)
    data_1 = _record_data(root)
    _set(root, "train", "seed", 7)
    stage = root / TRAIN_STAGE
    text = stage.read_text(encoding="utf-8")
    anchor = "    checkpoints.clear()\n    return TrainResult(\n        run.info.run_id"
    assert anchor in text, f"{TRAIN_STAGE} changed: put the marker elsewhere"
    stage.write_text(text.replace(anchor, f'    log.warning("{MARKER}")\n{anchor}'), encoding="utf-8")
    run_pipeline(load_params(root / "params.yaml"))

    _add_images(root, "dog", 100, 6)
    _record_data(root)
    _set(root, "train", "epochs", 1)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-q", "-m", "version 2", cwd=root)
    run_pipeline(load_params(root / "params.yaml"))
    uri = tracking.tracking_uri(load_params(root / "params.yaml"))
    import mlflow

    models = registry.Registry(mlflow.MlflowClient(tracking_uri=uri), NAME)
    if models.champion() != "2":  # the gate's call on two barely trained models: make it certain
        models.promote("2", "the audit test's champion")
    sh("git", "add", "-A", cwd=root)  # the reports version 2 rewrote
    sh("git", "commit", "-q", "-m", "version 2 registered", cwd=root)
    return {"root": str(root), "remote": str(remote), "commit_1": commit_1, "data_1": data_1, "uri": uri}


def _add_images(root: Path, label: str, first: int, count: int) -> None:
    for i in range(first, first + count):
        write(root / "data" / "raw" / label / f"new_{i:03d}.png", encode(rgb(90_000 + i), "PNG"))


def _record_data(root: Path) -> str:
    """`dvc add data/raw` and `dvc push`, through DVC's API (a `dvc` process costs a second)."""
    from dvc.repo import Repo

    with chdir(root), Repo(str(root)) as repo:
        repo.scm_context.quiet = True
        repo.add("data/raw")
        repo.push()
    return str(yaml.safe_load((root / "data" / "raw.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"])


def _set(root: Path, section: str, key: str, value: object) -> None:
    settings = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    settings[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")


if __name__ == "__main__":
    print(json.dumps(build(Path(sys.argv[1]))))
