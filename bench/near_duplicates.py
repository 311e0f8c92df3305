"""How validate.near_duplicate_distance was chosen: what each distance groups, right and wrong.

For each image set and distance (bits of validate's 64-bit pHash, data/looks.py):

* false groups: the sets hold no planted copy, so what the distance groups beyond identical
  bytes is pictures pHash finds alike: how many images end in a group, the largest group
  (groups chain: every pair within the distance joins), and how many images a group
  spanning two classes would exclude as label_conflict;
* recall: for a sample of 200 pictures, the share of copies grouped with their original,
  per kind of copy: re-encoded (JPEG quality 50), resized to half, mirrored + re-encoded +
  resized to 3/4, and crops (a share of one side, or of every side).

Every copy goes through validate's own path (imaging.inspect_bytes at the reduced decode,
then looks.look), and pairs through nearduplicates.near_pairs and components, each image
querying with its own, mirrored and trimmed hashes (looks.Look.queries) as validate does.

The sets: the demo's 2000 Animal-MNIST silhouettes (28x28 grey, cat/dog), photogen's
photo-like catdog pictures (bench/photogen.py, 120-640 px, 1000) and the validate
benchmark's 400x300 photo-like JPEGs (bench/validate_speed.py, 1000). About a minute on 2 cores:

    uv run --frozen python bench/near_duplicates.py
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from imgclf.data import demo, nearduplicates
from imgclf.data.imaging import Inspected, Limits, inspect_bytes
from imgclf.data.looks import Look, look
from imgclf.params import Validate

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import photogen  # noqa: E402
import validate_speed  # noqa: E402

WORK = BENCH / ".work" / "near_duplicates"
LIMITS = Limits(1, Validate().max_side, Validate().max_pixels)  # a demo copy at half size is 14 px
DISTANCES = (2, 4, 6, 8)
SAMPLE = 200


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format=fmt, **options)
    return out.getvalue()


def crop(left: float, top: float, right: float, bottom: float) -> Callable[[Image.Image], bytes]:
    def cut(image: Image.Image) -> bytes:
        w, h = image.size
        box = (round(w * left), round(h * top), w - round(w * right), h - round(h * bottom))
        return encode(image.crop(box), "PNG")

    return cut


COPIES: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg q50": lambda im: encode(im, "JPEG", quality=50),
    "half size": lambda im: encode(im.resize((max(1, im.width // 2), max(1, im.height // 2))), "PNG"),
    "mirrored+": lambda im: encode(
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((im.width * 3 // 4, im.height * 3 // 4)),
        "JPEG",
        quality=70,
    ),
    "crop 2% side": crop(0.02, 0, 0, 0),
    "crop 3% side": crop(0.03, 0, 0, 0),
    "crop 5% side": crop(0.05, 0, 0, 0),
    "crop 1.2% all": crop(0.012, 0.012, 0.012, 0.012),
    "crop 2.5% all": crop(0.025, 0.025, 0.025, 0.025),
}


def seen(data: bytes) -> Look:
    found = inspect_bytes(data, LIMITS, look)
    assert isinstance(found, Inspected) and found.look is not None
    return found.look


def sets() -> dict[str, Path]:
    folders = {"demo": WORK / "demo", "photogen": WORK / "photogen", "jpeg400": WORK / "jpeg400"}
    if not folders["demo"].exists():
        demo.export(demo.DEFAULT_CLASSES, folders["demo"])
    if not folders["photogen"].exists():
        photogen.generate(folders["photogen"], ("cat", "dog"), 500)
    if not folders["jpeg400"].exists():
        for i in range(1000):
            label = ("cat", "dog")[i % 2]
            (folders["jpeg400"] / label).mkdir(parents=True, exist_ok=True)
            (folders["jpeg400"] / label / f"{i:04d}.jpg").write_bytes(validate_speed.photo_jpeg(i))
    return folders


def false_groups(looks: list[Look], labels: list[str], distance: int) -> tuple[int, int, int]:
    """Images in groups, the largest group, images in groups under two classes."""
    hashes = np.array([s.phash for s in looks], np.uint64)
    extra = np.array([q for s in looks for q in s.queries], np.uint64)  # as validate: mirrored, trimmed
    owners = np.array([i for i, s in enumerate(looks) for _ in s.queries], np.int64)
    pairs = nearduplicates.near_pairs(hashes, extra, distance, owners)
    groups = nearduplicates.components(len(looks), pairs)
    sizes = np.bincount(groups)
    in_groups = sizes[groups] > 1
    conflicts = 0
    for group in np.unique(groups[in_groups]):
        members = np.flatnonzero(groups == group)
        if len({labels[i] for i in members}) > 1:
            conflicts += len(members)
    return int(in_groups.sum()), int(sizes.max()), conflicts


def main() -> None:
    started = time.perf_counter()
    print(f"near-duplicate distance: what each groups (default {Validate().near_duplicate_distance})")
    for name, folder in sets().items():
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        labels = [p.relative_to(folder).parts[0] for p in files]
        datas = [p.read_bytes() for p in files]
        looks = [seen(d) for d in datas]
        rng = np.random.default_rng(0)
        sample = rng.choice(len(files), min(SAMPLE, len(files)), replace=False)
        # Copy -> (its original's look, the copy's look), per kind.
        pairs: dict[str, list[tuple[Look, Look]]] = {kind: [] for kind in COPIES}
        for i in sample:
            with Image.open(io.BytesIO(datas[i])) as opened:
                picture = ImageOps.exif_transpose(opened).convert("RGB")
            for kind, make in COPIES.items():
                pairs[kind].append((looks[i], seen(make(picture))))
        print(f"\n== {name}: {len(files)} images, {len(sample)} of them copied")
        print(
            f"  {'distance':>8} {'grouped':>8} {'largest':>8} {'conflicts':>9}  recall: "
            + " ".join(f"{k:>13}" for k in COPIES)
        )
        for distance in DISTANCES:
            grouped, largest, conflicts = false_groups(looks, labels, distance)
            recall = []
            for kind in COPIES:
                close = [
                    min(int(h ^ copy.phash).bit_count() for h in (original.phash, *original.queries)) <= distance
                    for original, copy in pairs[kind]
                ]
                recall.append(f"{np.mean(close):13.2f}")
            print(f"  {distance:>8} {grouped:>8} {largest:>8} {conflicts:>9}          " + " ".join(recall))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
