"""Transfer backbones: each one's preprocessing as layers, the input sizes they accept, and
ImageNet weights through Keras's download cache (offline: built here, never downloaded)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from imgclf.errors import DownloadUnavailable, ParamsError
from imgclf.params import Model
from runner import imgclf

BACKBONES = ("MobileNetV2", "EfficientNetB0", "ResNet50", "VGG16", "InceptionV3")
# keras.applications.<module>.preprocess_input for each backbone.
MODULES = {
    "MobileNetV2": "mobilenet_v2",
    "EfficientNetB0": "efficientnet",
    "ResNet50": "resnet50",
    "VGG16": "vgg16",
    "InceptionV3": "inception_v3",
}


def _scaling_model(name: str) -> Any:
    """0..255 floats (what the model's Resizing layer hands on) -> the backbone's scaling layers."""
    import keras

    from imgclf.training.network import _backbone_scaling

    inputs = keras.Input((None, None, 3), dtype="float32")
    return keras.Model(inputs, _backbone_scaling(name, inputs))


@pytest.mark.parametrize("name", BACKBONES)
def test_scaling_layers_equal_keras_preprocess_input(name: str, tmp_path: Path) -> None:
    import keras

    images = np.random.default_rng(0).integers(0, 256, (3, 7, 5, 3), dtype=np.uint8)
    expected = getattr(keras.applications, MODULES[name]).preprocess_input(images.astype("float32"))
    images = images.astype("float32")
    model = _scaling_model(name)
    assert np.allclose(np.asarray(model(images)), expected, atol=1e-4)
    # Plain layers: the model survives a safe_mode round trip and scales the same after it.
    model.save(tmp_path / "scaling.keras")
    loaded = keras.saving.load_model(tmp_path / "scaling.keras", safe_mode=True)
    assert np.allclose(np.asarray(loaded(images)), expected, atol=1e-4)


def test_caffe_backbones_take_uint8_without_augmentation() -> None:
    # No augmentation layers (augment.mode offline or none): the uint8 input reaches the
    # backbone's scaling as uint8, which the caffe convention's convolution (ResNet50,
    # VGG16) used to refuse. VGG16 at its smallest size is the cheap one to build.
    from imgclf.training.network import build_model

    model, backbone = build_model(3, 32, Model(arch="transfer", backbone="VGG16"))
    assert backbone is not None and backbone.name == "vgg16"
    assert np.asarray(model(np.zeros((1, 40, 90, 3), "uint8"), training=False)).shape == (1, 3)


def test_too_small_image_size_is_one_params_line_before_tensorflow(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"model": {"arch": "transfer", "backbone": "InceptionV3"}, "train": {"image_size": 64}})
    )
    probe = (
        "import sys\nfrom imgclf.params import load_params\nfrom imgclf.errors import ParamsError\n"
        f"try:\n    load_params(__import__('pathlib').Path({str(params)!r}))\n"
        "except ParamsError as exc:\n    print(exc)\nprint('tensorflow' in sys.modules)\n"
    )
    problem = "train.image_size: 64 is below 75, the smallest input model.backbone InceptionV3 takes"
    said = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert said.splitlines() == [f"{params}: {problem}", "False"]
    checked = imgclf("check", cwd=tmp_path)
    assert checked.returncode == ParamsError.exit_code == 2
    assert checked.stderr.strip().splitlines() == [f"error: params.yaml: {problem}"]


def test_a_chosen_size_below_the_backbones_minimum_fails_at_build() -> None:
    # An auto size is chosen after params.yaml is read: the build checks it too.
    from imgclf.training.network import build_model

    with pytest.raises(ParamsError, match=r"^params.yaml: train.image_size: 28 is below 32, .* VGG16 takes$"):
        build_model(2, 28, Model(arch="transfer", backbone="VGG16"))


@pytest.mark.parametrize(("name", "size"), [(name, 75 if name == "InceptionV3" else 32) for name in BACKBONES])
@pytest.mark.usefixtures("no_network")
@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")  # MobileNetV2 at 32 px
def test_imagenet_offline_says_which_file_to_put_where(name: str, size: int, keras_home: Path) -> None:
    from imgclf.training.network import build_model, imagenet_file

    wanted = imagenet_file(name, size)
    with pytest.raises(DownloadUnavailable) as caught:
        build_model(2, size, Model(arch="transfer", backbone=name, weights="imagenet"))
    line = str(caught.value)
    assert "\n" not in line and caught.value.exit_code == 2
    assert line.startswith(f"params.yaml: model.weights: imagenet: the ImageNet weights of {name}: Keras could not")
    assert f"download {wanted.origin} and save it as {keras_home / 'models' / wanted.name};" in line
    # The origin (and so the cache name, its last part) is the one Keras itself tried.
    assert str(caught.value.__cause__).startswith(f"URL fetch failure on {wanted.origin}:")


@pytest.mark.usefixtures("no_network")
def test_imagenet_weights_in_keras_cache_load_without_network_as_does_a_local_file(keras_home: Path) -> None:
    import keras

    from imgclf.training.network import build_model, imagenet_file

    # A stand-in for the ImageNet file: a seeded random MobileNetV2, saved in the legacy
    # HDF5 format of Keras's files, under the exact name Keras looks for (MobileNetV2's is
    # the one file Keras does not check against a known checksum).
    keras.utils.set_random_seed(7)
    stand_in = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3), pooling="avg")
    cached = keras_home / "models" / imagenet_file("MobileNetV2", 96).name
    cached.parent.mkdir()
    stand_in.save(cached)
    assert cached.name == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"

    for weights in ("imagenet", str(cached)):  # through the cache, then as a local file (as before)
        keras.utils.set_random_seed(8)
        _, backbone = build_model(2, 96, Model(arch="transfer", weights=weights))
        assert backbone is not None
        for got, want in zip(backbone.get_weights(), stand_in.get_weights(), strict=True):
            assert np.array_equal(got, want)
