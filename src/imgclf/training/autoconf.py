"""Settings that read the data: ``train.image_size: auto``, ``augment.preset: auto`` and
small_cnn's ``model.stem``, ``model.blocks`` and ``model.filters`` left null.

A pure core: from the validated manifest's image sizes and modes to concrete params.
The train and augment stages resolve their params here before anything else, so every
later step (the network, the input pipeline, the checkpoint fingerprint, the MLflow
params, classes.json and the model card) sees numbers, never ``auto``. A value set in
params.yaml always wins; what ``auto`` chose is printed by ``imgclf train``.

The rules (figures in the README's Speed section):

- A folder is *photos* when the median image's short side is over ``SMALL_SIDE`` px,
  or most images are in colour; else *silhouettes* (the demo: 28x28 grey).
- image_size: silhouettes and other small images keep their own median short side
  (upscaling a 28-px image gains nothing and costs time); photos get ``PHOTO_SIZE``,
  or their own short side when that is smaller.
- model.stem: a stride-2 stem from ``STEM_FROM`` px; model.blocks: as many as bring the
  feature map down to ``FINAL_MAP`` px or less; model.filters: ``FILTERS`` of the kind.
- augment: the preset's ranges, for each range not set in params.yaml.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from imgclf.data.manifest import ManifestRow, read_manifest
from imgclf.errors import StageInputError
from imgclf.params import AUGMENT_RANGES, Params
from imgclf.training.network import min_input_size

Kind = Literal["silhouette", "photo"]

SMALL_SIDE = 64  # px: a median short side up to this is a small image, kept at its own size
PHOTO_SIZE = 128  # px: the training size of photo folders
STEM_FROM = 64  # px: small_cnn's stride-2 stem from this input size (model.stem: null)
FINAL_MAP = 4  # px: small_cnn's blocks (model.blocks: null) halve the map down to this or less
COLOUR_MODES = frozenset({"RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA", "RGBX"})

# Measured: on the demo silhouettes flip is harmless and a 0.1 shift cost 2 points of
# F1. On photos (photogen's catdog, 3 split seeds, 24 filters) rotation 0.05 and zoom 0.1
# cost a third of the training time (each resamples every image) for no F1: test F1
# 0.952-0.959 with them, 0.956-0.966 without; flip and colour jitter stay. Set
# augment.rotation and augment.zoom for folders whose pictures are taken at any angle or
# distance. README, Speed.
PRESETS: dict[Kind, dict[str, float | bool]] = {
    "silhouette": {"flip": True, "rotation": 0.0, "zoom": 0.0, "shift": 0.0, "brightness": 0.0, "contrast": 0.0},
    "photo": {"flip": True, "rotation": 0.0, "zoom": 0.0, "shift": 0.0, "brightness": 0.1, "contrast": 0.1},
}
# small_cnn's first-block filters (model.filters: null): the demo's 32; on photos at 128 px
# 24 trained 35 % faster than 32 with the same test F1 (catdog, 3 split seeds).
FILTERS: dict[Kind, int] = {"silhouette": 32, "photo": 24}


@dataclass(frozen=True)
class DataShape:
    """What the choice reads from the usable images."""

    images: int
    short_side: int  # median of min(width, height)
    colour: float  # fraction of images in a colour mode

    @property
    def kind(self) -> Kind:
        return "photo" if self.short_side > SMALL_SIDE or self.colour > 0.5 else "silhouette"


@dataclass(frozen=True)
class Resolved:
    params: Params  # with image_size, model.stem, model.blocks and every augment range set
    choices: list[str]  # what auto saw, then one line per value it chose: "train.image_size: auto -> 128 (...)"


def describe(rows: Sequence[ManifestRow]) -> DataShape:
    """The usable images' median short side and colour fraction."""
    ok = [r for r in rows if r.status == "ok"]
    if not ok:
        raise StageInputError("no usable image in the manifest: run `imgclf validate` and check its report")
    short = round(statistics.median(min(r.width, r.height) for r in ok))
    colour = sum(r.mode in COLOUR_MODES for r in ok) / len(ok)
    return DataShape(images=len(ok), short_side=short, colour=colour)


def resolve(params: Params, shape: DataShape) -> Resolved:
    """``params`` with every ``auto`` and unset augment range filled in from ``shape``."""
    kind = shape.kind
    choices: list[str] = []
    train = params.train
    if train.image_size == "auto":
        size = max(16, shape.short_side) if kind == "silhouette" else min(PHOTO_SIZE, shape.short_side)
        why = "their own size" if size == shape.short_side else f"for {kind}s"
        if params.model.arch == "transfer" and size < (smallest := min_input_size(params.model.backbone)):
            size, why = smallest, f"the smallest input of {params.model.backbone}"
        choices.append(f"train.image_size: auto -> {size} ({why})")
        train = train.model_copy(update={"image_size": size})
    model = params.model
    if model.stem is None:
        stem = train.size >= STEM_FROM
        if model.arch == "small_cnn":
            choices.append(f"model.stem: auto -> {str(stem).lower()} ({'from' if stem else 'under'} {STEM_FROM} px)")
        model = model.model_copy(update={"stem": stem})
    if model.filters is None:
        if model.arch == "small_cnn":
            choices.append(f"model.filters: auto -> {FILTERS[kind]} (for {kind}s)")
        model = model.model_copy(update={"filters": FILTERS[kind]})
    if model.blocks is None:
        side = train.size // 2 if model.stem else train.size
        blocks = max(1, min(6, math.ceil(math.log2(max(side, 2) / FINAL_MAP))))
        if model.arch == "small_cnn":
            choices.append(f"model.blocks: auto -> {blocks} ({side} px down to {side / 2**blocks:g} px)")
        model = model.model_copy(update={"blocks": blocks})
    augment = params.augment
    preset: Kind = kind if augment.preset == "auto" else augment.preset
    unset = {key: PRESETS[preset][key] for key in AUGMENT_RANGES if getattr(augment, key) is None}
    if unset:
        source = f"auto -> {preset}" if augment.preset == "auto" else preset
        settings = ", ".join(f"{key} {value}" for key, value in unset.items() if value)
        choices.append(f"augment.preset: {source} ({settings or 'no transform'})")
        augment = augment.model_copy(update={**unset, "preset": preset})
    if choices:
        seen = f"{shape.images} images, median short side {shape.short_side} px, {shape.colour:.0%} in colour"
        choices.insert(0, f"data: {seen}: {kind}s")
    resolved = params.model_copy(update={"train": train, "model": model, "augment": augment})
    return Resolved(params=resolved, choices=choices)


def resolve_from_manifest(params: Params) -> Resolved:
    """``resolve`` on the manifest at ``paths.manifest`` (written by the validate stage)."""
    manifest = params.path("manifest")
    if not manifest.exists():
        raise StageInputError(f"{params.paths.manifest} not found: run `imgclf validate` first")
    return resolve(params, describe(read_manifest(manifest)))
