"""The built-in demo data set: classes of Animal-MNIST exported as PNG folders.

Animal-MNIST (PyPI ``animal-mnist``, MIT) ships 10 classes x 1000 grayscale 28x28
silhouettes as gzipped pickles of numpy arrays. A pickle can run arbitrary code, so
it is read with an unpickler that admits only numpy's array reconstruction.
"""

from __future__ import annotations

import gzip
import io
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from imgclf.errors import DemoDataError

# The package's label order: label i is CLASSES[i].
CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
DEFAULT_CLASSES = ("cat", "dog")
# DVC's hash of the DEFAULT_CLASSES export (data/raw.dvc as shipped): a fresh clone whose
# recorded data version is this can rebuild it exactly, without a DVC remote.
DEFAULT_DVC_MD5 = "0a8b0a105c5382e6145ee4ff599c0916.dir"
_DATA_FILE = "animal_data_version_3.gz"  # (10000, 28, 28) uint8
_LABEL_FILE = "animal_label_version_3.gz"  # (10000,) int64


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        import numpy as np
        from numpy._core.multiarray import _reconstruct  # type: ignore[import-not-found,unused-ignore]

        allowed = {
            # Pickles written by numpy 1.x name numpy.core; numpy 2 moved it to numpy._core.
            ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the demo data")
        return allowed[(module, name)]


def load_arrays(data: bytes) -> Any:
    """Unpickle gzipped numpy arrays with the restricted unpickler."""
    return _ArrayUnpickler(io.BytesIO(gzip.decompress(data))).load()


def parse_classes(spec: str) -> tuple[str, ...]:
    """``"cat,dog"`` or ``"all"`` into class names, in the data set's label order."""
    if spec.strip() == "all":
        return CLASSES
    wanted = {name.strip() for name in spec.split(",") if name.strip()}
    unknown = sorted(wanted - set(CLASSES))
    if unknown or len(wanted) < 2:
        problem = f"unknown class {', '.join(unknown)}" if unknown else "at least two classes are needed"
        raise DemoDataError(f"--classes: {problem}; choose from {', '.join(CLASSES)} or 'all'")
    return tuple(name for name in CLASSES if name in wanted)


@dataclass(frozen=True)
class DemoResult:
    out: Path
    written: int  # new files
    unchanged: int  # files that were already there, byte-identical


def export(classes: tuple[str, ...], out: Path) -> DemoResult:
    """Write ``out/<class>/<class>_<nnnn>.png`` for every image of ``classes``.

    Byte-identical from run to run. Files already present with the same bytes are
    left alone; a present file with other bytes stops the export before anything is
    written, since it would be a user's image.
    """
    package = resources.files("animal_mnist") / "data" / "Animal_MNIST"
    images = load_arrays(package.joinpath(_DATA_FILE).read_bytes())
    labels = load_arrays(package.joinpath(_LABEL_FILE).read_bytes())

    planned: list[tuple[Path, bytes]] = []
    for name in classes:
        for index, pixels in enumerate(images[labels == CLASSES.index(name)]):
            planned.append((out / name / f"{name}_{index:04d}.png", png(pixels)))
    return write_new(planned, out)


def png(pixels: Any) -> bytes:
    """(height, width) or (height, width, 3) uint8 as PNG bytes that depend only on the pixels."""
    from PIL import Image

    buffer = io.BytesIO()
    # No metadata and a fixed compression level: the bytes depend only on the pixels.
    Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def write_new(planned: list[tuple[Path, bytes]], out: Path) -> DemoResult:
    """Write each (path, bytes) that is not there yet; refuse, before writing anything, if
    any path holds other bytes (a user's image)."""
    clashes = [path for path, data in planned if path.exists() and path.read_bytes() != data]
    if clashes:
        raise DemoDataError(
            f"{clashes[0]} exists with other content; refusing to overwrite ({len(clashes)} such files)"
        )
    written = 0
    for path, data in planned:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written += 1
    return DemoResult(out=out, written=written, unchanged=len(planned) - written)
