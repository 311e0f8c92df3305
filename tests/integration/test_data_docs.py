"""Data Docs from the validate stage (real GX): the same data gives byte-identical pages,
and the index lists each validation as static HTML, with no script to fetch."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from images import class_folder
from imgclf.params import load_params
from imgclf.stages import validate


class _Index(HTMLParser):
    """The index's table rows (cell texts and links), and every script or stylesheet it loads."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self.fetched: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []
        elif tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        elif tag == "script" or (tag == "link" and found.get("rel") == "stylesheet"):
            self.fetched.append(str(found.get("src") or found.get("href") or "inline script"))

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_data_gives_identical_docs_whose_index_lists_each_validation(
    write_params: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for seed, label in enumerate(("cat", "dog")):
        class_folder(tmp_path / "data" / "raw", label, 12, seed=seed + 1)
    params = load_params(write_params(validate={"min_per_class": 10}))
    docs = params.path("data_docs")

    validate.run(params)
    first = _tree(docs)
    # Another machine, in another time zone (GX prints times in the local one).
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        validate.run(params)
    finally:
        monkeypatch.undo()
        time.tzset()

    assert _tree(docs) == first  # GX's run time, load time, uuids and cache busters are gone
    page = (docs / "index.html").read_text(encoding="utf-8")
    parsed = _Index()
    parsed.feed(page)
    assert parsed.fetched == []  # nothing to load: it reads the same offline
    sha = json.loads(params.path("validation_report").read_text(encoding="utf-8"))["manifest_sha256"]
    body = [row for row in parsed.rows if row]
    assert [(r[0], r[1], r[2], r[3]) for r in body] == [
        ("passed", "manifest", "6 of 6", f"manifest-{sha[:12]}"),
        ("passed", "class_counts", "2 of 2", f"manifest-{sha[:12]}"),
    ]
    for link in parsed.links:
        assert (docs / link).is_file(), link
    assert any(link.startswith("validations/manifest/") for link in parsed.links)
    assert not any("?d=" in p.read_text(encoding="utf-8") for p in docs.rglob("*.html"))  # no render-time stamp
