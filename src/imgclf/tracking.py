"""MLflow: where the store is, which experiment, and the run a stage logs to or resumes.

The default store is ``sqlite:///<absolute paths.mlruns>/mlflow.db`` with artifacts in
``<paths.mlruns>/artifacts``, both absolute, so runs from any working directory
(``dvc exp run`` in a temporary copy included) land in the repo's one store.
``MLFLOW_TRACKING_URI`` overrides it, e.g. for a shared tracking server.

What the MLflow UI (3.x) shows is set here too: the experiment's kind (model training, not
GenAI), a saved view of the runs list with the test metrics and the params that differ, the
runs' names, and no empty "Default" experiment beside ours.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from imgclf import telemetry
from imgclf.atomic import write_json
from imgclf.errors import StageInputError, TrackingUnavailable
from imgclf.evaluation import HEADLINE
from imgclf.nested import leaves
from imgclf.params import Params
from imgclf.provenance import file_md5

if TYPE_CHECKING:
    from mlflow.entities import Run

log = logging.getLogger(__name__)

# The UI's experiment kind: "custom_model_development" is its model-training view (runs,
# metrics, models); an experiment without the tag can open on the GenAI view (traces).
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
# The UI's global switch between its GenAI and machine-learning pages: in MLflow 3.17 it
# decides the view and, without it in the URL, defaults to GenAI (kept per browser).
WORKFLOW = "workflowType=machine_learning"
# The headline test metrics evaluate logs: the runs list's first columns.
HEADLINE_METRICS = tuple(f"test_{name}" for name in HEADLINE)
# Params worth a column even before two runs differ in them.
KEY_PARAMS = ("model.arch", "train.image_size", "train.epochs", "train.learning_rate")
# A saved view of the runs list: the UI reads it from the experiment tag
# "mlflow.sharedViewState.<key>" (its "Saved views" menu, or ?viewStateShareKey=<key>).
VIEW_KEY, VIEW_NAME = "imgclf-test-metrics", "imgclf: test metrics"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
MAX_DIFFERING = 12  # params that differ between runs, shown after the key ones


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
            if found.tags.get(KIND_TAG) is None:  # a store from before imgclf set it
                _dress(client, str(found.experiment_id), local)
            return str(found.experiment_id)
        # A local store keeps artifacts beside the database; a server decides for itself.
        location = (store(params) / "artifacts").as_uri() if local else None
        try:
            experiment_id = str(client.create_experiment(name, artifact_location=location))
        except MlflowException as exc:  # another process created it since we looked
            found = client.get_experiment_by_name(name)
            if found is None:
                raise exc from None
            return str(found.experiment_id)
        _dress(client, experiment_id, local)
        return experiment_id


def _dress(client: Any, experiment_id: str, local: bool) -> None:
    """What the UI reads: the experiment's kind, the runs view; and no empty Default beside it."""
    client.set_experiment_tag(experiment_id, KIND_TAG, KIND)
    client.set_experiment_tag(experiment_id, VIEW_TAG, view_envelope(view_columns([]), _now_ms()))
    if local:  # a server's Default is its users' business
        retire_default(client, keep=experiment_id)


def retire_default(client: Any, keep: str) -> bool:
    """Soft-delete MLflow's experiment 0 ("Default", made by every new store) if it has no run.

    Soft: a deleted experiment stays in the store (restorable), and the store does not make
    a new Default at its next start. Returns whether it was deleted.
    """
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    default = "0"
    if keep == default:
        return False
    try:
        experiment = client.get_experiment(default)
    except MlflowException:  # none, or not readable: nothing to tidy
        return False
    if experiment.lifecycle_stage != "active":
        return False
    if client.search_runs([default], run_view_type=ViewType.ALL, max_results=1):
        return False  # someone's runs: theirs to keep
    client.delete_experiment(default)
    return True


def run_name(*, arch: str, backbone: str, size: int, commit: str, dirty: str) -> str:
    """A run's name in the UI: what was trained, on what code.

    ``small-cnn-28px-1a2b3c4`` for the demo; ``mobilenetv2-224px-1a2b3c4`` for a transfer
    model; ``-dirty`` when the tree had uncommitted changes (provenance's ``git_dirty``).
    """
    model = backbone.lower() if arch == "transfer" else arch.replace("_", "-")
    code = commit[:7] if re.fullmatch(r"[0-9a-f]{7,40}", commit) else "nocommit"
    return f"{model}-{size}px-{code}" + ("-dirty" if dirty == "true" else "")


def differing_params(runs: Sequence[Mapping[str, str]]) -> list[str]:
    """The param keys every run has, with a value not the same in all.

    A key some run lacks is left out: the run being trained has not yet logged what its
    model adds at the end (max_images, max_pixels), which every earlier run has.
    """
    if not runs:
        return []
    keys = sorted(set.intersection(*(set(run) for run in runs)))
    return [key for key in keys if len({run[key] for run in runs}) > 1]


def view_columns(differing: list[str]) -> list[str]:
    """The runs list's columns, in the UI's keys: headline metrics, key params, the others that differ."""
    extra = [key for key in differing if key not in KEY_PARAMS][:MAX_DIFFERING]
    return [f"metrics.`{m}`" for m in HEADLINE_METRICS] + [f"params.`{p}`" for p in (*KEY_PARAMS, *extra)]


