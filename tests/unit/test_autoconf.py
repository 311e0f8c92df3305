"""train.image_size: auto and augment.preset: auto, chosen from the manifest; explicit values win."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgclf.data.manifest import ManifestRow
from imgclf.errors import ParamsError, StageInputError
from imgclf.params import Augment, Model, Params, Train, load_params
from imgclf.training.autoconf import PHOTO_SIZE, PRESETS, DataShape, describe, resolve, resolve_from_manifest

DEMO = DataShape(images=2000, short_side=28, colour=0.0)  # the demo's 28x28 grey silhouettes
PHOTOS = DataShape(images=600, short_side=240, colour=0.97)
CIFAR = DataShape(images=12000, short_side=32, colour=1.0)  # small, but photos


def row(width: int, height: int, mode: str = "RGB", status: str = "ok") -> ManifestRow:
    return ManifestRow(
        path="a/x.jpg", label="a", status=status, reason="", sha256="0" * 64,
        width=width, height=height, mode=mode, bytes=1,
    )  # fmt: skip


def test_the_demo_keeps_its_own_size_and_flips_only() -> None:
    resolved = resolve(Params(), DEMO)
    assert resolved.params.train.size == 28
    assert resolved.params.augment.ranges() == PRESETS["silhouette"]
    assert resolved.params.augment.preset == "silhouette"
    assert resolved.choices == [
        "data: 2000 images, median short side 28 px, 0% in colour: silhouettes",
        "train.image_size: auto -> 28 (their own size)",
        "model.stem: auto -> false (under 64 px)",
        "model.filters: auto -> 32 (for silhouettes)",
        "model.blocks: auto -> 3 (28 px down to 3.5 px)",
        "augment.preset: auto -> silhouette (flip True)",
    ]
    assert resolved.params.model.stem is False and resolved.params.model.filters == 32


def test_photos_get_a_photo_size_and_the_photo_ranges() -> None:
    resolved = resolve(Params(), PHOTOS)
    assert resolved.params.train.size == PHOTO_SIZE
    ranges = resolved.params.augment.ranges()
    assert ranges == PRESETS["photo"] and ranges["flip"] and ranges["brightness"] and ranges["contrast"]
    assert not ranges["rotation"] and not ranges["zoom"]  # a third of the time for no F1 (measured)
    assert resolved.params.model.stem is True and resolved.params.model.separable is False  # at photo sizes
    assert resolved.params.model.filters == 24 and "model.filters: auto -> 24 (for photos)" in resolved.choices
    assert resolved.params.model.blocks == 4  # 128 px, 64 after the stem, down to 4 px


def test_small_colour_photos_keep_their_size_with_photo_ranges() -> None:
    resolved = resolve(Params(), CIFAR)
    assert resolved.params.train.size == 32 and resolved.params.augment.preset == "photo"


def test_photos_smaller_than_the_photo_size_are_not_upscaled() -> None:
    assert resolve(Params(), DataShape(images=50, short_side=100, colour=1.0)).params.train.size == 100


def test_explicit_values_win() -> None:
    params = Params(train=Train(image_size=96), augment=Augment(rotation=0.2, flip=False))
    resolved = resolve(params, PHOTOS)
    assert resolved.params.train.size == 96
    ranges = resolved.params.augment.ranges()
    assert ranges["rotation"] == 0.2 and ranges["flip"] is False and ranges["zoom"] == PRESETS["photo"]["zoom"]
    assert not any(line.startswith("train.image_size") for line in resolved.choices)
    # A preset named in params.yaml wins over the data's kind.
    assert resolve(Params(augment=Augment(preset="silhouette")), PHOTOS).params.augment.ranges()["zoom"] == 0.0


def test_nothing_to_choose_says_nothing() -> None:
    fixed = Params(
        train=Train(image_size=64),
        model=Model(stem=False, separable=False, blocks=3, filters=32),
        augment=Augment(**PRESETS["photo"]),
    )
    assert resolve(fixed, DEMO).choices == []


def test_unresolved_settings_are_never_used() -> None:
    with pytest.raises(RuntimeError, match="image_size used before"):
        _ = Params().train.size
    with pytest.raises(RuntimeError, match="augment ranges used before"):
        Params().augment.ranges()


def test_describe_reads_usable_images_only() -> None:
    rows = [row(640, 480), row(300, 400), row(20000, 10, status="excluded"), row(28, 28, mode="L")]
    assert describe(rows) == DataShape(images=3, short_side=300, colour=2 / 3)
    with pytest.raises(StageInputError, match="no usable image"):
        describe([row(10, 10, status="excluded")])


def test_no_manifest_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("{}\n", encoding="utf-8")
    with pytest.raises(StageInputError, match=r"data/manifest.csv not found: run `imgclf validate` first"):
        resolve_from_manifest(load_params(tmp_path / "params.yaml"))


@pytest.mark.parametrize("value", ["big", "8", "2000", "true", "96.5"])
def test_a_bad_size_is_one_line_naming_the_key(tmp_path: Path, value: str) -> None:
    file = tmp_path / "params.yaml"
    file.write_text(f"train:\n  image_size: {value}\n", encoding="utf-8")
    with pytest.raises(ParamsError, match=r"train\.image_size: must be auto or a whole number of pixels") as caught:
        load_params(file)
    assert "\n" not in str(caught.value)


def test_an_auto_size_never_goes_below_the_backbones_smallest_input() -> None:
    params = Params(model=Model(arch="transfer", backbone="InceptionV3"))
    resolved = resolve(params, DEMO)
    assert resolved.params.train.size == 75
    assert "train.image_size: auto -> 75 (the smallest input of InceptionV3)" in resolved.choices
