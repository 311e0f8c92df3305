"""File names with line breaks, and with bytes that are not UTF-8, planted in real folders:
validate, split, augment (offline), tf.data and predict keep every row and never crash."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from images import class_folder, encode, rgb, write
from imgclf.data.datasets import Examples, make_dataset
from imgclf.data.imaging import Limits
from imgclf.data.manifest import read_manifest
from imgclf.data.scan import scan
from imgclf.errors import StageInputError
from imgclf.params import Params, load_params
from imgclf.serving import predict
from imgclf.stages import augment, split, validate
from imgclf.stages.split import assign
from imgclf.tables import read_csv
from models import tiny_model

CR, LF = "cat/car\riage.png", "dog/line\nfeed.png"  # valid UTF-8: kept, and must stay one row each
LATIN1 = b"cat/caf\xe9.png"  # e-acute from a Latin-1 export: not UTF-8
ESCAPED = "cat/caf\\xe9.png"  # how the manifest and predict record it


def plant(folder: Path) -> list[Path]:
    """The three odd names under ``folder``, each a distinct image; returns their paths."""
    for seed, rel in enumerate((CR, LF), start=500):
        write(folder / rel, encode(rgb(seed), "PNG"))
    latin1 = Path(os.fsdecode(os.fsencode(folder) + b"/" + LATIN1))
    latin1.write_bytes(encode(rgb(502), "PNG"))
    return [folder / CR, folder / LF, latin1]


@pytest.fixture
def odd_project(tmp_path: Path, write_params: Callable[..., Path]) -> Params:
    raw = tmp_path / "data" / "raw"
    for seed, label in enumerate(("cat", "dog"), start=1):
        class_folder(raw, label, 12, seed=seed)
    plant(raw)
    params = load_params(write_params())
    # A split seed that puts both line-break names in train, so that augment transforms them.
    shas = [r.sha256 for r in scan(raw, Limits(16, 20_000, 89_478_485), workers=1)[0] if r.path in (CR, LF)]
    seed = next(
        s for s in range(100) if {assign(sha, params.split.model_copy(update={"seed": s})) for sha in shas} == {"train"}
    )
    return load_params(
        write_params(validate={"min_per_class": 10}, split={"seed": seed}, augment={"mode": "offline", "variants": 1})
    )


def test_validate_split_and_augment_keep_odd_names(odd_project: Params) -> None:
    params = odd_project
    result = validate.run(params)

    manifest = {r.path: r for r in read_manifest(params.path("manifest"))}
    assert len(manifest) == 27 and manifest == {r.path: r for r in result.rows}
    assert manifest[CR].status == manifest[LF].status == "ok"
    assert (manifest[ESCAPED].status, manifest[ESCAPED].reason) == ("excluded", "bad_filename")
    assert result.report["by_reason"]["bad_filename"] == 1 and result.report["files"]["excluded"] == 1

    split.run(params)
    rows = read_csv(params.path("split"))
    assert {r["path"] for r in rows} == {p for p, r in manifest.items() if r.status == "ok"}
    assert {r["path"]: r["split"] for r in rows if r["path"] in (CR, LF)} == {CR: "train", LF: "train"}

    augment.run(params)
    listed = read_csv(params.path("augment_list"))
    assert {r["source"] for r in listed} == {r["path"] for r in rows if r["split"] == "train"}
    odd = [r for r in listed if r["source"] in (CR, LF)]
    assert len(odd) == 4 and all((params.root / r["file"]).is_file() for r in odd)


def test_tf_data_opens_the_very_files_named(tmp_path: Path) -> None:
    files = plant(tmp_path / "raw")
    (batch, labels), *more = list(make_dataset(Examples(files, [0, 1, 0]), image_size=16, batch_size=8))
    assert not more and batch.shape == (3, 16, 16, 3) and list(labels.numpy()) == [0, 1, 0]


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model" / "model.keras"
    path.parent.mkdir()
    tiny_model().save(path)
    (path.parent / "classes.json").write_text(json.dumps({"classes": ["cat", "dog"], "image_size": 8}))
    return path


def test_predict_keeps_every_row_in_csv_json_and_stdout(
    tmp_path: Path, write_params: Callable[..., Path], model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    plant(photos)
    write(photos / "dog" / "notes.png", b"not an image")
    result = predict.run(load_params(write_params()), [photos], str(model_file), batch_size=2)
    expected = [str(photos / name) for name in (ESCAPED, CR, LF, "dog/notes.png")]

    predict.write(result, tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(encoding="utf-8", newline="") as src:
        rows = list(csv.DictReader(src))
    assert [r["path"] for r in rows] == expected
    assert [bool(r["label"]) for r in rows] == [True, True, True, False]

    predict.write(result, tmp_path / "out.json")
    records = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert [r["path"] for r in records] == expected and records[3]["error"] == "not_an_image"

    predict.write(result, None)
    assert [r["path"] for r in csv.DictReader(io.StringIO(capsys.readouterr().out, newline=""))] == expected


def test_predict_output_that_cannot_be_written(
    tmp_path: Path, write_params: Callable[..., Path], model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = write(tmp_path / "taken", b"a file where the output's folder should be")
    with pytest.raises(StageInputError, match=r"cannot write there \(a file is in the way\)"):
        predict.check_output(blocker / "out.csv")  # refused before any work
    photos = tmp_path / "photos"
    plant(photos)
    result = predict.run(load_params(write_params()), [photos], str(model_file), batch_size=8)
    with pytest.raises(StageInputError, match="the rows are on stdout"):
        predict.write(result, blocker / "out.json")  # the folder vanished during the work
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out, newline="")))) == 3
