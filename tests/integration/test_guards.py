"""Nothing lost to a wrong path or a typo: the params guard, owned folders, the check
stage before DVC deletes outputs, and a validation report tied to its manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

from dvcrepo import copy_project, init_repo, ran, sh
from images import class_folder, snapshot
from imgclf.errors import StageInputError
from imgclf.params import load_params
from imgclf.stages import augment, check, split, validate
from pipeline import TINY, make_project, run_pipeline
from runner import REPO, imgclf

pytestmark = pytest.mark.slow


def set_params(repo: Path, **sections: dict[str, object]) -> None:
    settings = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    for section, values in sections.items():
        settings[section] = {**settings.get(section, {}), **values}
    (repo / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC project with tiny data, every stage run once and recorded in dvc.lock and
    the cache. The stages run in this process and `dvc commit` records them, as `dvc repro`
    would have: what these tests check is DVC's and imgclf's guards on a reproduced project,
    not the stage commands under `dvc repro` (tests/e2e runs those)."""
    repo = copy_project(tmp_path_factory.mktemp("guards") / "project")
    for shipped in ("data/raw.dvc", "dvc.lock"):
        (repo / shipped).unlink(missing_ok=True)
    set_params(repo, **TINY)
    init_repo(repo)
    for seed, label in enumerate(("cat", "dog"), start=1):
        class_folder(repo / "data" / "raw", label, 20, seed=seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        params = load_params(repo / "params.yaml")
        check.run(params)
        run_pipeline(params)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    sh("dvc", "commit", "--force", cwd=repo)
    assert "Data and pipelines are up to date." in sh("dvc", "status", cwd=repo).stdout
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "pipeline run", cwd=repo)
    return repo


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    """A fresh clone of the trained project, its outputs checked out from the shared cache."""
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", trained, clone, cwd=tmp_path)
    # What `dvc cache dir --local` writes, without a second DVC start (~2 s).
    (clone / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {trained / '.dvc' / 'cache'}\n", encoding="utf-8")
    shutil.copytree(trained / "data" / "raw", clone / "data" / "raw")
    sh("dvc", "checkout", cwd=clone)
    return clone


def outputs(repo: Path) -> dict[str, bytes]:
    return {p.relative_to(repo).as_posix(): p.read_bytes() for p in (repo / "models").rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "paths", [{"checkpoints": "data/raw"}, {"augmented": "data/raw"}, {"data_docs": "data/raw/docs"}]
)
def test_an_output_naming_the_images_stops_repro_before_any_stage(project: Path, paths: dict[str, str]) -> None:
    # Before the guard, `paths.checkpoints: data/raw` and `dvc repro` deleted every image.
    images = snapshot(project / "data" / "raw")
    set_params(project, paths=paths)
    result = sh("dvc", "repro", "-f", cwd=project, check=False)
    assert result.returncode != 0 and snapshot(project / "data" / "raw") == images
    key = next(iter(paths))
    if "defined as both a dependency and an output" not in result.stderr:  # DVC's own refusal (augmented)
        assert ran(result) == ["check"]
        assert f"error: params.yaml: paths.{key}: {paths[key]} overlaps paths.raw" in result.stderr
    assert imgclf("train", cwd=project).returncode == 2  # and run by hand: exit 2, nothing touched
    assert snapshot(project / "data" / "raw") == images


def test_a_params_typo_keeps_the_last_good_model(project: Path) -> None:
    # Before the check stage, DVC deleted models/ and then train failed on the typo.
    before = outputs(project)
    assert {"models/model.keras", "models/classes.json"} <= before.keys()
    set_params(project, train={"epochs": 0})
    result = sh("dvc", "repro", cwd=project, check=False)
    assert result.returncode != 0 and ran(result) == ["check"]
    assert "train.epochs: must be between 1 and 1000" in result.stderr
    assert outputs(project) == before


def test_a_checked_out_model_finds_the_run_that_logged_it(
    project: Path, trained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # models/run.json is no DVC output (a run id belongs to one store): a model that
    # `dvc checkout` brings back finds its run in the store by the md5 tagged on it.
    before = outputs(project)
    shutil.rmtree(project / "models")
    sh("dvc", "checkout", cwd=project)
    assert outputs(project) == before and "models/run.json" not in before
    assert "Data and pipelines are up to date." in sh("dvc", "status", cwd=project).stdout
    alone = imgclf("evaluate", cwd=project)  # the clone's own store: no run logged this model
    assert alone.returncode == 1 and alone.stderr.count("\n") == 1, alone.stderr
    assert "models/model.keras: no MLflow run in sqlite:///" in alone.stderr and "dvc repro -f train" in alone.stderr
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trained / 'mlruns' / 'mlflow.db'}")
    found = imgclf("evaluate", cwd=project)  # the store the model was trained into
    assert found.returncode == 0, found.stderr
    logged = json.loads((trained / "models" / "run.json").read_text(encoding="utf-8"))
    pointer = json.loads((project / "models" / "run.json").read_text(encoding="utf-8"))
    assert pointer["run_id"] == logged["run_id"] and pointer["model_uri"] == logged["model_uri"]


def test_check_refuses_an_output_folder_of_the_users(project: Path) -> None:
    # DVC deletes an output folder before its stage runs, whatever is in it.
    (project / "notes").mkdir()
    (project / "notes" / "todo.txt").write_text("mine", encoding="utf-8")
    set_params(project, paths={"plots": "notes"})
    result = imgclf("check", cwd=project)
    assert result.returncode == 1
    assert result.stderr.startswith("error: paths.plots: ") and "imgclf did not write it" in result.stderr
    assert (project / "notes" / "todo.txt").read_text(encoding="utf-8") == "mine"


def test_stages_never_remove_a_folder_they_did_not_write(tmp_path: Path) -> None:
    # The guard cannot know every folder of the user's; the marker is the last line.
    params = make_project(tmp_path, ("cat", "dog"), per_class=12, paths={"data_docs": "docs", "augmented": "mine"})
    for folder in ("docs", "mine"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(StageInputError, match=r"^paths.data_docs: .* imgclf did not write it"):
        validate.run(params)
    shutil.rmtree(tmp_path / "docs")
    validate.run(params)
    assert (tmp_path / "docs" / "index.html").is_file()
    split.run(params)
    for mode in ("online", "offline"):
        moded = params.model_copy(update={"augment": params.augment.model_copy(update={"mode": mode})})
        with pytest.raises(StageInputError, match=r"^paths.augmented: .* imgclf did not write it"):
            augment.run(moded)
    assert (tmp_path / "mine" / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert (tmp_path / "docs" / "keep.txt").exists() is False  # validate's own folder was rebuilt


def test_split_refuses_a_report_written_for_another_manifest(tmp_path: Path) -> None:
    params = make_project(tmp_path, ("cat", "dog"), per_class=12)
    validate.run(params)
    manifest = params.path("manifest")
    # Another manifest under the old "success" report: one image fewer.
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(StageInputError, match=r"was not written for data/manifest\.csv"):
        split.run(params)
    validate.run(params)
    assert split.run(params).rows


def test_check_writes_what_main_commits(tmp_path: Path) -> None:
    # Constant content: a passing check must never rerun the stages after it.
    written = check.run(load_params(copy_project(tmp_path) / "params.yaml"))
    assert written.read_bytes() == (REPO / "reports" / "params_check.json").read_bytes()
