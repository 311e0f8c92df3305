"""TensorFlow distribution strategies for the train stage (``train.distribute``).

Every strategy here is synchronous data parallelism: each step splits one global
batch of ``train.batch_size`` across the replicas and sums their gradients, so the
steps per epoch, the learning-rate schedule and the updates are those of one device
(batch norm included: see network.build_model's sync_batch_norm). Results match one
device's statistically, not bit for bit: Keras 3 seeds random layers per model, so
every replica draws the same augmentation and dropout numbers for its slice.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgclf.errors import StageInputError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


def make_strategy(kind: str) -> tf.distribute.Strategy:
    """The strategy for ``train.distribute``.

    none: TensorFlow's default (one device, today's behaviour). mirrored: one process,
    one replica per local GPU, or per logical CPU device when there is no GPU.
    multi_worker: MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG`` (one
    worker with this machine's GPUs, or its first CPU, when it is unset).

    Call it before any other TensorFlow op: a multi-worker cluster can only be joined
    before TensorFlow's runtime starts.
    """
    import tensorflow as tf

    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        # GPUs: TF's own pick (NCCL all-reduce). NCCL has no CPU kernel; on CPU devices,
        # which share one memory, summing on one of them is the simplest reduction, and as
        # fast as TF 2.21's ring collectives (measured on 2 logical CPUs).
        ops = None if gpus else tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=ops)
    if kind == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _average_logs_across_workers()
        return strategy
    return tf.distribute.get_strategy()


def _average_logs_across_workers() -> None:
    """Let Keras 3 report a step's losses and metrics in a cluster of several workers.

    Keras 3.15 averages each replica's (scalar) logs with ``strategy.reduce("MEAN", v,
    axis=0)`` there, which fails on a scalar ("Invalid reduction dimension 0 for input
    with 0 dimensions"; keras-team/keras#20585). ``axis=None`` is the mean across
    replicas, what Keras does with one worker. Patched in Keras' trainer module: the
    function is private, so a Keras without it is left alone (and the two-worker test
    says whether it still needs this).
    """
    from keras.src.backend.tensorflow import trainer

    original = getattr(trainer, "reduce_per_replica", None)
    in_cluster = getattr(trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or in_cluster is None or getattr(original, "_imgclf_patched", False):
        return

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if in_cluster(strategy) and reduction in ("auto", "mean"):
            return trainer.tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica._imgclf_patched = True  # type: ignore[attr-defined]
    trainer.reduce_per_replica = reduce_per_replica


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Each worker of a cluster keeps its slice of every global batch.

    Said outright because TF's default first tries to split by input file, which a
    list of image paths cannot be, and warns. It works because every worker builds the
    same batches: the shuffle is seeded with train.seed. Each worker still decodes
    every image (once: they are cached).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def build_from_spec(model: keras.Model, dataset: tf.data.Dataset) -> None:
    """Let Keras 3 fit and evaluate ``model`` in a cluster of several workers.

    Before the first step, Keras 3.15 builds the metrics from a first batch that it
    averages across replicas with one ``strategy.reduce`` over the whole (images,
    labels) structure, which MultiWorkerMirroredStrategy cannot do once there are two
    workers ("Attempt to convert a value (PerReplica...)"; keras-team/keras#20585,
    tensorflow#72388). Only shapes and dtypes are needed: build from the dataset's
    element spec instead. Set on this model only.
    """
    spec = dataset.element_spec

    def build(iterator: Any = None, data_batch: Any = None) -> None:
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=spec)

    model._maybe_symbolic_build = build


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The name users know from TF's docs (MultiWorkerMirroredStrategy's class has another);
    "default" for TF's one-device strategy."""
    import tensorflow as tf

    for public in ("MultiWorkerMirroredStrategy", "MirroredStrategy"):
        if isinstance(strategy, getattr(tf.distribute, public)):
            return public
    name = type(strategy).__name__
    return "default" if name.startswith("_Default") else name


def tf_config() -> dict[str, Any]:
    """The parsed ``TF_CONFIG`` environment variable; {} when it is unset or empty.

    Raises:
        StageInputError: when it is not a JSON object (TF would fail later, less clearly).
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise StageInputError('TF_CONFIG: not a JSON object like {"cluster": {...}, "task": {...}}')
    return parsed


def is_chief(config: Mapping[str, Any]) -> bool:
    """Whether this process writes the outputs and logs to MLflow, by TF's rule.

    ``config`` is a parsed TF_CONFIG. The chief is the ``chief`` task, or worker 0
    when the cluster has no chief; without a task (no TF_CONFIG: a one-worker
    cluster) this process is the chief. Evaluators and other workers are not.
    """
    task = config.get("task") or {}
    kind = task.get("type")
    if kind is None:
        return True
    cluster = config.get("cluster") or {}
    return bool(kind == "chief" or (kind == "worker" and int(task.get("index", 0)) == 0 and "chief" not in cluster))


def worker_folder(config: Mapping[str, Any], fingerprint: str) -> Path:
    """Where a non-chief worker keeps its checkpoints and model: a temporary folder, named
    for the task and the training, so a worker restarted with its cluster resumes from
    its own backup, at the same epoch as the chief."""
    task = config.get("task") or {}
    kind = "".join(c for c in str(task.get("type", "worker")) if c.isalnum() or c == "_")
    return Path(tempfile.gettempdir()) / f"imgclf-{kind}-{int(task.get('index', 0))}-{fingerprint[:16]}"
