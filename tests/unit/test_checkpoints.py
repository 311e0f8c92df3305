"""The checkpoint folder: never someone else's folder removed, backups verified before use,
a fingerprint over every input of the training."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imgclf import owned
from imgclf.errors import StageInputError
from imgclf.params import Params, load_params
from imgclf.training.checkpoints import Checkpoints, training_fingerprint


def tiny_model() -> Any:
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.parametrize("planted", [False, True])
def test_a_folder_imgclf_did_not_make_is_never_removed(tmp_path: Path, planted: bool) -> None:
    photos = tmp_path / "data" / "raw"  # paths.checkpoints: data/raw
    (photos / "cat").mkdir(parents=True)
    (photos / "cat" / "001.png").write_bytes(b"png")
    if planted:  # a state file does not make it imgclf's: only the marker does
        (photos / "state.json").write_text(json.dumps({"fingerprint": "old"}), encoding="utf-8")
    with pytest.raises(StageInputError, match=r"paths.checkpoints: .* imgclf did not write it"):
        Checkpoints(photos, "new")
    assert (photos / "cat" / "001.png").read_bytes() == b"png"
    assert not (photos / owned.MARKER).exists()


def test_a_checkpoint_for_other_inputs_is_removed_and_a_finished_one_cleared(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    first = Checkpoints(folder, "one")
    (folder / "main-e3.weights.h5").write_bytes(b"old backup")
    first.append_history({"epoch": 0, "loss": 1, "accuracy": 0.5, "val_loss": 1, "val_accuracy": 0.5, "lr": 0.1})
    again = Checkpoints(folder, "one")
    assert len(again.history_rows()) == 1  # the same training: kept
    other = Checkpoints(folder, "two")
    assert sorted(p.name for p in folder.iterdir()) == [owned.MARKER, "state.json"]
    assert other.history_rows() == []
    (folder / owned.MARKER).unlink()  # no longer imgclf's
    with pytest.raises(StageInputError):
        other.clear()
    assert folder.exists()


def test_backups_are_verified_before_use(tmp_path: Path) -> None:
    model = tiny_model()
    folder = tmp_path / "checkpoints"
    checkpoints = Checkpoints(folder, "fp")
    assert checkpoints.backup("main") is None
    checkpoints.save("main", model, epoch=3, done=False, last_epoch=2)
    checkpoints.save("main", model, epoch=4, done=False, last_epoch=3)
    found = checkpoints.backup("main")
    assert found is not None and (found.epoch, found.done, found.path.name) == (4, False, "main-e4.weights.h5")
    assert sorted(p.name for p in folder.glob("*.weights.h5")) == ["main-e4.weights.h5"]  # the older one went

    (folder / ".tmp-0123.weights.h5").write_bytes(b"a write a kill cut short")
    checkpoints = Checkpoints(folder, "fp")
    assert not list(folder.glob(".tmp-*"))
    found.path.write_bytes(found.path.read_bytes()[:100])  # torn
    assert checkpoints.backup("main") is None
    assert not (folder / "main.json").exists() and not found.path.exists()

    checkpoints.save("main", model, epoch=5, done=True, last_epoch=4)
    (folder / "main-final.weights.h5").unlink()  # a marker whose file is gone
    assert checkpoints.backup("main") is None


def test_a_half_written_history_row_is_dropped(tmp_path: Path) -> None:
    checkpoints = Checkpoints(tmp_path / "checkpoints", "fp")
    row = {"epoch": 0, "loss": 0.7, "accuracy": 0.5, "val_loss": 0.7, "val_accuracy": 0.5, "lr": 0.001}
    checkpoints.append_history(row)
    with (checkpoints.folder / "history.csv").open("a", encoding="utf-8") as out:
        out.write("1,0.69")  # killed mid-write
    assert [r["epoch"] for r in checkpoints.history_rows()] == ["0"]
    checkpoints.append_history({**row, "epoch": 1})
    assert [r["epoch"] for r in checkpoints.history_rows()] == ["0", "1"]


def test_the_fingerprint_covers_every_input_of_training(
    write_params: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = load_params(write_params())
    inputs = [tmp_path / name for name in ("augmented.csv", "split.csv", "manifest.csv")]
    for path in inputs:
        path.write_text("file,label\ncat/1.png,cat\n", encoding="utf-8")
    base = training_fingerprint(params, *inputs)

    def changed(section: str, **values: Any) -> Params:
        return params.model_copy(update={section: getattr(params, section).model_copy(update=values)})

    assert training_fingerprint(changed("paths", raw="data/elsewhere"), *inputs) != base
    assert training_fingerprint(changed("train", seed=7), *inputs) != base
    assert training_fingerprint(changed("evaluate", gallery_size=1), *inputs) == base  # after training
    for path in inputs:
        before = path.read_text(encoding="utf-8")
        path.write_text(before + "cat/2.png,cat\n", encoding="utf-8")
        assert training_fingerprint(params, *inputs) != base, path.name
        path.write_text(before, encoding="utf-8")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")  # a run id means nothing elsewhere
    assert training_fingerprint(params, *inputs) != base
