"""params.yaml, parsed once into frozen, typed sections with defaults and bounds.

Every path the pipeline reads or writes is in ``paths``; dvc.yaml reads the same
keys through ``${paths.*}`` templating, so each path is written exactly once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from imgclf.errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")


class _Section(BaseModel):
    # Frozen: a stage cannot quietly change a setting another stage will read.
    # extra="forbid": a typo in params.yaml is an error, not a silently ignored key.
    model_config = ConfigDict(frozen=True, extra="forbid")


class Paths(_Section):
    """Where each stage reads and writes, relative to the folder of params.yaml."""

    raw: str = "data/raw"  # the user's images, one folder per class; never written to
    manifest: str = "data/manifest.csv"  # one row per candidate file, with its status
    split: str = "data/split.csv"  # train/val/test assignment of every ok image
    validation_report: str = "reports/validation.json"  # counts + expectation results
    split_report: str = "reports/split.json"  # realised split fractions per class
    data_docs: str = "reports/data_docs"  # Great Expectations Data Docs (HTML)
    augmented: str = "data/augmented"  # originals and variants of the train split (offline mode)
    augment_list: str = "data/augmented.csv"  # the training files augment chose, in either mode
    model: str = "models/model.keras"  # takes raw uint8 RGB images of any size
    classes: str = "models/classes.json"  # class names in output order, and the input size
    run: str = "models/run.json"  # the MLflow run that train opened and later stages add to
    checkpoints: str = "models/checkpoints"  # per-epoch backups to resume a killed training
    train_history: str = "reports/train_history.csv"  # one row per epoch (DVC plots)
    metrics: str = "reports/metrics.json"  # test-split metrics (DVC metrics)
    predictions: str = "reports/predictions.csv"  # one row per test image
    label_issues: str = "reports/label_issues.csv"  # suspected label errors among all usable images, most suspect first
    confusion_matrix: str = "reports/confusion_matrix.csv"  # actual,predicted rows (DVC confusion plot)
    roc_curve: str = "reports/roc_curve.csv"  # ROC points (DVC plots)
    pr_curve: str = "reports/pr_curve.csv"  # precision-recall points (DVC plots)
    plots: str = "reports/plots"  # confusion matrix, ROC, precision-recall, worst errors (PNG)
    model_card: str = "reports/model_card.md"  # data, settings, metrics and the registry decision
    promotion: str = "reports/promotion.json"  # the gate's decision on the last registered model
    # Which model register put in the registry (name, content hash): the register stage's
    # DVC output, the same for the same model in any store (promotion.json names this store's run).
    registered: str = "models/registered.json"
    mlruns: str = "mlruns"  # the local MLflow store (sqlite + artifacts) unless MLFLOW_TRACKING_URI is set
    params_check: str = "reports/params_check.json"  # written by the check stage every other stage waits for
    # paths.raw may lie outside the project only when this says so (a mounted photo share):
    # a typo there would otherwise make validate read, and hash, any folder of the machine.
    raw_outside_project: bool = False

    def outputs(self) -> dict[str, str]:
        """Every path a stage writes (or may delete and rebuild), by key."""
        return {key: value for key, value in self.model_dump().items() if isinstance(value, str) and key != "raw"}


class Validate(_Section):
    """Which files count as usable images, and what the folder as a whole must satisfy."""

    # Expected class folders; None accepts whatever first-level folders exist.
    classes: list[str] | None = None
    min_side: int = Field(16, ge=1, le=4096)  # smaller images carry too little signal to learn from
    max_side: int = Field(20_000, ge=16)  # longer sides are scans or panoramas, not photos
    # Pillow's own decompression-bomb threshold (~ 89.5 Mpx, 268 MB as RGB); checked
    # from the header, before any pixel is decoded.
    max_pixels: int = Field(89_478_485, ge=256)
    min_per_class: int = Field(10, ge=1)  # fewer cannot fill train, val and test
    max_imbalance: float = Field(3.0, ge=1)  # largest class / smallest class
    max_bad_fraction: float = Field(0.1, ge=0, le=1)  # more excluded files means a broken export
    # Processes that decode images; 0 = one per core. Small folders run in-process.
    workers: int = Field(0, ge=0, le=64)
    # Images whose perceptual hashes (64 bits) differ in at most this many bits, directly,
    # mirrored or trimmed (data/looks.py), are near-duplicates: one group, one split, and a
    # label_conflict when under two classes. 4 groups 97-100% of re-encoded, resized,
    # mirrored and cropped (2-5%) copies with no false group in 2 000 photo-like
    # pictures, and keeps the demo's silhouettes, which pHash tells apart poorly, in small
    # groups (at 6 they chain into one of 522 images) (README "Near-duplicates",
    # bench/near_duplicates.py). null: copies of the same bytes only.
    near_duplicate_distance: int | None = Field(4, ge=0, le=16)
    # Paths (as in the manifest: relative to paths.raw) to exclude as excluded_by_user,
    # e.g. suspects from reports/label_issues.csv you checked: a list, or a file (relative
    # to the project) with one path per line, or a CSV with a `path` column. Opt-in; the
    # files stay where they are.
    exclude_paths: list[str] | str | None = None

    @model_validator(mode="after")
    def _sides_ordered(self) -> Validate:
        if self.max_side < self.min_side:
            raise ValueError("max_side: must be at least min_side")
        return self


class Split(_Section):
    """Fractions of each class held out; an image's split follows from its content hash."""

    val: float = Field(0.15, ge=0, le=0.5)
    test: float = Field(0.15, ge=0, le=0.5)
    # Salt mixed into the hash: changing it reshuffles every image, so change it never
    # once a test set has been reported on.
    seed: int = Field(0, ge=0)
    # Largest allowed gap between a class's realised and requested fraction, for
    # classes large enough for the gap to mean something (see split stage).
    tolerance: float = Field(0.05, gt=0, le=0.5)

    @model_validator(mode="after")
    def _leaves_train(self) -> Split:
        if self.val + self.test > 0.8:
            raise ValueError("test: val + test must leave at least 20% for train")
        return self


