"""What the MLflow store holds about a registered version: the registered model (versions,
aliases, tags) and the version's run (experiment, tags, params, datasets).

A local sqlite store is read directly, as ``imgclf models`` reads it (imgclf.registry.listing):
importing MLflow costs 3-8 s, where these reads take milliseconds, and ``imgclf lineage``
answers in a few seconds. Any other store (a tracking server) is asked through MLflow.
tests/integration/test_lineage.py checks that both answer the same.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from imgclf import tracking
from imgclf.registry import listing

CONTEXT_TAG = "mlflow.data.context"  # a dataset input's role: training, validation, test
# The columns read below, per table: a schema without one of them is left to MLflow.
COLUMNS = {
    "runs": {"run_uuid", "experiment_id", "status", "artifact_uri", "lifecycle_stage"},
    "experiments": {"experiment_id", "name"},
    "tags": {"run_uuid", "key", "value"},
    "params": {"run_uuid", "key", "value"},
    "datasets": {"dataset_uuid", "name", "digest", "dataset_source", "dataset_profile"},
    "inputs": {"input_uuid", "source_type", "source_id", "destination_type", "destination_id"},
    "input_tags": {"input_uuid", "name", "value"},
}


@dataclass(frozen=True)
class Dataset:
    """A dataset logged as the run's input (imgclf.training.lineage): its digest is over the
    images' content hashes."""

    context: str
    name: str
    digest: str
    rows: int | None
    source: str


@dataclass(frozen=True)
class Run:
    run_id: str
    experiment_id: str
    experiment: str  # its name
    status: str  # FINISHED, RUNNING, FAILED, KILLED
    artifact_uri: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    datasets: list[Dataset] = field(default_factory=list)


def registered_model(uri: str, name: str) -> listing.Snapshot:
    """The registered model ``name`` in the store ``uri`` (``exists`` False when there is none)."""
    found = listing.read(uri, name)
    if found is not None:
        return found
    local = tracking.sqlite_file(uri)
    if local is not None and not local.exists():  # nothing trained yet; MLflow would create the file
        return listing.Snapshot(exists=False)
    return _registered(uri, name)


def _registered(uri: str, name: str) -> listing.Snapshot:
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return listing.Snapshot(exists=False)
        raise
    versions = [  # no storage location: MLflow's ModelVersion does not say it (lineage does not need it)
        listing.Version(str(v.version), int(v.creation_timestamp or 0), v.run_id, None, dict(v.tags))
        for v in client.search_model_versions(f"name='{name}'", max_results=10_000)
    ]
    versions.sort(key=lambda v: int(v.version), reverse=True)
    aliases = {alias: str(version) for alias, version in model.aliases.items()}
    return listing.Snapshot(exists=True, versions=versions, aliases=aliases, tags=dict(model.tags))


def run(uri: str, run_id: str) -> Run | None:
    """The run ``run_id`` in the store ``uri``; None when the store no longer has it."""
    try:
        with listing.readonly(uri, COLUMNS) as db:
            if db is not None:
                return _read(db, run_id)
    except sqlite3.Error:  # locked past the timeout: MLflow waits longer, or says what is wrong
        pass
    return _fetch(uri, run_id)


def _read(db: sqlite3.Connection, run_id: str) -> Run | None:
    found = db.execute(
        "SELECT r.experiment_id, e.name, r.status, r.artifact_uri FROM runs r "
        "JOIN experiments e ON e.experiment_id = r.experiment_id "
        "WHERE r.run_uuid = ? AND r.lifecycle_stage = 'active'",
        (run_id,),
    ).fetchone()
    if found is None:
        return None
    experiment_id, experiment, status, artifact_uri = found

    def pairs(table: str) -> dict[str, str]:
        return dict(db.execute(f"SELECT key, value FROM {table} WHERE run_uuid = ?", (run_id,)).fetchall())

    rows = db.execute(
        "SELECT d.name, d.digest, d.dataset_source, d.dataset_profile, t.value FROM inputs i "
        "JOIN datasets d ON d.dataset_uuid = i.source_id "
        "LEFT JOIN input_tags t ON t.input_uuid = i.input_uuid AND t.name = ? "
        "WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' AND i.destination_id = ?",
        (CONTEXT_TAG, run_id),
    ).fetchall()
    datasets = [_dataset(context, name, digest, source, profile) for name, digest, source, profile, context in rows]
    return Run(
        run_id, str(experiment_id), experiment, status, artifact_uri, pairs("tags"), pairs("params"), _ordered(datasets)
    )


def _fetch(uri: str, run_id: str) -> Run | None:
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    try:
        found = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if found.info.lifecycle_stage != "active":
        return None
    datasets = [
        _dataset(
            next((t.value for t in item.tags if t.key == CONTEXT_TAG), None),
            item.dataset.name,
            item.dataset.digest,
            item.dataset.source,
            item.dataset.profile,
        )
        for item in found.inputs.dataset_inputs
    ]
    experiment = client.get_experiment(found.info.experiment_id).name
    return Run(
        run_id,
        str(found.info.experiment_id),
        experiment,
        found.info.status,
        found.info.artifact_uri,
        dict(found.data.tags),
        dict(found.data.params),
        _ordered(datasets),
    )


def _client(uri: str) -> Any:
    from imgclf import telemetry

    telemetry.quiet()
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _dataset(context: str | None, name: str, digest: str, source: str | None, profile: str | None) -> Dataset:
    try:
        rows = json.loads(profile or "{}").get("num_rows")
    except (ValueError, AttributeError):
        rows = None
    try:
        where = str(json.loads(source or "{}").get("uri", source))
    except (ValueError, AttributeError):
        where = source or ""
    return Dataset(context or "", name, digest, int(rows) if isinstance(rows, int) else None, where)


def _ordered(datasets: list[Dataset]) -> list[Dataset]:
    """training, validation, test, then any other context: the pipeline's order."""
    order = {"training": 0, "validation": 1, "test": 2}
    return sorted(datasets, key=lambda d: (order.get(d.context, 3), d.context, d.name))
