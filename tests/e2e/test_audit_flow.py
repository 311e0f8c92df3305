"""The audit as a Prefect flow: reproduce-champion against the session's real Prefect server,
on a copy of the project (and its MLflow store) that the training flow reproduced."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import mlflow
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from pipeline import Reproduced
from stores import copy_trained

pytestmark = pytest.mark.slow


def test_a_champion_whose_data_is_gone_fails_the_audit_with_its_reason_published(
    reproduced: Reproduced, prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    repo = copy_trained(reproduced.repo, tmp_path / "project")
    shutil.rmtree(repo / ".dvc" / "cache")  # the only copy of its data: the project has no remote
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("catdog-cnn", "champion")
    spec = importlib.util.spec_from_file_location("audit_flow", repo / "pipelines" / "audit_flow.py")
    assert spec is not None and spec.loader is not None
    flows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flows)

    state = flows.reproduce_champion(params_file=str(repo / "params.yaml"), return_state=True)

    expected = (
        f"catdog-cnn version {champion.version}: its data version {champion.tags['data_raw_md5']} is in "
        "neither DVC's cache nor a remote (none is configured)"
    )
    assert state.is_failed() and expected in str(state.message)
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    assert [(a.key, a.data) for a in artifacts if a.key] == [  # not Prefect's own result record
        ("reproduce-verdict", f"# champion: cannot be reproduced\n\n{expected}")
    ]
    assert "reproduce_verdict" not in client.get_model_version("catdog-cnn", champion.version).tags
