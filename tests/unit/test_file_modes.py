"""What a stage writes gets the user's umask, not tempfile's private 0600/0700: a teammate,
a CI job or a served artifact store reads the model card, the reports and the Data Docs."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgclf.atomic import publish, replacing, umask, write_json


@pytest.fixture(params=[0o022, 0o002, 0o077])
def mask(request: pytest.FixtureRequest) -> Iterator[int]:
    saved = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_umask_is_read_without_changing_it(mask: int) -> None:
    assert umask() == mask
    assert umask() == mask


def test_an_atomically_written_file_has_the_mode_open_would_give(tmp_path: Path, mask: int) -> None:
    write_json(tmp_path / "promotion.json", {"decision": "champion"})
    with replacing(tmp_path / "model_card.md") as out:
        out.write("# card\n")
    with open(tmp_path / "plain.txt", "w", encoding="utf-8") as plain:  # what the user's tools would make
        plain.write("x")
    assert mode(tmp_path / "promotion.json") == mode(tmp_path / "model_card.md") == mode(tmp_path / "plain.txt")
    assert mode(tmp_path / "plain.txt") == 0o666 & ~mask


def test_a_staged_folder_gets_the_mode_mkdir_would_give(tmp_path: Path, mask: int) -> None:
    staging = Path(tempfile.mkdtemp(dir=tmp_path))
    assert mode(staging) == 0o700  # what tempfile gives: the bug
    publish(staging)
    (tmp_path / "plain").mkdir()
    assert mode(staging) == mode(tmp_path / "plain") == 0o777 & ~mask
