"""Tiny projects for stage tests: generated class folders, a small params.yaml, the stages in order."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dvcrepo import copy_project, init_repo
from images import class_folder
from imgclf.params import Params, load_params
from imgclf.stages import augment, evaluate, register, split, train, validate

# Small enough to train in seconds, large enough that every class has val and test images.
TINY: dict[str, dict[str, Any]] = {
    "validate": {"min_per_class": 5},
    "split": {"val": 0.2, "test": 0.2},
    "train": {"epochs": 2, "batch_size": 8, "image_size": 16},
    "evaluate": {"gallery_size": 4},
    # No floors: the generated classes are barely learnable; a first version becomes champion.
    "register": {"min_metrics": {}},
}


def make_project(root: Path, labels: tuple[str, ...], per_class: int = 30, **overrides: dict[str, Any]) -> Params:
    for seed, label in enumerate(labels):
        class_folder(root / "data" / "raw", label, per_class, seed=seed + 1)
    sections = {key: {**TINY.get(key, {}), **overrides.get(key, {})} for key in {*TINY, *overrides}}
    (root / "params.yaml").write_text(yaml.safe_dump(sections), encoding="utf-8")
    return load_params(root / "params.yaml")


def run_pipeline(params: Params) -> None:
    for stage in (validate, split, augment, train, evaluate, register):
        stage.run(params)  # type: ignore[attr-defined]


def flow_project(root: Path, per_class: int = 30, **overrides: dict[str, Any]) -> Path:
    """A git + DVC copy of the project (dvc.yaml, pipelines/) with TINY params, no retries,
    and ``per_class`` generated cat and dog images (0: none) for the Prefect flow."""
    repo = copy_project(root)
    _update_params(repo, {**TINY, "orchestrate": {"retries": 0}, **overrides}, tiny=True)
    init_repo(repo)
    for seed, label in enumerate(("cat", "dog"), start=1):
        if per_class:
            class_folder(repo / "data" / "raw", label, per_class, seed=seed)
    return repo


def copy_reproduced(source: Path, target: Path, **overrides: dict[str, Any]) -> Path:
    """A copy of a flow project the pipeline reproduced (git, DVC's cache and outputs,
    dvc.lock), then params.yaml ``overrides`` merged in.

    Without its MLflow store: the store records absolute artifact paths (the source's),
    so a copy's runs would write there. Override a train key, so the copy's next run
    retrains into a store of its own. Without DVC's .dvc/tmp either (its state is keyed
    by inode; its locks belong to the source).
    """

    def skipped(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        if here == source / "mlruns":  # but .gitkeep, which git tracks
            return set(names) - {".gitkeep"}
        return {"tmp"} & set(names) if here == source / ".dvc" else set()

    shutil.copytree(source, target, symlinks=True, ignore=skipped)
    _update_params(target, overrides, tiny=False)
    return target


@dataclass(frozen=True)
class Reproduced:
    """The first flow run of a tiny project. ``repo`` is left to the test that goes on
    with it; the others take ``copy``, as the first run left it."""

    repo: Path
    outcome: dict[str, str]
    snapshot: Path

    def copy(self, target: Path, **overrides: dict[str, Any]) -> Path:
        """A copy with params.yaml ``overrides``; without the MLflow store, so override a
        train key: the copy's next run then retrains into a store of its own."""
        return copy_reproduced(self.snapshot, target, **overrides)


def _update_params(repo: Path, sections: dict[str, dict[str, Any]], tiny: bool) -> None:
    settings = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))  # dvc.yaml needs its paths
    for section, values in sections.items():
        settings[section] = {**settings.get(section, {}), **(TINY.get(section, {}) if tiny else {}), **values}
    (repo / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
