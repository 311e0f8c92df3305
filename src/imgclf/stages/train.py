"""train stage: fit the network on the training files, validate on the val split.

Reads ``paths.augment_list`` (train) and ``paths.split`` (val); writes the model,
its classes, the MLflow run id and the per-epoch history. A training killed at any
point and started again resumes from its last finished epoch (same params and
data only), in the same MLflow run. ``train.distribute`` picks the TensorFlow
distribution strategy (see imgclf.training.distribution); in a multi-worker cluster only the
chief writes these outputs and logs to MLflow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from imgclf import provenance, tracking
from imgclf.atomic import write_json
from imgclf.data.datasets import Examples, split_examples
from imgclf.errors import StageInputError
from imgclf.params import Params
from imgclf.serving.pyfunc import log_model
from imgclf.tables import read_csv, write_csv
from imgclf.training import autoconf, lineage, phases, trainset
from imgclf.training import checkpoints as checkpoints_core

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run_id: str  # "" on a non-chief worker, which logs nothing
    classes: list[str]
    epochs_run: int
    history: list[dict[str, str]]
    strategy: str  # the TF distribution strategy: default, MirroredStrategy, MultiWorkerMirroredStrategy
    replicas: int  # num_replicas_in_sync: devices sharing each batch, over all workers
    choices: list[str]  # what train.image_size / augment.preset "auto" chose (autoconf)


def run(params: Params) -> TrainResult:
    listed, split_csv = params.path("augment_list"), params.path("split")
    if not listed.exists() or not split_csv.exists():
        raise StageInputError("no training files: run `imgclf split` and `imgclf augment` first")
    # From here on every setting is a number: the fingerprint, MLflow and classes.json see what ran.
    resolved = autoconf.resolve_from_manifest(params)
    params, choices = resolved.params, resolved.choices  # imgclf train prints the choices
    cfg = params.train
    train_rows = read_csv(listed)
    classes = sorted({r["label"] for r in read_csv(split_csv)})
    train = Examples([params.root / r["file"] for r in train_rows], [classes.index(r["label"]) for r in train_rows])
    val = split_examples(split_csv, params.path("raw"), "val", classes)
    if not train.files or not val.files:
        raise StageInputError("the train or val split is empty: add images or change split.val")
    trainset.require_files(params.root, train, val)  # before TensorFlow, which would fail with a traceback
    import mlflow

    from imgclf.training import distribution

    cluster = distribution.tf_config() if cfg.distribute == "multi_worker" else {}
    # Before any TensorFlow op (importing is fine): a cluster can only be joined before TF's runtime starts.
    strategy = distribution.make_strategy(cfg.distribute)
    name, replicas = distribution.strategy_name(strategy), int(strategy.num_replicas_in_sync)
    log.info("training with %s on %d replica(s)", name, replicas)
    fingerprint = checkpoints_core.training_fingerprint(params, listed, split_csv, params.path("manifest"))

    if not distribution.is_chief(cluster):
        # TF's pattern for the other workers: the same steps (every step all-reduces with
        # the chief), their files in a temporary folder, nothing logged.
        folder = distribution.worker_folder(cluster, fingerprint)
        checkpoints = checkpoints_core.Checkpoints(folder, fingerprint, key="the worker's folder")
        model = phases.fit(params, strategy, train, val, len(classes), checkpoints, track=False)
        history = checkpoints.history_rows()
        model.save(checkpoints.folder / "model.keras")  # as the chief does: saving may need every worker
        checkpoints.clear()
        return TrainResult("", classes, len(history), history, strategy=name, replicas=replicas, choices=choices)

    checkpoints = checkpoints_core.Checkpoints(params.path("checkpoints"), fingerprint)
    tracking.use_experiment(params)
    with mlflow.start_run(run_id=checkpoints.run_id) as run:
        if checkpoints.run_id is None:  # a new training, not a resumed one
            checkpoints.run_id = run.info.run_id
            lineage.log_inputs(params, train_rows, split_csv)
            # What ran, beside what was asked (train.distribute): visible in the UI's params.
            mlflow.log_params({"strategy": name, "replicas": replicas})
            tracking.refresh_view(run.info.experiment_id)  # the runs list's columns: what now differs
        model = phases.fit(params, strategy, train, val, len(classes), checkpoints, track=True)
        history = checkpoints.history_rows()
        model_uri = _save_outputs(params, model, classes, history)
        tracking.save_run(params, run, model_uri)
    checkpoints.clear()
    return TrainResult(
        run.info.run_id, classes, len(history), history, strategy=name, replicas=replicas, choices=choices
    )


def _save_outputs(params: Params, model: Any, classes: list[str], history: list[dict[str, str]]) -> str:
    """The model file (atomically), its classes, the history CSV and plot, and the logged
    pyfunc model; returns the logged model's URI (what register registers)."""
    from imgclf.evaluation.reporting import history_plot

    path = params.path("model")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.stem}.tmp.keras")
    model.save(staging)
    provenance.normalize_archive(staging)  # its md5 in dvc.lock: the same weights, the same file
    staging.replace(path)
    write_json(params.path("classes"), {"classes": classes, "image_size": params.train.size})
    write_csv(params.path("train_history"), history, checkpoints_core.HISTORY_COLUMNS)
    import mlflow

    mlflow.log_figure(history_plot(history), "plots/train_history.png")
    mlflow.log_artifact(str(params.path("classes")))
    uri = log_model(path, params.path("classes"), params.validation.max_pixels)
    log.info("model saved to %s and logged as %s; %s", path, uri, json.dumps({"classes": classes}))
    return uri
