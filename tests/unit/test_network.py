"""Model builders: input contract (raw uint8 of any size) and output shape per class count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgclf.errors import ParamsError
from imgclf.params import Augment, Model
from imgclf.tracking import flatten, repo_root
from imgclf.training.autoconf import PRESETS
from imgclf.training.phases import class_weights

# small_cnn as autoconf fills it in for the demo
SMALL = {"blocks": 3, "stem": False, "separable": False, "filters": 32}


@pytest.mark.parametrize(("arch", "size"), [("small_cnn", 16), ("seed_cnn", 32), ("transfer", 32)])
@pytest.mark.parametrize("num_classes", [2, 4])
def test_models_take_any_size_uint8_and_output_per_class(arch: str, size: int, num_classes: int) -> None:
    from imgclf.training.network import augmentation, build_model

    layers = augmentation(Augment(**PRESETS["photo"]), 0)
    model, backbone = build_model(num_classes, size, Model(arch=arch, **SMALL), layers)  # type: ignore[arg-type]
    assert (backbone is not None) == (arch == "transfer")
    for shape in ((1, 20, 30, 3), (2, 64, 48, 3)):
        out = np.asarray(model(np.zeros(shape, dtype="uint8"), training=False))
        assert out.shape == (shape[0], 1 if num_classes == 2 else num_classes)
        if num_classes > 2:
            assert np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_missing_pretrained_weights_say_where_to_put_them(tmp_path: Path) -> None:
    from imgclf.training.network import build_model

    with pytest.raises(ParamsError, match=r"params.yaml: model.weights: .*not found\. Point it at a local file"):
        build_model(2, 32, Model(arch="transfer", weights=str(tmp_path / "mobilenet.h5")))


def test_augmentation_is_inactive_at_inference() -> None:
    from imgclf.training.network import augmentation

    layers = augmentation(Augment(flip=True, rotation=0.2, zoom=0.2, shift=0.2, brightness=0.3, contrast=0.3), 0)
    image = np.random.default_rng(0).integers(0, 255, (1, 16, 16, 3)).astype("float32")
    assert np.array_equal(np.asarray(layers(image, training=False)), image)
    assert not np.array_equal(np.asarray(layers(image, training=True)), image)


def test_class_weights_balance_the_classes() -> None:
    assert class_weights([0, 0, 0, 1], 2) == {0: pytest.approx(2 / 3), 1: 2.0}
    assert class_weights([0, 1], 2) == {0: 1.0, 1: 1.0}


def test_flatten_params() -> None:
    assert flatten({"train": {"epochs": 3, "lr": 0.1}, "validate": {"classes": None}, "x": {"y": ["a"]}}) == {
        "train.epochs": "3",
        "train.lr": "0.1",
        "validate.classes": "null",
        "x.y": '["a"]',
    }


def test_a_dvc_temporary_experiment_logs_to_the_repo_store(tmp_path: Path) -> None:
    from imgclf.params import Params

    inside = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12"
    assert repo_root(Params(root=inside)) == tmp_path / "repo"
    assert repo_root(Params(root=tmp_path / "repo")) == tmp_path / "repo"


@pytest.mark.parametrize("sync", [False, True])
def test_batch_norm_is_synchronised_across_replicas_only_when_asked(sync: bool) -> None:
    import keras

    from imgclf.training.network import build_model

    model, _ = build_model(2, 16, Model(arch="small_cnn", **{**SMALL, "blocks": 2}), sync_batch_norm=sync)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 2 and all(layer.synchronized is sync for layer in norms)


@pytest.mark.parametrize(("stem", "separable"), [(True, False), (True, True), (False, True)])
def test_small_cnn_variants_take_any_size_and_shrink_the_map(stem: bool, separable: bool) -> None:
    import keras

    from imgclf.training.network import build_model

    model, _ = build_model(2, 64, Model(stem=stem, separable=separable, blocks=3, filters=32))
    out = np.asarray(model(np.zeros((2, 90, 70, 3), dtype="uint8"), training=False))
    assert out.shape == (2, 1)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert ("SeparableConv2D" in kinds) == separable
    pooled = next(layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D))
    # 64 px, halved by the stem and by each of 3 blocks: 4x4, or 8x8 without the stem.
    assert pooled.input.shape[1] == (4 if stem else 8)


def test_an_unresolved_small_cnn_is_never_built() -> None:
    from imgclf.training.network import build_model

    with pytest.raises(RuntimeError, match=r"before imgclf\.training\.autoconf\.resolve"):
        build_model(2, 28, Model())


def test_the_same_weights_saved_twice_give_the_same_archive(tmp_path: Path) -> None:
    """DVC records the .keras file's md5: Keras's save date and id()-numbered shared objects
    made every save of the same weights a new file (a fresh clone changed dvc.lock)."""
    import keras

    from imgclf.provenance import content_hash, file_md5, normalize_archive
    from imgclf.training.network import augmentation, build_model

    def built() -> keras.Model:
        keras.backend.clear_session()  # the same layer names, as in a process of its own
        layers = augmentation(Augment(**PRESETS["silhouette"]), 0)
        return build_model(2, 16, Model(arch="small_cnn", **SMALL), layers)[0]  # type: ignore[arg-type]

    first, second = built(), built()  # other objects, so other id()s in the config
    second.set_weights(first.get_weights())
    files = [tmp_path / "first.keras", tmp_path / "second.keras"]
    for model, path in zip((first, second), files, strict=True):
        model.save(path)
    assert file_md5(files[0]) != file_md5(files[1])  # what DVC saw before
    hashes = [content_hash(path) for path in files]
    for path in files:
        normalize_archive(path)
    assert file_md5(files[0]) == file_md5(files[1])
    assert [content_hash(path) for path in files] == hashes  # registered versions keep their identity
    loaded = keras.models.load_model(files[1], safe_mode=True)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 20, 30, 3), dtype="uint8")
    assert np.array_equal(np.asarray(loaded(pixels, training=False)), np.asarray(first(pixels, training=False)))
