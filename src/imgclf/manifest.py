"""The manifest: one row per candidate file under the raw folder, written by validate."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from imgclf.atomic import replacing

OK = "ok"
EXCLUDED = "excluded"


@dataclass(frozen=True)
class ManifestRow:
    path: str  # POSIX path relative to the raw folder; its first part is the label
    label: str
    status: str  # OK or EXCLUDED
    reason: str  # empty for OK rows, an imaging.Reason value otherwise
    sha256: str  # of the file's bytes; empty when the file could not be read
    width: int
    height: int
    mode: str
    bytes: int


COLUMNS = tuple(f.name for f in fields(ManifestRow))


def write_csv(path: Path, rows: Iterable[Any], columns: Sequence[str]) -> None:
    """Write rows (dataclasses or mappings) to ``path`` atomically, in ``columns`` order."""
    with replacing(path) as out:
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row if isinstance(row, Mapping) else asdict(row) for row in rows)


def read_manifest(path: Path) -> list[ManifestRow]:
    with path.open(newline="", encoding="utf-8") as src:
        reader = csv.DictReader(src)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not {list(COLUMNS)}")
        return [
            ManifestRow(**{**r, "width": int(r["width"]), "height": int(r["height"]), "bytes": int(r["bytes"])})  # type: ignore[arg-type]
            for r in reader
        ]
