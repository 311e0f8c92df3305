"""augment stage: the training files, and in offline mode their augmented variants.

Only the train split is touched: validation and test images are never augmented.
Offline mode applies the same Keras preprocessing layers that online mode puts inside
the model, so the two modes mean the same ranges; draws are seeded by ``augment.seed``
and made in a fixed order, so the output is the same from run to run.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from imgclf import owned
from imgclf.atomic import publish
from imgclf.data.imaging import load_rgb
from imgclf.errors import StageInputError
from imgclf.params import Params
from imgclf.progress import track
from imgclf.tables import read_csv, write_csv
from imgclf.training import autoconf

_BATCH = 64  # images of one size transformed together


@dataclass(frozen=True)
class TrainingFile:
    file: str  # relative to the project root: under paths.augmented, or the raw file itself
    label: str
    source: str  # the raw image, relative to paths.raw
    variant: int  # 0 = the original


@dataclass(frozen=True)
class AugmentResult:
    files: list[TrainingFile]


def run(params: Params) -> AugmentResult:
    split_csv = params.path("split")
    if not split_csv.exists():
        raise StageInputError(f"{params.paths.split}: not found; run `imgclf split` first")
    train = [(r["path"], r["label"]) for r in read_csv(split_csv) if r["split"] == "train"]
    out = params.path("augmented")
    owned.check(out, "paths.augmented")  # before the work: a folder of the user's there is an error, not a loss
    if params.augment.mode == "offline":
        # The ranges of augment.preset, as train resolves them for online mode (imgclf.training.autoconf).
        files = _write_variants(autoconf.resolve_from_manifest(params).params, train, out)
    else:
        owned.remove(out, "paths.augmented")
        owned.mark(out, "augment")
        # DVC's declared output must exist and not be empty; say why there are no images.
        (out / "README.txt").write_text(f"augment.mode is {params.augment.mode}: no files are written here.\n")
        files = [TrainingFile(f"{params.paths.raw}/{path}", label, path, 0) for path, label in train]
    write_csv(params.path("augment_list"), files, ("file", "label", "source", "variant"))
    return AugmentResult(files)


def _write_variants(params: Params, train: list[tuple[str, str]], out: Path) -> list[TrainingFile]:
    """Write originals and variants as PNG into a fresh folder that replaces ``out`` whole."""
    import keras
    import numpy as np
    from PIL import Image

    from imgclf.training.network import augmentation

    cfg, raw = params.augment, params.path("raw")
    layers = augmentation(cfg, cfg.seed)
    # At the training size, as train decodes the originals (imaging.load_rgb's DCT scaling).
    images = [(path, label, load_rgb((raw / path).read_bytes(), min_side=params.train.size)) for path, label in train]
    by_shape: defaultdict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, (_, _, pixels) in enumerate(images):
        by_shape[pixels.shape].append(index)

    variants: dict[int, list[np.ndarray]] = {i: [] for i in range(len(images))}
    batches = [idx[i : i + _BATCH] for _, idx in sorted(by_shape.items()) for i in range(0, len(idx), _BATCH)]
    for batch in track(batches, len(batches), "augment"):
        stack = np.stack([images[i][2] for i in batch])
        for _ in range(cfg.variants):
            drawn = keras.ops.convert_to_numpy(layers(stack.astype("float32"), training=True))
            for i, image in zip(batch, np.clip(np.rint(drawn), 0, 255).astype("uint8"), strict=True):
                variants[i].append(image)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    publish(staging)
    files = []
    try:
        owned.mark(staging, "augment")
        for index, (path, label, original) in enumerate(images):
            # A name from the source path: unique, stable, and free of the user's odd characters.
            stem = hashlib.sha256(path.encode()).hexdigest()[:16]
            (staging / label).mkdir(exist_ok=True)
            for variant, pixels in enumerate([original, *variants[index]]):
                name = f"{label}/{stem}_{variant}.png"
                Image.fromarray(pixels).save(staging / name, format="PNG", compress_level=1)
                files.append(TrainingFile(f"{params.paths.augmented}/{name}", label, path, variant))
        owned.remove(out, "paths.augmented")
        staging.replace(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files