def view_envelope(columns: list[str], at_ms: int) -> str:
    """The saved-view tag's value, in the shape the UI's "Saved views" reads (3.17):
    {name, createdAt, updatedAt (ms), state}, state being the view's JSON."""
    state = json.dumps({"selectedColumns": columns})
    return json.dumps({"name": VIEW_NAME, "createdAt": at_ms, "updatedAt": at_ms, "state": state})


def view_state(envelope: str | None) -> dict[str, Any]:
    """The view a saved-view tag holds ({} for none or one not in imgclf's shape)."""
    try:
        state = json.loads(json.loads(envelope or "")["state"])
    except (ValueError, KeyError, TypeError):
        return {}
    return state if isinstance(state, dict) else {}


def refresh_view(experiment_id: str) -> None:
    """Point the saved runs view at the params that now differ between the experiment's runs.

    Called by train once its run logged its params; the active tracking URI is the store's.
    """
    import mlflow

    client = mlflow.MlflowClient()
    runs = client.search_runs([experiment_id], max_results=200)  # the newest: enough to compare
    columns = view_columns(differing_params([run.data.params for run in runs]))
    if view_state(client.get_experiment(experiment_id).tags.get(VIEW_TAG)).get("selectedColumns") != columns:
        client.set_experiment_tag(experiment_id, VIEW_TAG, view_envelope(columns, _now_ms()))


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


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
    """The run's page in the MLflow UI (``ui_url``), on its model-training view."""
    return f"{ui_url(params)}/#/experiments/{experiment_id}/runs/{run_id}?{WORKFLOW}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def local_experiment_id(params: Params) -> str | None:
    """The experiment's id in the sqlite store MLflow is pointed at, read without importing
    MLflow (so `imgclf ui` prints its link at once); None before the first training, or
    for a tracking server (its ids are not read here)."""
    import sqlite3
    from contextlib import closing

    db = sqlite_file(tracking_uri(params))
    if db is None or not db.exists():
        return None
    query = "SELECT experiment_id FROM experiments WHERE name = ? AND lifecycle_stage = 'active'"
    try:
        with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as connection:
            row = connection.execute(query, (params.tracking.experiment,)).fetchone()
    except sqlite3.Error:  # a store MLflow has not made its tables in yet
        return None
    return None if row is None else str(row[0])


def runs_link(base: str, experiment_id: str) -> str:
    """The experiment's runs list in the UI at ``base``, with the saved view's columns."""
    return f"{base}/#/experiments/{experiment_id}/runs?{WORKFLOW}&viewStateShareKey={VIEW_KEY}"


# Tags on train's run: the md5 (DVC's, of the file's bytes) of the model file it saved, and
# the logged model's URI; later stages find the run by the model they are given.
MODEL_MD5_TAG, MODEL_URI_TAG = "model_md5", "model_uri"


def save_run(params: Params, run: Run, model_uri: str) -> None:
    """Record, for evaluate and register, the run that logged paths.model: tags on the run
    (the active one) and paths.run, a pointer that spares them a search.

    paths.run is not a DVC output: a run id belongs to one store, so a fresh clone's
    `dvc repro` would change dvc.lock with every new store. The tags travel with the run.
    """
    import mlflow

    md5 = file_md5(params.path("model"))
    mlflow.set_tags({MODEL_MD5_TAG: md5, MODEL_URI_TAG: model_uri})
    write_json(params.path("run"), _pointer(params, run.info.run_id, run.info.experiment_id, model_uri, md5))


def _pointer(params: Params, run_id: str, experiment_id: str, model_uri: str, md5: str) -> dict[str, str]:
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "tracking_uri": tracking_uri(params),
        "model_uri": model_uri,
        "model_md5": md5,
    }


def saved_run(params: Params) -> dict[str, str]:
    """The run that logged the model now in paths.model: paths.run when it names that model
    in this store, else the newest run of the experiment tagged with the model's md5 (a
    model `dvc checkout` or `dvc exp apply` restored, a pointer from another store or
    lost), which paths.run then names.

    Raises:
        StageInputError: no model, or no run in this store logged it.
    """
    model = params.path("model")
    if not model.is_file():
        raise StageInputError(f"{params.paths.model}: no trained model; run `imgclf train` first")
    md5, uri = file_md5(model), tracking_uri(params)
    try:
        saved = json.loads(params.path("run").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    if isinstance(saved, dict) and saved.get("model_md5") == md5 and saved.get("tracking_uri") == uri:
        return {str(k): str(v) for k, v in saved.items()}
    found = _run_of_model(params, md5)
    if found is None:
        raise StageInputError(
            f"{params.paths.model}: no MLflow run in {uri} logged this model (md5 {md5}); "
            "retrain it with `dvc repro -f train`"
        )
    write_json(params.path("run"), found)
    return found


def _run_of_model(params: Params, md5: str) -> dict[str, str] | None:
    """The newest run of the experiment tagged with ``md5``, as paths.run records it."""
    connect(params)
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.{MODEL_MD5_TAG} = '{md5}'",  # a hex digest: nothing to quote
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs or MODEL_URI_TAG not in runs[0].data.tags:
        return None
    run = runs[0]
    return _pointer(params, run.info.run_id, run.info.experiment_id, run.data.tags[MODEL_URI_TAG], md5)


@contextmanager
def resume_run(params: Params, run_id: str) -> Iterator[str]:
    """Reopen ``run_id``, the run saved_run found (the one that logged paths.model); yields its id."""
    use_experiment(params)
    import mlflow

    with mlflow.start_run(run_id=run_id):
        yield str(run_id)
