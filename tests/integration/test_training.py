"""augment -> train -> evaluate on tiny generated folders: real TensorFlow, real MLflow (sqlite in tmp_path)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from images import learnable_folder
from imgclf import tracking
from imgclf.params import Params, load_params
from imgclf.stages import augment, evaluate, split, train, validate
from pipeline import make_project, run_pipeline

pytestmark = pytest.mark.slow


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as src:
        return list(csv.DictReader(src))


def test_binary_outputs_and_metrics(binary: Params) -> None:
    metrics = json.loads(binary.path("metrics").read_text(encoding="utf-8"))
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "test_images"} <= metrics.keys()
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("accuracy", "precision", "recall", "f1", "roc_auc"))
    assert json.loads(binary.path("classes").read_text(encoding="utf-8")) == {
        "classes": ["cat", "dog"],
        "image_size": 16,
    }
    history = read_rows(binary.path("train_history"))
    assert [r["epoch"] for r in history] == ["0", "1"]
    assert list(history[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    predictions = read_rows(binary.path("predictions"))
    assert len(predictions) == metrics["test_images"]
    assert list(predictions[0]) == ["path", "true", "predicted", "p_cat", "p_dog"]
    assert all(abs(float(r["p_cat"]) + float(r["p_dog"]) - 1) < 1e-5 for r in predictions)
    assert len(read_rows(binary.path("confusion_matrix"))) == metrics["test_images"]
    for plot in ("confusion_matrix", "roc", "precision_recall", "worst_errors", "label_issues"):
        assert (binary.path("plots") / f"{plot}.png").stat().st_size > 1000
    suspects = read_rows(binary.path("label_issues"))
    assert binary.path("label_issues").read_text(encoding="utf-8").splitlines()[0] == "path,label,suggested,score"
    card = binary.path("model_card").read_text(encoding="utf-8")  # written by register
    assert f"- suspected label errors: {len(suspects)} (`reports/label_issues.csv`" in card
    assert "## Confusion matrix (test)" in card and "| f1 |" in card and "## Registry decision" in card
    assert "resized inside the model to 16x16" in card and "- augmentation: online, preset photo: flip True" in card
    run_id = json.loads(binary.path("run").read_text(encoding="utf-8"))["run_id"]
    assert "http://127.0.0.1:5000/#/experiments/" in card and f"/runs/{run_id}?{tracking.WORKFLOW})" in card
    assert not binary.path("checkpoints").exists()  # removed once training succeeded


def test_the_run_holds_params_metrics_datasets_model_and_reports(binary: Params) -> None:
    saved = json.loads(binary.path("run").read_text(encoding="utf-8"))
    mlflow.set_tracking_uri(saved["tracking_uri"])
    assert saved["tracking_uri"] == f"sqlite:///{binary.root / 'mlruns' / 'mlflow.db'}"
    client = mlflow.MlflowClient()
    run = client.get_run(saved["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2" and run.data.params["split.test"] == "0.2"
    # augment.preset: auto, resolved before logging: the generated images are in colour, so photos
    # (the photo preset resamples no geometry: zoom 0, not the silhouette preset's 0.1).
    assert run.data.params["augment.preset"] == "photo" and run.data.params["augment.zoom"] == "0.0"
    assert run.data.params["train.image_size"] == "16"  # set in the project's params.yaml: it wins
    assert run.data.tags["data_raw_md5"] == "untracked" and len(run.data.tags["data_split_md5"]) == 32
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1]
    assert run.data.metrics["test_f1"] == json.loads(binary.path("metrics").read_text(encoding="utf-8"))["f1"]
    # The test set's size under one prefix, beside test_f1 (it was test_test_images).
    assert "test_test_images" not in run.data.metrics and run.data.metrics["test_images"] > 0
    inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "test"} and all(len(d) == 32 for d in inputs.values())
    assert len(run.outputs.model_outputs) == 1  # the logged model
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/metrics.json", "evaluation/predictions.csv", "evaluation/plots"} <= artifacts
    assert "evaluation/label_issues.csv" in artifacts and "label_suspects" in run.data.metrics
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation/plots")}
    assert "evaluation/plots/label_issues.png" in plots
    registered = {a.path for a in client.list_artifacts(run.info.run_id, "registry")}
    assert registered == {"registry/model_card.md", "registry/promotion.json"}
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == (binary.root / "mlruns" / "artifacts").as_uri()


def test_multiclass_reports_per_class_macro_and_weighted(tmp_path: Path) -> None:
    params = make_project(tmp_path, ("bird", "cat", "dog"))
    run_pipeline(params)
    metrics = json.loads(params.path("metrics").read_text(encoding="utf-8"))
    assert set(metrics["per_class"]) == {"bird", "cat", "dog"}
    assert set(metrics["macro"]) == set(metrics["weighted"]) == {"precision", "recall", "f1"}
    assert metrics["f1"] == metrics["macro"]["f1"] and "roc_auc" not in metrics
    assert list(read_rows(params.path("predictions"))[0])[3:] == ["p_bird", "p_cat", "p_dog"]


def test_offline_augmentation_is_deterministic_and_touches_train_only(tmp_path: Path) -> None:
    params = make_project(tmp_path, ("cat", "dog"), augment={"mode": "offline", "variants": 2, "rotation": 0.1})
    validate.run(params)
    split.run(params)
    first = augment.run(params)
    written = {p.relative_to(tmp_path): p.read_bytes() for p in params.path("augmented").rglob("*.png")}
    again = augment.run(params)
    assert first == again
    assert {p.relative_to(tmp_path): p.read_bytes() for p in params.path("augmented").rglob("*.png")} == written
    train_sources = {r["path"] for r in read_rows(params.path("split")) if r["split"] == "train"}
    assert {f.source for f in first.files} == train_sources
    assert len(first.files) == 3 * len(train_sources) == len(written)
    assert sum(f.variant == 0 for f in first.files) == len(train_sources)


def test_train_needs_its_inputs(write_params: Callable[..., Path]) -> None:
    params = load_params(write_params())
    with pytest.raises(Exception, match="run `imgclf split` and `imgclf augment` first"):
        train.run(params)


def test_transfer_trains_the_head_then_fine_tunes(tmp_path: Path) -> None:
    params = make_project(
        tmp_path,
        ("cat", "dog"),
        model={"arch": "transfer", "backbone": "MobileNetV2", "weights": None, "fine_tune_layers": 10},
        train={"epochs": 1, "fine_tune_epochs": 1, "image_size": 32, "lr_schedule": "plateau"},
    )
    run_pipeline(params)
    history = read_rows(params.path("train_history"))
    assert [r["epoch"] for r in history] == ["0", "1"]  # one head epoch, one fine-tuning epoch
    assert float(history[1]["lr"]) < float(history[0]["lr"])  # fine-tuning runs at the lower rate
    assert 0 <= json.loads(params.path("metrics").read_text(encoding="utf-8"))["f1"] <= 1


def test_an_unknown_positive_class_is_a_params_error(binary: Params, tmp_path: Path) -> None:
    import shutil

    from imgclf.errors import ParamsError

    copy = tmp_path / "project"
    shutil.copytree(binary.root, copy, ignore=shutil.ignore_patterns("mlruns"))
    params = load_params(copy / "params.yaml").model_copy(
        update={"evaluate": binary.evaluate.model_copy(update={"positive_class": "cow"})}
    )
    with pytest.raises(ParamsError, match=r"evaluate.positive_class: 'cow' is not one of the classes \['cat', 'dog'\]"):
        evaluate.run(params)


def test_listed_images_that_are_gone_stop_train_before_tensorflow_reads(tmp_path: Path) -> None:
    import yaml

    from imgclf.errors import StageInputError

    params = make_project(tmp_path, ("cat", "dog"), per_class=10)
    for stage in (validate, split, augment):
        stage.run(params)  # type: ignore[attr-defined]
    (tmp_path / "data" / "moved").mkdir()  # paths.raw changed, split not rerun
    settings = yaml.safe_load((tmp_path / "params.yaml").read_text(encoding="utf-8"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**settings, "paths": {"raw": "data/moved"}}))
    with pytest.raises(StageInputError, match=r"\d+ of the \d+ images .* are missing \(data/moved/.*imgclf split"):
        train.run(load_params(tmp_path / "params.yaml"))
    assert not (tmp_path / "models" / "checkpoints").exists()  # nothing started


def test_flipped_labels_lead_the_label_issue_ranking(tmp_path: Path) -> None:
    """5% of a generated 2-class set moved to the other class folder: the ranking (its
    rows in order, most suspect first) holds at least 60% of them in its top 10% of the
    usable images. A cheap model: TINY's 2 epochs on 16-px images of two colour casts."""
    raw = tmp_path / "data" / "raw"
    learnable_folder(raw, ("cat", "dog"), 100)
    flipped = []
    for i in range(0, 100, 10):  # 10 of 200: 5%
        for label, other in (("cat", "dog"), ("dog", "cat")):
            if (i // 10) % 2 == (label == "dog"):
                target = raw / other / f"flipped_{label}_{i:03d}.png"
                (raw / label / f"{label}_{i:03d}.png").rename(target)
                flipped.append(target.relative_to(raw).as_posix())
    params = make_project(tmp_path, (), evaluate={"label_issue_folds": 5})
    for stage in (validate, split, augment, train, evaluate):
        stage.run(params)  # type: ignore[attr-defined]
    ranked = [row["path"] for row in read_rows(params.path("label_issues"))]
    top = set(ranked[: len(read_rows(params.path("split"))) // 10])
    found = len(top & set(flipped))
    print(f"flipped labels: {found} of {len(flipped)} in the top 10% ({len(ranked)} flagged)")
    assert found >= 0.6 * len(flipped)
    assert {row["suggested"] for row in read_rows(params.path("label_issues")) if row["path"] in top} <= {"cat", "dog"}
