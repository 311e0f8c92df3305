from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest

from faults import Launcher, launcher
from imgclf.params import Params
from pipeline import make_project, run_pipeline


@pytest.fixture(autouse=True)
def local_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each project's own sqlite store, whatever the developer's shell points MLflow at.
    mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI (for child processes): a module
    fixture's stages, set up before this, left it pointing at their store, and deleting it
    with monkeypatch alone put it back after every test. Clearing MLflow's URI first unsets it."""
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Params:
    """A cat/dog project run through every stage once (2 epochs), shared by the tests that read it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        params = make_project(tmp_path_factory.mktemp("binary"), ("cat", "dog"))
        run_pipeline(params)
    return params


@pytest.fixture(scope="session")  # session, like binary: it starts first and imports while binary trains
def launched() -> Iterator[Launcher]:
    """The fault launcher (tests/faults.py): imgclf commands in processes forked from a warmed
    parent, each killed at a chosen write to MLflow or run to the end."""
    with launcher() as started:
        yield started
