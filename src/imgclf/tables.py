r"""CSV tables as every stage writes and reads them (the manifest, the split, the training
list, predictions, history): the csv module's default dialect (RFC 4180), UTF-8.

"\r\n" line ends, and any field holding a comma, quote, \r or \n is quoted, so a file
name with a line break stays one row on the way out and on the way back.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from imgclf.atomic import replacing


def write_csv(path: Path, rows: Iterable[Any], columns: Sequence[str]) -> None:
    """Write rows (dataclasses or mappings) to ``path`` atomically, in ``columns`` order."""
    with replacing(path) as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(row if isinstance(row, Mapping) else asdict(row) for row in rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows as ``write_csv`` wrote them; a quoted \\r or \\n inside a field stays in it."""
    with path.open(encoding="utf-8", newline="") as src:
        return list(csv.DictReader(src))
