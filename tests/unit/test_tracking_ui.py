"""What the MLflow UI shows, set from tracking and the registry: the experiment's kind, the
saved runs view, the runs' names, no stray Default experiment, the champion in the models
list. Real sqlite stores in tmp_path (bench/ui_check.py looks at the pages themselves)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.entities import ViewType

from imgclf import tracking
from imgclf.params import Params, load_params
from imgclf.registry.registry import CHALLENGER, CHAMPION, Registry


@pytest.mark.parametrize(
    ("arch", "backbone", "size", "commit", "dirty", "expected"),
    [
        ("small_cnn", "MobileNetV2", 28, "1a2b3c4d5e6f" * 3 + "abcd", "false", "small-cnn-28px-1a2b3c4"),
        (
            "seed_cnn",
            "MobileNetV2",
            32,
            "0123456789abcdef0123456789abcdef01234567",
            "true",
            "seed-cnn-32px-0123456-dirty",
        ),
        (
            "transfer",
            "EfficientNetB0",
            224,
            "fedcba9876543210fedcba9876543210fedcba98",
            "false",
            "efficientnetb0-224px-fedcba9",
        ),
        ("small_cnn", "MobileNetV2", 28, "unknown", "unknown", "small-cnn-28px-nocommit"),
    ],
)
def test_run_name_says_model_size_and_commit(
    arch: str, backbone: str, size: int, commit: str, dirty: str, expected: str
) -> None:
    assert tracking.run_name(arch=arch, backbone=backbone, size=size, commit=commit, dirty=dirty) == expected


def test_view_columns_lead_with_the_test_metrics_then_the_params_that_differ() -> None:
    runs = [
        {"train.epochs": "10", "train.seed": "1", "augment.preset": "light", "max_pixels": "9"},
        {"train.epochs": "2", "train.seed": "1", "augment.preset": "strong"},  # max_pixels: not logged yet
    ]
    differing = tracking.differing_params(runs)
    assert differing == ["augment.preset", "train.epochs"]
    assert tracking.differing_params([]) == []
    columns = tracking.view_columns(differing)
    assert columns[:5] == [f"metrics.`test_{m}`" for m in ("accuracy", "precision", "recall", "f1", "roc_auc")]
    assert columns.count("params.`train.epochs`") == 1  # a key param, shown once
    assert columns[-1] == "params.`augment.preset`"
    state = tracking.view_state(tracking.view_envelope(columns, 5))
    assert state == {"selectedColumns": columns}


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new store's database, made once: creating its tables takes 3-15 s, copying it none."""
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()  # creates the tables and Default
    return db


@pytest.fixture
def new_store(empty_db: Path) -> Callable[[Path], str]:
    """A new store at ``folder/mlflow.db`` (a copy of ``empty_db``); returns its URI."""

    def make(folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(empty_db, folder / "mlflow.db")
        return f"sqlite:///{folder / 'mlflow.db'}"

    return make


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_store: Callable[[Path], str]) -> Params:
    """A project in tmp_path with default params, its local store new."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({}), encoding="utf-8")
    params = load_params(tmp_path / "params.yaml")
    new_store(tracking.store(params))
    return params


def test_a_new_store_has_imgclf_in_the_model_training_view_and_no_default(project: Params) -> None:
    params = project
    assert tracking.local_experiment_id(params) is None  # tables, but no imgclf yet
    experiment_id = tracking.use_experiment(params)
    assert tracking.local_experiment_id(params) == experiment_id  # what `imgclf ui` links to
    client = mlflow.MlflowClient()
    experiment = client.get_experiment(experiment_id)
    assert experiment.tags[tracking.KIND_TAG] == "custom_model_development"
    columns = tracking.view_state(experiment.tags[tracking.VIEW_TAG])["selectedColumns"]
    assert "metrics.`test_f1`" in columns
    shown = client.search_experiments()  # what the UI's list shows: the active ones
    assert [e.name for e in shown] == [params.tracking.experiment]
    assert client.get_experiment("0").lifecycle_stage == "deleted"  # soft: restorable
    # The store does not make a new Default when it is opened again (as `imgclf ui` does).
    assert len(mlflow.MlflowClient(tracking.tracking_uri(params)).search_experiments(view_type=ViewType.ALL)) == 2


def test_an_old_store_gets_the_kind_but_a_default_with_runs_stays(project: Params) -> None:
    params = project
    tracking.connect(params)
    client = mlflow.MlflowClient()
    # A store from before: imgclf's experiment without the tags, and someone's run in Default.
    old_id = client.create_experiment(params.tracking.experiment)
    client.create_run("0")
    assert tracking.use_experiment(params) == old_id
    assert client.get_experiment(old_id).tags[tracking.KIND_TAG] == "custom_model_development"
    assert client.get_experiment("0").lifecycle_stage == "active"


def test_refresh_view_lists_the_params_two_runs_differ_in(project: Params) -> None:
    params = project
    experiment_id = tracking.use_experiment(params)
    for epochs in ("10", "2"):
        with mlflow.start_run():
            mlflow.log_params({"train.seed": epochs, "augment.preset": "light", f"only.{epochs}": "x"})
    tracking.refresh_view(experiment_id)
    tag = mlflow.MlflowClient().get_experiment(experiment_id).tags[tracking.VIEW_TAG]
    assert json.loads(tag)["name"] == tracking.VIEW_NAME
    columns = tracking.view_state(tag)["selectedColumns"]
    assert "params.`train.seed`" in columns
    assert "params.`augment.preset`" not in columns  # the same in both


def test_the_champion_is_named_in_the_models_list_tags(tmp_path: Path, new_store: Callable[[Path], str]) -> None:
    """The UI's models list shows the newest version's alias and hides the rest behind "+1":
    the registered model's `champion` tag (its Tags column) names the champion."""
    client = mlflow.MlflowClient(new_store(tmp_path))
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source=(tmp_path / "model").as_uri())
    reg = Registry(client, "m")
    reg.record_gate("1", {}, promote=True, reason="first")
    reg.record_gate("2", {}, promote=False, reason="weaker")
    model = client.get_registered_model("m")
    assert {a: str(v) for a, v in model.aliases.items()} == {CHAMPION: "1", CHALLENGER: "2"}
    assert model.tags[CHAMPION] == "version 1"
    assert next(iter(model.tags)) == CHAMPION  # the one tag the list's narrow Tags column shows
    reg.promote("2", "by hand")
    assert client.get_registered_model("m").tags[CHAMPION] == "version 2"
    reg.rollback("back")
    assert client.get_registered_model("m").tags[CHAMPION] == "version 1"
