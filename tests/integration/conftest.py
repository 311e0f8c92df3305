from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest

from imgclf.params import Params
from pipeline import make_project, run_pipeline


@pytest.fixture(autouse=True)
def local_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each project's own sqlite store, whatever the developer's shell points MLflow at."""
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