def _size_or_auto(value: Any) -> Any:
    """One message for both kinds of a bad size (a union would report one error per branch)."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 1024:
        raise ValueError(f"must be auto or a whole number of pixels from 16 to 1024, got {value!r}")
    return value


AUGMENT_RANGES = ("flip", "rotation", "zoom", "shift", "brightness", "contrast")


class Augment(_Section):
    """Random transforms of the train split; val and test images are never augmented."""

    # offline: write each train image and `variants` transformed copies to paths.augmented;
    # online: Keras preprocessing layers inside the model, fresh draws every epoch;
    # none: train on the originals.
    mode: Literal["offline", "online", "none"] = "online"
    variants: int = Field(2, ge=0, le=50)  # copies per train image in offline mode
    # Where a range below is null, the preset gives it (imgclf.training.autoconf.PRESETS): auto
    # picks "photo" for photo folders and "silhouette" for small grey images like the
    # demo's. A value set here always wins.
    preset: Literal["auto", "silhouette", "photo"] = "auto"
    flip: bool | None = None  # horizontal: a mirrored cat is still a cat
    rotation: float | None = Field(None, ge=0, le=0.5)  # fraction of a full turn, either way
    zoom: float | None = Field(None, ge=0, le=0.5)  # fraction of the size, in or out
    shift: float | None = Field(None, ge=0, le=0.5)  # fraction of the width/height, either way
    brightness: float | None = Field(None, ge=0, le=1)  # fraction of the value range, either way
    contrast: float | None = Field(None, ge=0, le=1)  # contrast factor drawn from [1 - c, 1 + c]
    seed: int = Field(0, ge=0)

    def ranges(self) -> dict[str, float | bool]:
        """The transforms' settings; only once imgclf.training.autoconf has filled in the preset."""
        values = {key: getattr(self, key) for key in AUGMENT_RANGES}
        if any(value is None for value in values.values()):
            raise RuntimeError("augment ranges used before imgclf.training.autoconf.resolve filled them in")
        return values


