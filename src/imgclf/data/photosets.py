"""Real photo sets from keras.datasets, exported as PNG class folders like the demo set.

``cifar10-catdog``: CIFAR-10's cat (label 3) and dog (label 5) photos, 32x32 RGB, 6000 of
each (its train and test parts together: imgclf makes its own split). ``fashion-mnist``:
Fashion-MNIST's 10 classes, 28x28 grey, 7000 of each.

Both come through ``keras.datasets``' own loaders, so they use its download cache
(``~/.keras/datasets/``, or $KERAS_HOME): downloaded once, then read offline. The CIFAR
batches are pickles; Keras's own loader reads them (Keras 3.15's ``load_batch`` uses an
unpickler that admits numpy arrays only), from the archive Keras downloaded from the CIFAR
authors' site and checked against the sha256 it knows. imgclf unpickles nothing here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgclf.data.demo import DemoResult, png, write_new
from imgclf.training.downloads import Wanted, fetching

DEFAULT = "animal-mnist"  # the built-in set (imgclf.data.demo), the only one that needs no download
_FASHION = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# Fashion-MNIST's label names, in label order, as keras.datasets.fashion_mnist documents them.
FASHION_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def folder_name(label: str) -> str:
    """A label as a folder name that is valid and the same on every filesystem: lower
    case letters, digits, '-' and '_' (``T-shirt/top`` -> ``t-shirt_top``)."""
    return re.sub(r"[^a-z0-9-]+", "_", label.lower()).strip("_")


@dataclass(frozen=True)
class PhotoSet:
    title: str
    subdir: str  # get_file's cache_subdir in the loader
    files: tuple[Wanted, ...]  # what the loader fetches, as its cache names them
    classes: dict[int, str]  # label -> class folder, for the labels exported


# File names and origins from keras/src/datasets/{cifar10,fashion_mnist}.py (Keras 3.15).
PHOTO_SETS = {
    "cifar10-catdog": PhotoSet(
        "CIFAR-10",
        "datasets",
        # get_file(fname="cifar-10-batches-py-target", extract=True) keeps the download as
        # "<fname>_archive" and checks its sha256.
        (
            Wanted(
                "cifar-10-batches-py-target_archive", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", True
            ),
        ),
        {3: "cat", 5: "dog"},
    ),
    "fashion-mnist": PhotoSet(
        "Fashion-MNIST",
        "datasets/fashion-mnist",
        tuple(
            Wanted(name, _FASHION + name)
            for name in (
                "train-labels-idx1-ubyte.gz",
                "train-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz",
            )
        ),
        {label: folder_name(name) for label, name in enumerate(FASHION_LABELS)},
    ),
}
DATASETS = (DEFAULT, *PHOTO_SETS)


def load(dataset: str) -> tuple[Any, Any]:
    """All images of ``dataset``, train then test, and their labels, through keras.datasets.

    Returns:
        (n, height, width) or (n, height, width, 3) uint8 images, and (n,) integer labels.

    Raises:
        DownloadUnavailable: not in Keras's cache and not downloadable; says what to put where.
    """
    import keras
    import numpy as np

    source = PHOTO_SETS[dataset]
    loader = keras.datasets.cifar10 if dataset == "cifar10-catdog" else keras.datasets.fashion_mnist
    with fetching(f"--dataset {dataset}: {source.title}", source.subdir, source.files):
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    return np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test]).reshape(-1)


def plan(images: Any, labels: Any, classes: dict[int, str], out: Path) -> list[tuple[Path, bytes]]:
    """``out/<class>/<class>_<nnnnn>.png`` and its bytes for each image of ``classes``, in
    data set order: the same arrays always give the same files."""
    return [
        (out / name / f"{name}_{index:05d}.png", png(pixels))
        for label, name in classes.items()
        for index, pixels in enumerate(images[labels == label])
    ]


def export(dataset: str, out: Path) -> DemoResult:
    """Export ``dataset``'s classes into ``out``; never overwrites a file with other content."""
    images, labels = load(dataset)
    return write_new(plan(images, labels, PHOTO_SETS[dataset].classes, out), out)
