"""split stage: assign every ok image of the manifest to train, val or test.

An image's split is a function of its key and ``split.seed``/``val``/``test`` only. The
key is its content hash, or for a member of a group of near-duplicates (the manifest's
``group``, from validate) the group's key: the smallest content hash among its members.
So a group never spans two splits, identical bytes never sit in two splits, and adding
or removing other images never moves an image, with one exception, where the group
rule wins: an image that a new image joins into a group (or whose group a new image
joins to another) takes the group's split, which is its own unless the newcomer has the
smallest content hash. Class proportions follow from the hash being uniform; the stage
checks them against ``split.tolerance`` wherever a class is large enough for the check
to mean something, counting a group's weight in its variance.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from imgclf.atomic import write_json
from imgclf.data.manifest import OK, ManifestRow, read_manifest
from imgclf.errors import StageInputError
from imgclf.params import Params, Split
from imgclf.tables import write_csv

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ("path", "label", "split")
# A class's realised fraction is checked only when `tolerance` is at least this many
# binomial standard deviations: below that, a hash split of so few images can miss
# the target by chance, and the report shows the fractions instead.
_CHECK_SIGMAS = 4.0


@dataclass(frozen=True)
class SplitRow:
    path: str
    label: str
    split: str
    group: str = ""  # the manifest's group: split.csv does not keep it


@dataclass(frozen=True)
class SplitResult:
    rows: list[SplitRow]
    report: dict[str, Any]


def assign(sha256: str, cfg: Split) -> str:
    """The split of one image: its salted hash as a uniform number in [0, 1).

    Thresholds are nested (test first), so raising ``val`` moves images only
    between train and val, never out of test.
    """
    digest = hashlib.sha256(f"{cfg.seed}:{sha256}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if u < cfg.test else "val" if u < cfg.test + cfg.val else "train"


def split_rows(rows: list[ManifestRow], cfg: Split) -> list[SplitRow]:
    """Split the ok rows of a manifest, in manifest order: each by its group's key, or its
    own content hash when it is in no group."""
    result = []
    splits_of: defaultdict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.status == OK:
            key = row.group or row.sha256
            split = assign(key, cfg)
            splits_of[key].add(split)
            splits_of[row.sha256].add(split)
            result.append(SplitRow(row.path, row.label, split, row.group))
    # By construction a key has one split; this guards against a broken assign().
    leaked = [key for key, splits in splits_of.items() if len(splits) > 1]
    if leaked:
        raise StageInputError(f"content hash or group {leaked[0]} would be in more than one split")
    return result


def fractions(rows: list[SplitRow], cfg: Split) -> tuple[dict[str, Any], list[str]]:
    """Per-class fractions of each split, and the classes whose fractions miss the target.

    A group moves as one: a class's fraction varies as if it had ``n**2 / sum(size**2)``
    independent images (its effective number), which is what the check is judged on.
    """
    counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    sizes: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        counts[row.label][row.split] += 1
        sizes[row.label][row.group or row.path] += 1
    report: dict[str, Any] = {}
    misses = []
    for label in sorted(counts):
        n = sum(counts[label].values())
        effective = n * n / sum(size * size for size in sizes[label].values())
        report[label] = {s: round(counts[label][s] / n, 4) for s in SPLITS}
        for split, target in (("val", cfg.val), ("test", cfg.test)):
            realised = counts[label][split] / n
            sigma = math.sqrt(target * (1 - target) / effective)
            if abs(realised - target) > cfg.tolerance and cfg.tolerance >= _CHECK_SIGMAS * sigma:
                misses.append(f"{label}: {split} fraction {realised:.3f} vs {target}")
    return report, misses


def run(params: Params) -> SplitResult:
    """Split the validated manifest and write ``paths.split`` and ``paths.split_report``."""
    report_path, manifest_path = params.path("validation_report"), params.path("manifest")
    if not report_path.exists() or not manifest_path.exists():
        raise StageInputError("no validated manifest: run `imgclf validate` first")
    validation = json.loads(report_path.read_text(encoding="utf-8"))
    if not validation.get("success"):
        raise StageInputError(
            f"{params.paths.validation_report} says validation failed: fix the data and rerun validate"
        )
    with manifest_path.open("rb") as manifest:
        if validation.get("manifest_sha256") != hashlib.file_digest(manifest, "sha256").hexdigest():
            raise StageInputError(
                f"{params.paths.validation_report} was not written for {params.paths.manifest}: rerun `imgclf validate`"
            )
    cfg = params.split
    rows = split_rows(read_manifest(manifest_path), cfg)
    by_class, misses = fractions(rows, cfg)
    if misses:
        raise StageInputError(
            f"split.tolerance ({cfg.tolerance}) exceeded: {'; '.join(misses)}. Change split.seed to draw another split"
        )
    grouped = [r for r in rows if r.group]
    report = {
        "counts": {s: sum(1 for r in rows if r.split == s) for s in SPLITS},
        # Near-duplicate groups (and copies) by split: each whole in one.
        "groups": {s: len({r.group for r in grouped if r.split == s}) for s in SPLITS},
        "grouped_images": {s: sum(1 for r in grouped if r.split == s) for s in SPLITS},
        "by_class": by_class,
    }
    write_csv(params.path("split"), ({"path": r.path, "label": r.label, "split": r.split} for r in rows), SPLIT_COLUMNS)
    write_json(params.path("split_report"), report)
    return SplitResult(rows=rows, report=report)