class Model(_Section):
    """Which network; resizing and rescaling are layers inside it whichever is chosen."""

    # seed_cnn: the seeds' Conv 32/64/128 + Dense 512 network, kept as a baseline;
    # small_cnn: our default, faster and stronger; transfer: a keras.applications backbone.
    arch: Literal["seed_cnn", "small_cnn", "transfer"] = "small_cnn"
    # small_cnn: filters of the first block, doubled per block; null: 32 for silhouettes
    # (the demo), 24 for photos, where 32 cost a third more time for no F1 on photogen's
    # catdog (imgclf.training.autoconf).
    filters: int | None = Field(None, ge=4, le=256)
    # small_cnn: conv blocks, each halving the resolution; null: as many as bring the
    # feature map down to 4 px or less (the demo's 28 px: 3; photos at 128 px with the
    # stem: 4, which took test F1 from 0.87 to 0.97 on photogen's catdog).
    blocks: int | None = Field(None, ge=1, le=6)
    # small_cnn: a stride-2 convolution before the blocks, so the first block works on a
    # quarter of the pixels; null: on from a 64-px input (imgclf.training.autoconf).
    stem: bool | None = None
    # small_cnn: depthwise-separable convolutions after the stem (after the first block
    # without one). Off: on photogen's catdog at 128 px with 4 blocks they cost 5 points of
    # F1 (0.973 -> 0.923) for 38% less CPU time.
    separable: bool = False
    dropout: float = Field(0.2, ge=0, lt=1)  # before the classifier head
    # keras.applications names, each with its own input scaling as layers (imgclf.training.network).
    backbone: Literal["MobileNetV2", "EfficientNetB0", "ResNet50", "VGG16", "InceptionV3"] = "MobileNetV2"
    # transfer: imagenet (Keras downloads the file once into ~/.keras/models/, or $KERAS_HOME;
    # offline, copy it there), a local .h5/.weights.h5 file, or null for random
    # initialisation (what the tests use). Opt-in: the default trains without a network.
    weights: Literal["imagenet"] | str | None = None
    fine_tune_layers: int = Field(20, ge=0)  # transfer: top backbone layers unfrozen in phase 2


class Train(_Section):
    """How the network is fitted."""

    @property
    def size(self) -> int:
        """``image_size`` as a number; only once imgclf.training.autoconf has resolved ``auto``."""
        if not isinstance(self.image_size, int):
            raise RuntimeError("train.image_size used before imgclf.training.autoconf.resolve chose it")
        return self.image_size

    # The model resizes every input to this square. auto: from the validated images
    # (imgclf.training.autoconf): small images keep their own size (the demo's 28; upscaling
    # gained nothing and cost 20-200% per epoch), photos get a photo size.
    image_size: Annotated[int | Literal["auto"], BeforeValidator(_size_or_auto)] = "auto"
    # The global batch: a distribution strategy splits it across its replicas, so the
    # steps, the learning-rate schedule and each update are those of one device.
    batch_size: int = Field(32, ge=1, le=4096)
    epochs: int = Field(10, ge=1, le=1000)  # an upper bound: early stopping may end sooner
    learning_rate: float = Field(1e-3, gt=0, le=1)
    # cosine: decays to 0 over all epochs, so the last epoch is a settled one (the demo's
    # validation accuracy swings mid-training); plateau: ReduceLROnPlateau on val_loss.
    lr_schedule: Literal["cosine", "plateau"] = "cosine"
    fine_tune_epochs: int = Field(5, ge=0, le=1000)  # transfer: phase-2 epochs
    fine_tune_learning_rate: float = Field(1e-5, gt=0, le=1)  # transfer: low, not to wreck the backbone
    early_stopping_patience: int = Field(4, ge=1)  # epochs without val_loss improving
    reduce_lr_patience: int = Field(2, ge=1)  # plateau: epochs without improvement before the rate drops
    reduce_lr_factor: float = Field(0.5, gt=0, lt=1)  # plateau
    class_weights: bool = True  # weight classes inversely to their frequency in train
    seed: int = Field(42, ge=0)  # weights, shuffling and augmentation draws
    # none: one device, TF's default. mirrored: every local GPU, or when there is none
    # every logical CPU device, in one process. multi_worker: MultiWorkerMirroredStrategy
    # over the cluster in TF_CONFIG; only the chief writes the outputs and logs to MLflow.
    distribute: Literal["none", "mirrored", "multi_worker"] = "none"


