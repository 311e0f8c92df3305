from pathlib import Path

import pytest

from imgclf import owned
from imgclf.errors import StageInputError


def test_a_marked_folder_is_removed_whole(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    owned.mark(folder, "train")
    (folder / "epoch.weights.h5").write_bytes(b"x")
    owned.remove(folder, "paths.checkpoints")
    assert not folder.exists()


def test_missing_and_empty_folders_are_fine(tmp_path: Path) -> None:
    owned.remove(tmp_path / "missing", "paths.augmented")
    (tmp_path / "empty").mkdir()
    owned.remove(tmp_path / "empty", "paths.augmented")
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("kind", ["folder", "file", "symlink"])
def test_what_imgclf_did_not_write_is_left_untouched(tmp_path: Path, kind: str) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"jpeg")
    target = {"folder": photos, "file": photos / "cat.jpg", "symlink": tmp_path / "link"}[kind]
    if kind == "symlink":
        # A marker inside the linked folder must not make the link's target deletable.
        owned.mark(photos, "train")
        target.symlink_to(photos)
    with pytest.raises(StageInputError, match=r"^paths.checkpoints: .* imgclf did not write it"):
        owned.remove(target, "paths.checkpoints")
    assert (photos / "cat.jpg").read_bytes() == b"jpeg"
