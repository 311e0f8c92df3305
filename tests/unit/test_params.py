from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from imgclf.errors import ParamsError
from imgclf.params import Params, load_params
from runner import REPO, imgclf


def test_repo_params_file_is_valid_and_matches_the_defaults() -> None:
    # params.yaml documents every default; a drift between it and the models is a bug.
    assert load_params(REPO / "params.yaml").model_dump() == Params().model_dump()


def test_paths_resolve_against_the_params_folder(write_params: Callable[..., Path], tmp_path: Path) -> None:
    params = load_params(write_params(paths={"raw": "images"}))
    assert params.path("raw") == (tmp_path / "images").resolve()
    assert params.path("manifest") == (tmp_path / "data" / "manifest.csv").resolve()


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"split": {"test": 0.7}}, "split.test: must be between 0 and 0.5"),
        ({"split": {"tset": 0.1}}, "split.tset: unknown key"),
        ({"splitt": {}}, "splitt: unknown key"),
        ({"validate": {"min_side": "big"}}, "validate.min_side: input should be a valid integer"),
        ({"validate": {"min_per_class": 0}}, "validate.min_per_class: must be at least 1"),
        ({"validate": {"classes": "cat"}}, "validate.classes: input should be a valid list"),
        ({"validate": {"min_side": 64, "max_side": 32}}, "validate.max_side: must be at least min_side"),
        ({"split": {"val": 0.45, "test": 0.45}}, "split.test: val + test must leave at least 20% for train"),
        ({"split": {"tolerance": 0}}, "split.tolerance: must be between 0 and 0.5"),
        (
            {"train": {"distribute": "tpu"}},
            "train.distribute: input should be 'none', 'mirrored' or 'multi_worker' (got 'tpu')",
        ),
        ({"train": {"distribute": None}}, "train.distribute: input should be 'none', 'mirrored' or 'multi_worker'"),
    ],
)
def test_bad_params_name_the_key(write_params: Callable[..., Path], sections: dict, message: str) -> None:
    path = write_params(**sections)
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


def test_malformed_yaml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("split: [\n", encoding="utf-8")
    with pytest.raises(ParamsError, match=r"not valid YAML \(line \d+\)"):
        load_params(tmp_path / "params.yaml")
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_params_are_frozen() -> None:
    with pytest.raises(Exception, match="frozen"):
        Params().split.seed = 3  # type: ignore[misc]


def test_cli_exits_2_with_one_line_and_no_traceback(write_params: Callable[..., Path], tmp_path: Path) -> None:
    write_params(split={"test": 0.7})
    result = imgclf("split", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: params.yaml: split.test: must be between 0 and 0.5"
    assert "Traceback" not in result.stderr + result.stdout


def test_register_defaults() -> None:
    register = Params().registry
    assert register.model_name == "catdog-cnn"
    assert register.min_metrics == {"f1": 0.85, "accuracy": 0.85}
    assert register.min_delta == 0.005


def test_register_section_is_read_from_the_register_key(write_params: Callable[..., Path]) -> None:
    register = {"model_name": "pets.v2", "min_metrics": {"roc_auc": 0.9, "macro_f1": 0.7}, "min_delta": 0}
    params = load_params(write_params(register=register))
    assert params.registry.model_name == "pets.v2"
    assert params.registry.min_metrics == {"roc_auc": 0.9, "macro_f1": 0.7}
    assert params.registry.min_delta == 0


@pytest.mark.parametrize(
    ("register", "message"),
    [
        ({"min_metrics": {"f2": 0.8}}, "register.min_metrics.f2: not a metric; use one of accuracy, f1,"),
        ({"min_metrics": {"f1": 1.5}}, "register.min_metrics.f1: must be between 0 and 1"),
        ({"min_metrics": {"accuracy": -0.1}}, "register.min_metrics.accuracy: must be between 0 and 1"),
        ({"model_name": "a b"}, "register.model_name: string should match pattern"),
        ({"model_name": ""}, "register.model_name: string should match pattern"),
        ({"min_delta": -0.1}, "register.min_delta: must be between 0 and 1"),
        ({"gate": {}}, "register.gate: unknown key"),
    ],
)
def test_bad_register_params_name_the_key(write_params: Callable[..., Path], register: dict, message: str) -> None:
    path = write_params(register=register)
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


def test_cli_exits_2_for_a_bad_register_floor(write_params: Callable[..., Path], tmp_path: Path) -> None:
    write_params(register={"min_metrics": {"f2": 0.8}})
    result = imgclf("split", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: params.yaml: register.min_metrics.f2: not a metric")
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("distribute", ["none", "mirrored", "multi_worker"])
def test_train_distribute_values(write_params: Callable[..., Path], distribute: str) -> None:
    assert load_params(write_params(train={"distribute": distribute})).train.distribute == distribute
    assert Params().train.distribute == "none"  # today's behaviour unless asked


def test_train_exits_2_for_an_unknown_strategy(write_params: Callable[..., Path], tmp_path: Path) -> None:
    write_params(train={"distribute": "tpu"})
    result = imgclf("train", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: params.yaml: train.distribute: input should be 'none', 'mirrored' or 'multi_worker' (got 'tpu')"
    )


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        # Each of these once deleted or read what was not imgclf's (issue 10, finding 1 and 7).
        ({"checkpoints": "data/raw"}, "paths.checkpoints: data/raw overlaps paths.raw"),
        ({"augmented": "data/raw/aug"}, "paths.augmented: data/raw/aug overlaps paths.raw"),
        ({"data_docs": "data"}, "paths.data_docs: data overlaps paths.raw"),
        ({"checkpoints": "/some/dir"}, "paths.checkpoints: /some/dir is outside the project"),
        ({"model": "../model.keras"}, "paths.model: ../model.keras is outside the project"),
        ({"plots": "."}, "paths.plots: . is outside the project"),
        ({"plots": "reports"}, "paths.plots: reports overlaps paths.validation_report"),
        ({"data_docs": ".git"}, "paths.data_docs: .git overlaps .git"),
        ({"metrics": "params.yaml"}, "paths.metrics: params.yaml overlaps params.yaml"),
        ({"raw": "/etc"}, "paths.raw: /etc is outside the project"),
        ({"raw": "."}, "paths.raw: . is the project folder itself"),
    ],
)
def test_paths_that_could_overwrite_others_are_refused(
    write_params: Callable[..., Path], paths: dict[str, str], message: str
) -> None:
    path = write_params(paths=paths)
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


def test_an_output_reaching_raw_through_a_symlink_is_refused(write_params: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "elsewhere").symlink_to(tmp_path / "data" / "raw")
    with pytest.raises(ParamsError, match=r"paths\.checkpoints: elsewhere overlaps paths\.raw"):
        load_params(write_params(paths={"checkpoints": "elsewhere"}))


def test_raw_outside_the_project_only_when_asked(write_params: Callable[..., Path], tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-photos"
    params = load_params(write_params(paths={"raw": str(outside), "raw_outside_project": True}))
    assert params.path("raw") == outside.resolve()


def test_raw_outside_the_project_exits_2_before_reading_it(write_params: Callable[..., Path], tmp_path: Path) -> None:
    write_params(paths={"raw": "/etc"})
    result = imgclf("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: params.yaml: paths.raw: /etc is outside the project")
    assert not (tmp_path / "data" / "manifest.csv").exists()
