"""``imgclf predict``: label image files with a registered or a local model.

One row per file: its label and each class's probability, or the reason it could
not be read (the other files carry on). Images go through the same checks as the
validate stage (so a decompression bomb is refused from its header) and the same
decoding and resize as training: imaging.load_rgb at the model's image_size (a JPEG
decodes DCT-scaled), then Classifier.probabilities' resize_uint8.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlparse
from urllib.request import url2pathname

from imgclf.data.imaging import Limits, Reason, inspect_bytes, load_rgb
from imgclf.data.scan import is_clutter
from imgclf.errors import StageInputError
from imgclf.params import Params
from imgclf.progress import track
from imgclf.serving.classifier import Classifier, probability_columns
from imgclf.serving.pyfunc import load_pyfunc

log = logging.getLogger(__name__)


@dataclass
class PredictResult:
    classes: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)  # path, label, p_<class>..., error

    @property
    def predicted(self) -> int:
        return sum(1 for r in self.rows if not r["error"])


def list_files(targets: list[Path]) -> Iterator[Path]:
    """Each target file, and every file under each target folder (sorted, clutter skipped)."""
    for target in targets:
        if target.is_dir():
            found = (p for p in target.rglob("*") if not p.is_dir())
            # Hidden folders (.git, .thumbnails) hold no one's images, as in the validate stage.
            yield from sorted(p for p in found if not any(is_clutter(part) for part in p.relative_to(target).parts))
        else:
            yield target  # a missing one gets its error row


def load_classifier(model: str, params: Params) -> Classifier:
    """A ``models:/``/``runs:/`` URI from the tracking store, or a local .keras file with the
    classes.json beside it."""
    if "://" in model or model.startswith("models:/"):
        from imgclf import tracking

        local = registered_files(model, tracking.tracking_uri(params))
        if local is not None:
            return Classifier.load(*local)
        tracking.connect(params)
        try:
            loaded = load_pyfunc(model)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds for a bad URI or store
            raise StageInputError(f"{model}: cannot load the model ({str(exc).splitlines()[0][:200]})") from None
        classifier = getattr(loaded, "classifier", None)
        if not isinstance(classifier, Classifier):
            raise StageInputError(f"{model}: not an imgclf model")
        return classifier
    path = Path(model)
    classes = path.with_name("classes.json")
    if not path.is_file() or not classes.is_file():
        raise StageInputError(f"{model}: need a .keras file with classes.json beside it, or a models:/ URI")
    return Classifier.load(path, classes)


def registered_files(uri: str, tracking_uri: str) -> tuple[Path, Path, int] | None:
    """(Keras file, classes.json, max_pixels) of a ``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION`` in a local store whose files are on this disk; None otherwise.

    What loading its pyfunc would give (the pyfunc's load_context loads these two files
    with the model config's max_pixels), without importing MLflow, opening its store and
    checking the model's pip requirements: 5-20 s of `imgclf predict` on 2 cores. The
    registry stays the judge of which version an alias names (registry.listing reads it).
    Anything else (another store, a version whose files are elsewhere, a model that is not
    imgclf's) is None: the caller loads it through MLflow, which also words its errors.
    """
    import yaml

    from imgclf.registry import listing
    from imgclf.serving.pyfunc import CLASSES_ARTIFACT, KERAS_ARTIFACT
    from imgclf.serving.requests import Limits

    found = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", uri)
    if found is None:
        return None
    name, alias, number = found.groups()
    snapshot = listing.read(tracking_uri, name)
    if snapshot is None:
        return None
    number = snapshot.aliases.get(alias) if alias else number
    version = next((v for v in snapshot.versions if v.version == number), None)
    location = version.storage_location if version is not None else None
    if location is None or not location.startswith("file://"):
        return None
    folder = Path(url2pathname(urlparse(location).path))
    try:
        flavor = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))["flavors"]["python_function"]
        files = flavor["artifacts"]
        keras_file, classes_file = (folder / files[key]["path"] for key in (KERAS_ARTIFACT, CLASSES_ARTIFACT))
        limits = Limits.from_config(flavor.get("config"))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None
    if not (keras_file.is_file() and classes_file.is_file()):
        return None
    return keras_file, classes_file, limits.max_pixels


def run(params: Params, targets: list[Path], model: str, batch_size: int) -> PredictResult:
    classifier = load_classifier(model, params)
    v = params.validation
    limits = Limits(min_side=1, max_side=v.max_side, max_pixels=v.max_pixels)
    files = list(list_files(targets))
    result = PredictResult(classes=classifier.classes)
    for start in track(range(0, len(files), batch_size), -(-len(files) // batch_size), "predicting"):
        chunk = files[start : start + batch_size]
        images, ok = [], []
        for path in chunk:
            image, error = _read(path, limits, classifier.image_size)
            row: dict[str, Any] = {"path": str(path), "label": "", "error": error or ""}
            result.rows.append(row)
            if image is not None:
                images.append(image)
                ok.append(row)
        if images:
            # Plain dicts, not a DataFrame: pandas would be imported for this alone.
            records = classifier.records(classifier.probabilities(images, batch_size))
            for row, values in zip(ok, records, strict=True):
                row.update(values)
    return result


def _read(path: Path, limits: Limits, min_side: int | None = None) -> tuple[Any, str | None]:
    """(image, None), or (None, why not); ``min_side``: the model's image_size (load_rgb)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "not found"
    except OSError as exc:
        return None, f"{Reason.UNREADABLE.value} ({exc.strerror or type(exc).__name__})"
    if not data:
        return None, Reason.EMPTY.value
    found = inspect_bytes(data, limits)
    if isinstance(found, Reason):
        return None, found.value
    try:
        return load_rgb(data, min_side=min_side), None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad bytes
        return None, f"{Reason.CORRUPT.value} ({type(exc).__name__})"


def columns(classes: list[str]) -> list[str]:
    return ["path", "label", *probability_columns(classes), "error"]


def check_output(output: Path) -> None:
    """Fail before any work if ``output`` cannot be written (a missing permission, a file
    where its folder should be), rather than after every prediction was computed."""
    import tempfile

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp"):
            pass
    except OSError as exc:
        # mkdir says "File exists" when a file sits where a folder of the path should be.
        why = "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror or type(exc).__name__
        raise StageInputError(f"--output {output}: cannot write there ({why})") from None


def write(result: PredictResult, output: Path | None) -> None:
    r"""The rows as CSV on stdout, or atomically to a .csv or .json file.

    A path whose bytes are not UTF-8 is written escaped (manifest.escape_name: each such
    byte as ``\xNN``), as UTF-8 CSV and JSON cannot hold it; every row is kept. If the
    file cannot be written after all, the rows go to stdout rather than being lost.
    """
    import sys

    from imgclf.atomic import write_json
    from imgclf.data.manifest import escape_name
    from imgclf.tables import write_csv

    names = columns(result.classes)
    rows = [{**row, "path": escape_name(row["path"])} for row in result.rows]
    # Six decimals in CSV; JSON keeps the numbers and leaves empty fields out.
    table = [{c: f"{v:.6f}" if isinstance(v := row.get(c, ""), float) else v for c in names} for row in rows]
    if output is None:
        _csv_to(sys.stdout, table, names)
        return
    try:
        if output.suffix == ".json":
            write_json(output, [{k: v for k, v in row.items() if v != ""} for row in rows])
        else:
            write_csv(output, table, names)
    except OSError as exc:  # e.g. the disk filled up while predicting
        _csv_to(sys.stdout, table, names)
        raise StageInputError(
            f"--output {output}: cannot write ({exc.strerror or type(exc).__name__}); the rows are on stdout"
        ) from None


def _csv_to(out: TextIO, table: list[dict[str, Any]], names: list[str]) -> None:
    import csv

    writer = csv.DictWriter(out, fieldnames=names)  # the default dialect, as in files
    writer.writeheader()
    writer.writerows(table)
