"""The registry's gate (decide) and the content hash that makes registration idempotent."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imgclf.registry.registry import TAG_MAX, Change, content_hash, decide, history_json
from models import tiny_model

FLOORS = {"f1": 0.85, "accuracy": 0.85}
GOOD = {"f1": 0.92, "accuracy": 0.93, "precision": 0.9, "recall": 0.94, "roc_auc": 0.97}


def test_all_floors_met_and_no_champion_promotes() -> None:
    gate = decide(GOOD, FLOORS, champion_f1=None, min_delta=0.005)
    assert gate.promote
    assert gate.reasons == [
        "accuracy 0.9300 meets the floor 0.85",
        "f1 0.9200 meets the floor 0.85",
        "no champion to beat",
    ]


@pytest.mark.parametrize(
    ("metric", "value"),
    [("f1", 0.8), ("accuracy", 0.84), ("recall", 0.5), ("roc_auc", 0.6)],
)
def test_one_floor_below_blocks_and_names_the_metric(metric: str, value: float) -> None:
    candidate = {**GOOD, metric: value}
    floors = {**FLOORS, metric: 0.85}
    gate = decide(candidate, floors, champion_f1=None, min_delta=0.005)
    assert not gate.promote
    assert f"{metric} {value:.4f} is below the floor 0.85" in gate.reasons
    # The other floors are still reported as met.
    assert sum("below the floor" in r for r in gate.reasons) == 1


def test_floor_exactly_met_passes() -> None:
    assert decide({"f1": 0.85, "accuracy": 0.85}, FLOORS, None, 0.005).promote


@pytest.mark.parametrize("candidate", [{**GOOD, "roc_auc": None}, {"f1": 0.92, "accuracy": 0.93}])
def test_floor_on_an_undefined_metric_blocks(candidate: dict[str, Any]) -> None:
    # roc_auc is None (one class in the test split) or absent altogether (more than two classes).
    gate = decide(candidate, {**FLOORS, "roc_auc": 0.8}, champion_f1=None, min_delta=0.005)
    assert not gate.promote
    assert "roc_auc is undefined on this test split (floor 0.8)" in gate.reasons


@pytest.mark.parametrize(
    ("f1", "champion_f1", "min_delta", "promote"),
    [
        (0.92, 0.90, 0.005, True),  # beats by 0.02
        (0.905, 0.90, 0.005, True),  # beats by min_delta exactly
        (0.903, 0.90, 0.005, False),  # higher, but by less than min_delta
        (0.90, 0.92, 0.005, False),  # worse
        (0.90, 0.90, 0.0, False),  # equal: strictly higher is required even with min_delta 0
        (0.9001, 0.90, 0.0, True),  # any improvement is enough with min_delta 0
    ],
)
def test_champion_must_be_beaten_by_min_delta(f1: float, champion_f1: float, min_delta: float, promote: bool) -> None:
    gate = decide({**GOOD, "f1": f1}, FLOORS, champion_f1=champion_f1, min_delta=min_delta)
    assert gate.promote is promote
    verdict = "beats the champion's" if promote else "does not beat the champion's"
    assert f"f1 {f1:.4f} {verdict} {champion_f1:.4f}" in gate.reasons[-1]


def test_champion_but_candidate_f1_missing_does_not_promote() -> None:
    gate = decide({"accuracy": 0.99}, {"accuracy": 0.85}, champion_f1=0.5, min_delta=0.0)
    assert not gate.promote
    assert "does not beat the champion's 0.5000" in gate.reasons[-1]


@pytest.mark.parametrize("champion_f1", [None, 0.5])
def test_champion_problem_blocks_and_is_a_reason(champion_f1: float | None) -> None:
    problem = "champion version 3 could not be scored (KeyError)"
    gate = decide(GOOD, FLOORS, champion_f1=champion_f1, min_delta=0.005, champion_problem=problem)
    assert not gate.promote
    assert problem in gate.reasons
    assert not any("beats" in r for r in gate.reasons)


def test_content_hash_ignores_the_save_date_but_not_the_weights(tmp_path: Path) -> None:
    model = tiny_model()
    first, second, changed = tmp_path / "a.keras", tmp_path / "b.keras", tmp_path / "c.keras"
    model.save(first)
    time.sleep(1.1)  # metadata.json records the save date to the second
    model.save(second)

    assert first.read_bytes() != second.read_bytes()
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        assert a.read("metadata.json") != b.read("metadata.json")
    assert content_hash(first) == content_hash(second)
    assert len(content_hash(first)) == 64

    kernel, bias = model.layers[-1].get_weights()
    kernel = kernel.copy()
    kernel[0, 0] += np.float32(0.5)
    model.layers[-1].set_weights([kernel, bias])
    model.save(changed)
    assert content_hash(changed) != content_hash(first)


def test_content_hash_is_the_same_for_the_same_model_built_in_another_process(tmp_path: Path) -> None:
    """Keras numbers shared config objects by id(), a memory address: rebuilt, the same
    network and weights get other numbers, and must still hash the same."""
    import keras

    def build() -> Any:
        keras.backend.clear_session()  # layer names restart (conv2d, not conv2d_1), as in a new process
        keras.utils.set_random_seed(0)
        inputs = keras.Input((None, None, 3), dtype="uint8")
        x = keras.layers.Resizing(8, 8)(inputs)
        x = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=1)])(x)
        x = keras.layers.Rescaling(1 / 255)(x)
        x = keras.layers.Conv2D(2, 3)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))

    first, second = tmp_path / "a.keras", tmp_path / "b.keras"
    kept = build()  # alive, so the second build cannot reuse its addresses
    kept.save(first)
    build().save(second)
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        assert a.read("config.json") != b.read("config.json")  # the ids differ...
        assert a.read("model.weights.h5") == b.read("model.weights.h5")
    assert content_hash(first) == content_hash(second)  # ...the hash does not


def test_a_change_reads_back_as_written() -> None:
    """The pending_change tag is all a killed process leaves: it must say everything."""
    change = Change(
        "rollback", "2", "3", {"2": {"champion_reason": "r"}, "3": {"rolled_back_at": "t"}}, {"champion": "2"},
        {"challenger": "2"}, keep=1,
    )  # fmt: skip
    assert Change.loads(change.dumps()) == change


def test_the_history_tag_keeps_the_newest_entries_within_the_tag_limit() -> None:
    entries = [{"version": str(i), "at": "2026-01-01T00:00:00+00:00", "reason": "x" * 200} for i in range(60)]
    kept = json.loads(history_json(entries))
    assert len(history_json(entries)) <= TAG_MAX and kept[-1]["version"] == "59"
    assert kept == entries[-len(kept) :]
    assert json.loads(history_json(entries[:3])) == entries[:3]
