"""The manifest: one row per candidate file under the raw folder, written by validate."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, fields
from pathlib import Path

OK = "ok"
EXCLUDED = "excluded"


@dataclass(frozen=True)
class ManifestRow:
    path: str  # POSIX path relative to the raw folder; its first part is the label. escape_name'd if not UTF-8
    label: str
    status: str  # OK or EXCLUDED
    reason: str  # empty for OK rows, an imaging.Reason value otherwise
    sha256: str  # of the file's bytes; empty when the file could not be read
    width: int
    height: int
    mode: str
    bytes: int
    # Given for a usable image, empty otherwise (and in tests that build rows by hand):
    phash: str = ""  # imagehash's pHash as 16 hex digits (data.looks)
    group: str = ""  # the key of its group of copies or near-duplicates (scan.resolve_duplicates), else empty
    warnings: str = ""  # quality warnings that do not exclude, ';'-separated (looks.QualityWarning)


COLUMNS = tuple(f.name for f in fields(ManifestRow))


def is_utf8(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (Python holds them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_name(name: str) -> str:
    r"""``name`` as UTF-8 text: each byte that is not UTF-8 becomes ``\xNN``, like Python's
    ``bytes`` repr (b'caf\xe9.jpg' -> 'caf\\xe9.jpg'); a UTF-8 name is returned unchanged.

    Only for display and records: a name that really contains a backslash-x reads the same.
    """
    return name if is_utf8(name) else os.fsencode(name).decode("utf-8", "backslashreplace")


def read_manifest(path: Path) -> list[ManifestRow]:
    with path.open(newline="", encoding="utf-8") as src:
        reader = csv.DictReader(src)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not {list(COLUMNS)}")
        return [
            ManifestRow(**{**r, "width": int(r["width"]), "height": int(r["height"]), "bytes": int(r["bytes"])})  # type: ignore[arg-type]
            for r in reader
        ]