class Evaluate(_Section):
    """Scoring on the test split."""

    # Two classes: the class whose precision/recall/F1 are reported; null = the second
    # class in sorted order (e.g. dog for cat/dog).
    positive_class: str | None = None
    threshold: float = Field(0.5, gt=0, lt=1)  # two classes: P(positive) at or above it predicts positive
    gallery_size: int = Field(16, ge=0, le=100)  # worst misclassified test images shown, and top label suspects
    # Rank every usable image by how likely its label is wrong (evaluation.labelissues):
    # one more prediction pass, over all usable images, and a cross-validated logistic
    # regression on the network's features; about 2 s on the demo.
    label_issues: bool = True
    label_issue_folds: int = Field(5, ge=2, le=20)  # cross-validation folds: each image scored by a fit without it


# Metrics a floor can be set on: what evaluate reports for two classes or more.
GATE_METRICS = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc"}
    | {f"{avg}_{m}" for avg in ("macro", "weighted") for m in ("precision", "recall", "f1")}
)


class Register(_Section):
    """The model registry and the gate a new version must pass to become champion."""

    # Part of models:/<name>@champion URIs, hence the restricted characters.
    model_name: str = Field("catdog-cnn", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    # Floors on the test metrics (0-1). 0.85 is far above chance and below what the demo
    # reaches (0.97); set them to what your use case cannot do without. roc_auc exists for
    # two classes only: a floor on it blocks every multi-class model.
    min_metrics: dict[str, float] = Field(default_factory=lambda: {"f1": 0.85, "accuracy": 0.85})
    # How much higher the candidate's test F1 must be than the champion's, both scored
    # on the current test split; half a point keeps noise from churning the champion.
    min_delta: float = Field(0.005, ge=0, le=1)

    @model_validator(mode="after")
    def _known_metrics(self) -> Register:
        for name, floor in self.min_metrics.items():
            if name not in GATE_METRICS:
                raise ValueError(f"min_metrics.{name}: not a metric; use one of {', '.join(sorted(GATE_METRICS))}")
            if not 0 <= floor <= 1:
                raise ValueError(f"min_metrics.{name}: must be between 0 and 1")
        return self


class Tracking(_Section):
    """MLflow. The store is paths.mlruns unless MLFLOW_TRACKING_URI says otherwise."""

    experiment: str = "imgclf"


class Orchestrate(_Section):
    """The Prefect flow (`imgclf run`, `imgclf schedule`)."""

    # Transient faults only (a tracking server that does not answer, a crash without a
    # diagnosis); a stage that names its failure (bad data, bad params) is never retried.
    retries: int = Field(2, ge=0, le=10)
    retry_delay: float = Field(10.0, ge=0, le=3600)  # seconds before the first retry; doubled for each next one
    # `imgclf schedule`'s default: nightly at 03:00 (server time), when a retraining
    # competes with nobody; `interval` (seconds) replaces the cron when set.
    cron: str = Field("0 3 * * *", pattern=r"^\S+( \S+){4}$")
    interval: int | None = Field(None, ge=10)


class Params(_Section):
    """The whole params.yaml; ``root`` is the folder paths are relative to."""

    paths: Paths = Paths()
    # "validate" is a (deprecated) BaseModel method name, hence the alias.
    validation: Validate = Field(Validate(), alias="validate")
    split: Split = Split()
    augment: Augment = Augment()
    model: Model = Model()
    train: Train = Train()
    evaluate: Evaluate = Evaluate()
    # "register" is ABCMeta's method name on every model class, hence the alias.
    registry: Register = Field(Register(), alias="register")
    tracking: Tracking = Tracking()
    orchestrate: Orchestrate = Orchestrate()
    root: Path = Field(Path(), exclude=True)

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True)

    def path(self, key: str) -> Path:
        """Absolute path of ``paths.<key>``."""
        relative: str = getattr(self.paths, key)
        return (self.root / relative).resolve()

    @model_validator(mode="after")
    def _paths_guarded(self) -> Params:
        guard_paths(self.paths, self.root.resolve())
        return self

    @model_validator(mode="after")
    def _backbone_fits(self) -> Params:
        # Here, not in Model or Train: the limit joins two sections. An auto size is
        # checked once chosen, when the backbone is built.
        if self.model.arch == "transfer" and isinstance(self.train.image_size, int):
            from imgclf.training.network import input_size_problem  # network imports this module

            problem = input_size_problem(self.model.backbone, self.train.image_size)
            if problem:
                raise ValueError(f"train.image_size: {problem}")
        return self


