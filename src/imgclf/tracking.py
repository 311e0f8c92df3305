"""MLflow: where the store is, which experiment, and the run a stage logs to or resumes.

The default store is ``sqlite:///<absolute paths.mlruns>/mlflow.db`` with artifacts in
``<paths.mlruns>/artifacts``, both absolute, so runs from any working directory
(``dvc exp run`` in a temporary copy included) land in the repo's one store.
``MLFLOW_TRACKING_URI`` overrides it, e.g. for a shared tracking server.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from imgclf import telemetry
from imgclf.atomic import write_json
from imgclf.errors import StageInputError, TrackingUnavailable
from imgclf.nested import leaves
from imgclf.params import Params

if TYPE_CHECKING:
    from mlflow.entities import Run

log = logging.getLogger(__name__)


def repo_root(params: Params) -> Path:
    """The project folder; for a DVC experiment running in <repo>/.dvc/tmp/exps/..., the repo's."""
    root = params.root.resolve()
    parts = root.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


def store(params: Params) -> Path:
    return repo_root(params) / params.paths.mlruns


def tracking_uri(params: Params) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store(params) / 'mlflow.db'}"


def connect(params: Params) -> str:
    """Telemetry off, then point MLflow at the project's store; returns its URI."""
    telemetry.quiet()
    import mlflow

    uri = tracking_uri(params)
    mlflow.set_tracking_uri(uri)
    return uri


def use_experiment(params: Params) -> str:
    """Point MLflow at the store and make the experiment active (creating it if needed).

    Returns its id. Two processes may create it at once; the loser of that race reads the
    winner's. Without this, runs land in MLflow's "Default" experiment, whose artifact
    root is relative to the working directory.
    """
    import mlflow

    experiment_id = _get_or_create_experiment(params)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _get_or_create_experiment(params: Params) -> str:
    uri = connect(params)
    import mlflow
    from mlflow.exceptions import MlflowException

    local = uri.startswith("sqlite:///")
    # Processes opening a brand-new sqlite store at once race to create its tables: serialise.
    if local:
        store(params).mkdir(parents=True, exist_ok=True)
    with FileLock(store(params) / ".lock") if local else nullcontext():
        client = mlflow.MlflowClient()
        name = params.tracking.experiment
        try:  # the stage's first request to the store
            found = client.get_experiment_by_name(name)
        except MlflowException as exc:
            if not str(exc).startswith("API request to"):  # MLflow's words for no HTTP answer
                raise
            raise TrackingUnavailable(f"the tracking server {uri} did not answer ({_no_answer(str(exc))})") from None
        if found is not None:
            return str(found.experiment_id)
        # A local store keeps artifacts beside the database; a server decides for itself.
        location = (store(params) / "artifacts").as_uri() if local else None
        try:
            return str(client.create_experiment(name, artifact_location=location))
        except MlflowException as exc:  # another process created it since we looked
            found = client.get_experiment_by_name(name)
            if found is None:
                raise exc from None
            return str(found.experiment_id)


def end_abandoned_run(run_id: str, uri: str) -> None:
    """Mark a run that a killed training left RUNNING as KILLED, in the store ``uri`` it is in.

    Called when a training starts that will not resume it (its inputs changed). A run
    already ended, or gone from its store, is left as it is.

    Raises:
        TrackingUnavailable: the store did not answer; the run's record is kept, so the
            next try closes it.
    """
    telemetry.quiet()
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=uri)
    try:
        status = client.get_run(run_id).info.status
        if status == "RUNNING":
            client.set_tag(run_id, "ended_by", "a later training with other inputs: this one was killed")
            client.set_terminated(run_id, status="KILLED")
    except MlflowException as exc:
        if str(exc).startswith("API request to"):
            raise TrackingUnavailable(
                f"the tracking server {uri} did not answer ({_no_answer(str(exc))}) "
                f"while closing run {run_id}, left RUNNING by a killed training"
            ) from None
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        log.warning("run %s, left by a killed training, is no longer in %s", run_id, uri)


def _no_answer(message: str) -> str:
    """MLflow's long message for a request that got no usable answer, in a few words."""
    status = re.search(r"failed with error code (\d+)", message)
    if status:
        return f"HTTP {status.group(1)}"
    return "timed out" if "timeout" in message else "no connection"


def flatten(tree: Mapping[str, Any]) -> dict[str, str]:
    """{"train": {"epochs": 3}} -> {"train.epochs": "3"}: params.yaml as MLflow params."""
    return {
        key: json.dumps(value) if isinstance(value, list | None) else str(value) for key, value in leaves(tree, ".")
    }


def ui_url(params: Params) -> str:
    """The MLflow UI: a server's own, or the one `make ui` starts for the local store."""
    uri = tracking_uri(params)
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


def run_link(params: Params, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI (``ui_url``)."""
    return f"{ui_url(params)}/#/experiments/{experiment_id}/runs/{run_id}"


def save_run(params: Params, run: Run, model_uri: str) -> None:
    """paths.run: the run later stages add to, and the logged model register registers."""
    write_json(
        params.path("run"),
        {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "tracking_uri": tracking_uri(params),
            "model_uri": model_uri,
        },
    )


def saved_run(params: Params) -> dict[str, str]:
    """What train recorded in paths.run."""
    try:
        saved = json.loads(params.path("run").read_text(encoding="utf-8"))
        if not isinstance(saved, dict) or "run_id" not in saved:
            raise ValueError
    except (OSError, ValueError):
        raise StageInputError(f"{params.paths.run}: no training run recorded; run `imgclf train` first") from None
    return {str(k): str(v) for k, v in saved.items()}


@contextmanager
def resume_run(params: Params) -> Iterator[str]:
    """Reopen the run that train recorded in paths.run; yields its id."""
    run_id = saved_run(params)["run_id"]
    use_experiment(params)
    import mlflow

    with mlflow.start_run(run_id=run_id):
        yield str(run_id)
