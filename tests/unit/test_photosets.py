"""demo-data's photo sets through keras.datasets, on small archives in the real formats that
the tests write into a tmp Keras cache: never downloaded."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imgclf.data import photosets
from imgclf.errors import DemoDataError, DownloadUnavailable
from imgclf.orchestration.flowrun import free_port
from runner import imgclf

CAT, DOG = 3, 5


def _pixels(path: Path) -> Any:
    with Image.open(path) as image:
        return np.asarray(image)


def test_fashion_label_names_become_safe_folder_names() -> None:
    assert [photosets.folder_name(name) for name in photosets.FASHION_LABELS] == [
        "t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot",
    ]  # fmt: skip


# --- Fashion-MNIST: four gzipped IDX files (big-endian header, then raw uint8) -----------


def _write_fashion(folder: Path, images: Any, labels: Any, part: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    count, rows, cols = images.shape
    header = np.array([2051, count, rows, cols], ">i4").tobytes()
    (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    header = np.array([2049, count], ">i4").tobytes()
    (folder / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.astype("uint8").tobytes()))


@pytest.mark.usefixtures("no_network")
def test_fashion_mnist_exports_every_class_from_keras_cache(keras_home: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    train_labels, test_labels = np.arange(12) % 10, np.array([9, 0, 4])
    _write_fashion(keras_home / "datasets" / "fashion-mnist", train, train_labels, "train")
    _write_fashion(keras_home / "datasets" / "fashion-mnist", test, test_labels, "t10k")

    result = photosets.export("fashion-mnist", tmp_path / "raw")
    assert (result.written, result.unchanged) == (15, 0)
    names = [photosets.folder_name(name) for name in photosets.FASHION_LABELS]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(names)
    boots = sorted((tmp_path / "raw" / "ankle_boot").iterdir())  # label 9: train 9, then test 0
    assert [p.name for p in boots] == ["ankle_boot_00000.png", "ankle_boot_00001.png"]
    assert np.array_equal(_pixels(boots[0]), train[9]) and np.array_equal(_pixels(boots[1]), test[0])
    assert photosets.export("fashion-mnist", tmp_path / "raw").unchanged == 15  # byte-identical rerun

    mine = tmp_path / "raw" / "bag" / "bag_00000.png"
    mine.write_bytes(b"my own bag")
    with pytest.raises(DemoDataError, match="refusing to overwrite"):
        photosets.export("fashion-mnist", tmp_path / "raw")
    assert mine.read_bytes() == b"my own bag"


@pytest.mark.usefixtures("no_network")
def test_fashion_mnist_offline_names_the_files_and_the_folder(keras_home: Path, tmp_path: Path) -> None:
    with pytest.raises(DownloadUnavailable) as caught:
        photosets.export("fashion-mnist", tmp_path / "raw")
    folder = keras_home / "datasets" / "fashion-mnist"
    assert str(caught.value) == (
        "--dataset fashion-mnist: Fashion-MNIST: Keras could not download it (Connection refused). On a machine "
        "with a network, download train-labels-idx1-ubyte.gz, train-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz from "
        f"https://storage.googleapis.com/tensorflow/tf-keras-datasets/ into {folder}/"
    )
    assert not (tmp_path / "raw").exists()


# --- CIFAR-10: a tar.gz of cifar-10-batches-py/{data_batch_1..5,test_batch}, each a -------
# Python 2 era pickle of {b"data": (10000, 3072) uint8 rows (R, G, B planes), b"labels": [...]}


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote CIFAR-10's batches: bytes as (SHORT_)BINSTRING.
    Python 3 pickles bytes at protocol 2 through a _codecs.encode call, which no real batch
    holds and Keras's restricted unpickler rightly refuses."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_python2_str(self, data: bytes) -> None:
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(data)

    dispatch[bytes] = save_python2_str


def _python2_pickle(value: Any) -> bytes:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(value)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cifar_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Any]]]:
    """A CIFAR-10 archive in the real layout (keras' loader wants 10000 rows a batch), all
    label 0 but for a cat and a dog in each train batch and a dog in the test batch."""
    rng = np.random.default_rng(1)
    expected: dict[str, list[Any]] = {"cat": [], "dog": []}
    members = []
    for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = np.zeros((10000, 3072), np.uint8)
        labels = [0] * 10000
        picks = [(CAT, 17), (DOG, 42)] if batch != "test_batch" else [(DOG, 9999)]
        for label, row in picks:
            data[row] = rng.integers(0, 256, 3072, dtype=np.uint8)
            labels[row] = label
            expected["cat" if label == CAT else "dog"].append(data[row].reshape(3, 32, 32).transpose(1, 2, 0))
        members.append((batch, _python2_pickle({b"batch_label": batch.encode(), b"data": data, b"labels": labels})))
    archive = tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for name, payload in members:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive, expected


def _cache_archive(keras_home: Path, archive: Path) -> Path:
    cached: Path = keras_home / "datasets" / photosets.PHOTO_SETS["cifar10-catdog"].files[0].name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(archive.read_bytes())
    return cached


@pytest.mark.usefixtures("no_network")
def test_cifar10_catdog_exports_cats_and_dogs_through_keras_loader(
    keras_home: Path, tmp_path: Path, cifar_archive: tuple[Path, dict[str, list[Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras.src.datasets.cifar10 as keras_cifar10

    archive, expected = cifar_archive
    _cache_archive(keras_home, archive)
    # Keras accepts a cached archive only if its sha256 is the real CIFAR-10's: give its
    # get_file this archive's instead. Everything else is Keras's own: the cache lookup,
    # the check, the extraction, its restricted unpickler, the reshaping.
    real_get_file, ours = keras_cifar10.get_file, hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(keras_cifar10, "get_file", lambda *a, **k: real_get_file(*a, **{**k, "file_hash": ours}))

    result = photosets.export("cifar10-catdog", tmp_path / "raw")
    assert (result.written, result.unchanged) == (11, 0)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["cat", "dog"]  # the 0 labels stay out
    for name, images in expected.items():
        files = sorted((tmp_path / "raw" / name).iterdir())
        assert [p.name for p in files] == [f"{name}_{i:05d}.png" for i in range(len(images))]
        for path, pixels in zip(files, images, strict=True):
            assert np.array_equal(_pixels(path), pixels)  # (32, 32, 3) RGB, channels in order


@pytest.mark.usefixtures("no_network")
def test_cifar10_archive_that_is_not_the_real_one_is_named_as_such(
    keras_home: Path, tmp_path: Path, cifar_archive: tuple[Path, dict[str, list[Any]]]
) -> None:
    cached = _cache_archive(keras_home, cifar_archive[0])
    with pytest.raises(DownloadUnavailable) as caught:
        photosets.export("cifar10-catdog", tmp_path / "raw")
    assert str(caught.value) == (
        "--dataset cifar10-catdog: CIFAR-10: Keras could not download it (Connection refused) "
        "(cifar-10-batches-py-target_archive was there but is not the file Keras knows: Keras removed it). "
        "On a machine with a network, download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
        f"and save it as {cached}"
    )
    assert not cached.exists()


@pytest.mark.slow
def test_demo_data_offline_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """The real command, in a process started with KERAS_HOME (what a user sets) and a proxy
    that refuses connections (offline on any machine)."""
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "https_proxy": dead, "http_proxy": dead}
    (tmp_path / "keras").mkdir()
    command: list[str | Path] = [Path(sys.executable).with_name("imgclf"), "demo-data", "--out", "raw"]
    command += ["--dataset", "cifar10-catdog"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == DownloadUnavailable.exit_code == 2
    assert done.stderr.strip().splitlines() == [
        "error: --dataset cifar10-catdog: CIFAR-10: Keras could not download it (Connection refused). On a "
        "machine with a network, download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and save it "
        f"as {tmp_path / 'keras' / 'datasets' / 'cifar-10-batches-py-target_archive'}"
    ]


def test_demo_data_refuses_classes_for_a_photo_set(tmp_path: Path) -> None:
    done = imgclf("demo-data", "--dataset", "fashion-mnist", "--classes", "cat,dog", "--out", "raw", cwd=tmp_path)
    assert done.returncode == DemoDataError.exit_code
    assert done.stderr.strip() == "error: --classes: only for --dataset animal-mnist; fashion-mnist exports all it has"
    assert not (tmp_path / "raw").exists()
