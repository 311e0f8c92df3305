from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from imgclf.data import demo
from imgclf.errors import DemoDataError


class _Exploit:
    """Unpickling this would run a shell command."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/imgclf-pwned",))


def test_restricted_unpickler_refuses_anything_but_arrays(tmp_path: Path) -> None:
    payload = gzip.compress(pickle.dumps(_Exploit()))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        demo.load_arrays(payload)
    assert not Path("/tmp/imgclf-pwned").exists()


def test_restricted_unpickler_loads_numpy_arrays() -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(demo.load_arrays(gzip.compress(pickle.dumps(array))), array)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cat,dog", ("cat", "dog")),
        ("dog, cat", ("cat", "dog")),
        ("all", demo.CLASSES),
        ("zebra,bear", ("bear", "zebra")),
    ],
)
def test_parse_classes(spec: str, expected: tuple[str, ...]) -> None:
    assert demo.parse_classes(spec) == expected


@pytest.mark.parametrize("spec", ["cat", "cat,unicorn", ""])
def test_parse_classes_rejects(spec: str) -> None:
    with pytest.raises(DemoDataError, match="--classes"):
        demo.parse_classes(spec)


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.png")}


def test_export_is_byte_identical_and_idempotent(tmp_path: Path) -> None:
    first = demo.export(("cat", "dog"), tmp_path / "a")
    demo.export(("cat", "dog"), tmp_path / "b")
    assert (first.written, first.unchanged) == (2000, 0)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert len(_digests(tmp_path / "a")) == 2000
    again = demo.export(("cat", "dog"), tmp_path / "a")
    assert (again.written, again.unchanged) == (0, 2000)


def test_export_never_overwrites_a_user_file(tmp_path: Path) -> None:
    mine = tmp_path / "raw" / "cat" / "cat_0000.png"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own cat picture")
    with pytest.raises(DemoDataError, match="refusing to overwrite"):
        demo.export(("cat", "dog"), tmp_path / "raw")
    assert mine.read_bytes() == b"my own cat picture"
    assert sorted(p.name for p in (tmp_path / "raw").rglob("*")) == ["cat", "cat_0000.png"]
