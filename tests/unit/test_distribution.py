"""train.distribute: which process is the chief, TF_CONFIG parsing, and the strategies one process can build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imgclf.errors import StageInputError
from imgclf.training.distribution import is_chief, tf_config, worker_folder

TWO_WORKERS = {"worker": ["host1:2222", "host2:2222"]}
WITH_CHIEF = {"chief": ["host0:2222"], "worker": ["host1:2222", "host2:2222"]}


@pytest.mark.parametrize(
    ("config", "chief"),
    [
        ({}, True),  # no TF_CONFIG: a one-worker cluster
        ({"cluster": TWO_WORKERS}, True),  # no task: TF treats the process as the chief
        ({"cluster": TWO_WORKERS, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": TWO_WORKERS, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": WITH_CHIEF, "task": {"type": "chief", "index": 0}}, True),
        ({"cluster": WITH_CHIEF, "task": {"type": "worker", "index": 0}}, False),  # the chief task outranks it
        ({"cluster": WITH_CHIEF, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {**TWO_WORKERS, "evaluator": ["host3:2222"]}, "task": {"type": "evaluator", "index": 0}}, False),
        ({"cluster": TWO_WORKERS, "task": {"type": "worker", "index": "0"}}, True),  # an index given as a string
    ],
)
def test_the_chief_is_the_chief_task_or_else_worker_0(config: dict[str, Any], chief: bool) -> None:
    assert is_chief(config) is chief


def test_tf_config_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert tf_config() == {}
    monkeypatch.setenv("TF_CONFIG", "  ")
    assert tf_config() == {}
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}')
    assert tf_config()["task"] == {"type": "worker", "index": 1}


@pytest.mark.parametrize("value", ["{not json", '["worker"]', "3"])
def test_a_malformed_tf_config_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(StageInputError, match=r"^TF_CONFIG: not a JSON object"):
        tf_config()


def test_each_worker_and_training_get_a_temporary_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    one = {"cluster": TWO_WORKERS, "task": {"type": "worker", "index": 1}}
    folder = worker_folder(one, "ab" * 32)
    assert folder == tmp_path / f"imgclf-worker-1-{'ab' * 8}"
    assert worker_folder(one, "cd" * 32) != folder
    assert worker_folder({"cluster": TWO_WORKERS, "task": {"type": "worker", "index": 2}}, "ab" * 32) != folder
    assert worker_folder({"task": {"type": "../x", "index": 1}}, "ab" * 32).parent == tmp_path


def test_none_is_the_default_strategy_and_mirrored_mirrors_every_local_device() -> None:
    from imgclf.training.distribution import make_strategy, strategy_name

    default = make_strategy("none")
    assert (strategy_name(default), default.num_replicas_in_sync) == ("default", 1)
    mirrored = make_strategy("mirrored")
    # This process has one CPU device (the integration tests split it in two).
    assert (strategy_name(mirrored), mirrored.num_replicas_in_sync) == ("MirroredStrategy", 1)
