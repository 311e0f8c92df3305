"""A registry step killed at any write to MLflow, then rerun, ends as if it had never been killed.

For `imgclf register` (a new model the gate promotes, an older challenger), then `imgclf
promote` of that challenger, then `imgclf rollback`: an uninterrupted run in a copy of
the store counts the writes; then, for every k, a copy is SIGKILLed just before its k-th
write (tests/faults.py), the command is run again, and the store must equal the
uninterrupted result: versions, aliases, gate and champion tags, champion history, the
training run's status and tags, and no pending change left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest

from faults import Launcher
from imgclf import tracking
from imgclf.params import Params, load_params
from imgclf.registry import registry
from stores import copy_trained

pytestmark = pytest.mark.slow

NAME = "catdog-cnn"
# Version tags whose values a rerun must reproduce; the timestamps only have to exist.
TAGS = ("content_hash", "gate_decision", "gate_reasons", "gate_champion_version", "gate_champion_f1",
        "champion_reason")  # fmt: skip
STAMPS = ("champion_since", "rolled_back_at")
REGISTER, PROMOTE, ROLLBACK = ["register"], ["promote", "1", "--reason", "crash test"], ["rollback"]


@dataclass(frozen=True)
class Baseline:
    folder: Path  # the project after the uninterrupted run
    writes: list[str]  # its writes to MLflow, in order: the kill points
    state: dict[str, Any]


def client_of(root: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")


def state(root: Path) -> dict[str, Any]:
    """What the registry holds (without timestamps), and the training run's status and tags."""
    client = client_of(root)
    models = registry.Registry(client, NAME)
    versions = {
        str(v.version): {k: v.tags.get(k) for k in TAGS} | {k: k in v.tags for k in STAMPS} for v in models.versions()
    }
    run = client.get_run(tracking.saved_run(load_params(root / "params.yaml"))["run_id"])
    return {
        "versions": versions,
        "aliases": models.aliases(),
        "history": [(e["version"], e["reason"]) for e in models.history()],
        "pending": models.pending(),
        "run": {k: v for k, v in run.data.tags.items() if k.startswith("registered_")} | {"status": run.info.status},
    }


def uninterrupted(launched: Launcher, source: Path, work: Path, args: list[str]) -> Baseline:
    folder = copy_trained(source, work / "baseline")
    [done] = launched.run([{"cwd": str(folder), "args": args, "log": str(work / "baseline.log")}])
    assert done.code == 0, (work / "baseline.log").read_text()
    assert any(w.startswith("RegistryStore.") for w in done.writes), done.writes
    return Baseline(folder, done.writes, state(folder))


def check_every_kill(launched: Launcher, source: Path, work: Path, args: list[str], baseline: Baseline) -> None:
    """Kill ``args`` at each write of the baseline, in a copy of ``source``, and rerun it:
    every rerun must end in the baseline's state."""
    assert baseline.state["pending"] is None
    cases = [copy_trained(source, work / f"kill{k}") for k in range(1, len(baseline.writes) + 1)]
    killed = launched.run(
        [{"cwd": str(c), "args": args, "log": f"{c}.log", "kill_at": k} for k, c in enumerate(cases, 1)]
    )
    assert [r.code for r in killed] == [-9] * len(cases)
    reruns = launched.run([{"cwd": str(c), "args": args, "log": f"{c}.rerun.log"} for c in cases])
    for k, (case, rerun) in enumerate(zip(cases, reruns, strict=True), 1):
        where = f"killed before write {k} of {len(cases)} ({baseline.writes[k - 1]})"
        assert rerun.code == 0, f"{where}: " + Path(f"{case}.rerun.log").read_text()
        assert state(case) == baseline.state, where


@pytest.fixture(scope="module")
def start(launched: Launcher, binary: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained project whose store holds only version 1: an older model the
    gate turned down (the challenger); no champion yet."""
    root = copy_trained(binary.root, tmp_path_factory.mktemp("crash") / "start")
    params = load_params(root / "params.yaml")
    # MLflow's registry store looks a models:/m-... source up in the current tracking store.
    tracking.connect(params)
    models = registry.Registry(client_of(root), NAME)
    models.client.delete_registered_model(NAME)
    models.ensure("")
    saved = tracking.saved_run(params)
    version = models.create(saved["model_uri"], saved["run_id"], {"content_hash": "an older model"}, "")
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    assert version is not None and str(version.version) == "1"
    reason = "gate: f1 is below the floor"
    tags = {"gate_decision": "challenger", "gate_reasons": reason, "gate_champion_version": "none"}
    models.record_gate("1", tags, promote=False, reason=reason)
    assert models.aliases() == {"challenger": "1"}
    return root


@pytest.fixture(scope="module")
def registered(launched: Launcher, start: Path, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    return uninterrupted(launched, start, tmp_path_factory.mktemp("register"), REGISTER)


@pytest.fixture(scope="module")
def promoted(launched: Launcher, registered: Baseline, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    return uninterrupted(launched, registered.folder, tmp_path_factory.mktemp("promote"), PROMOTE)


def test_register_killed_at_any_write_ends_as_an_uninterrupted_run(
    launched: Launcher, start: Path, registered: Baseline, tmp_path: Path
) -> None:
    # The gate promoted the new model (no champion to beat); version 1 stays challenger.
    assert registered.state["aliases"] == {"champion": "2", "challenger": "1"}
    assert registered.state["versions"]["2"]["gate_decision"] == "champion"
    assert [v for v, _ in registered.state["history"]] == ["2"]
    assert registered.state["run"]["registered_version"] == "2"
    check_every_kill(launched, start, tmp_path, REGISTER, registered)


def test_promote_killed_at_any_write_ends_as_an_uninterrupted_run(
    launched: Launcher, registered: Baseline, promoted: Baseline, tmp_path: Path
) -> None:
    assert promoted.state["aliases"] == {"champion": "1"}
    assert promoted.state["history"] == [registered.state["history"][0], ("1", "manual: crash test")]
    check_every_kill(launched, registered.folder, tmp_path, PROMOTE, promoted)


def test_rollback_killed_at_any_write_ends_as_an_uninterrupted_run(
    launched: Launcher, promoted: Baseline, tmp_path: Path
) -> None:
    rolled = uninterrupted(launched, promoted.folder, tmp_path / "uninterrupted", ROLLBACK)
    assert rolled.state["aliases"] == {"champion": "2"} and [v for v, _ in rolled.state["history"]] == ["2"]
    assert rolled.state["versions"]["1"]["rolled_back_at"]
    check_every_kill(launched, promoted.folder, tmp_path, ROLLBACK, rolled)