# Project files no output may replace, hold or lie inside.
_PROTECTED = (".git", ".dvc", "params.yaml", "dvc.yaml", "dvc.lock")


def guard_paths(paths: Paths, root: Path) -> None:
    """Reject a paths section whose outputs could overwrite or delete what is not theirs.

    Stages delete their outputs before rebuilding them (and so does DVC), so an output
    that names the images, another output, or a folder outside the project would wipe
    it. The check is on the written path (inside the project) and on the resolved one
    (no output reaches ``raw`` through a symlink).

    Raises:
        ValueError: ``paths.<key>: ...``, which load_params turns into a one-line ParamsError.
    """
    raw = root / paths.raw
    if _lexical(raw) == root:
        raise ValueError(f"paths.raw: {paths.raw} is the project folder itself; give the images a folder of their own")
    if not paths.raw_outside_project and not _inside(_lexical(raw), root):
        raise ValueError(
            f"paths.raw: {paths.raw} is outside the project {root}; "
            "move the images in, or set paths.raw_outside_project: true"
        )
    taken = {"raw": raw.resolve()} | {name: root / name for name in _PROTECTED}
    for key, value in paths.outputs().items():
        target = root / value
        if _lexical(target) == root or not _inside(_lexical(target), root):
            raise ValueError(f"paths.{key}: {value} is outside the project {root}; outputs must lie inside it")
        for other, taken_path in taken.items():
            if _overlap(target.resolve(), taken_path.resolve()):
                what = f"paths.{other}" if other in Paths.model_fields else other
                raise ValueError(f"paths.{key}: {value} overlaps {what}; each output needs a path of its own")
        taken[key] = target


def _lexical(path: Path) -> Path:
    # Normalised without following symlinks: a data/raw that links to another disk is
    # still "in the project" as the user wrote it.
    return Path(os.path.normpath(path))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _overlap(a: Path, b: Path) -> bool:
    """Equal, or one holds the other."""
    return a == b or a in b.parents or b in a.parents


def load_params(file: Path = DEFAULT_PARAMS) -> Params:
    """Read and check params.yaml.

    Raises:
        ParamsError: with one line naming the file, the key and the problem.
    """
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{file}: not found") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ParamsError(f"{file}: not valid YAML{line}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{file}: must be a mapping of sections")
    if "root" in raw:
        raise ParamsError(f"{file}: root: unknown key")
    try:
        return Params.model_validate({**raw, "root": file.resolve().parent})
    except ValidationError as exc:
        raise ParamsError(f"{file}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """The first error as ``key.path: problem``, plus a count of the others."""
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"])
    problem = _problem(first)
    if first["type"] == "value_error" and ": " in problem:
        # Cross-field checks name their own key, e.g. "test: val + test must ...".
        field, problem = problem.split(": ", 1)
        key = f"{key}.{field}" if key else field
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{key}: {problem}{more}"


def _problem(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    bounds = _bounds(error["loc"])
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"} and bounds:
        return bounds
    return f"{error['msg'][0].lower()}{error['msg'][1:]} (got {error.get('input')!r})"


def _bounds(loc: tuple[Any, ...]) -> str | None:
    """ "must be between a and b" for a bounded field, from its declared constraints."""
    model: type[BaseModel] = Params
    field = None
    for part in loc:
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            return None
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
    if field is None:
        return None
    limits = {
        kind: getattr(meta, kind) for meta in field.metadata for kind in ("ge", "gt", "le", "lt") if hasattr(meta, kind)
    }
    low = limits.get("ge", limits.get("gt"))
    high = limits.get("le", limits.get("lt"))
    if low is not None and high is not None:
        return f"must be between {low} and {high}"
    if low is not None:
        return f"must be at least {low}" if "ge" in limits else f"must be above {low}"
    if high is not None:
        return f"must be at most {high}" if "le" in limits else f"must be below {high}"
    return None
