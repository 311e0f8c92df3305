"""split stage: assign every ok image of the manifest to train, val or test.

An image's split is a function of its content hash and ``split.seed``/``val``/``test``
only, so adding or removing other images never moves it, and identical bytes can
never sit in two splits. Class proportions follow from the hash being uniform; the
stage checks them against ``split.tolerance`` wherever a class is large enough for
the check to mean something.
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
# A class's realised fraction is checked only when `tolerance` is at least this many
# binomial standard deviations: below that, a hash split of so few images can miss
# the target by chance, and the report shows the fractions instead.
_CHECK_SIGMAS = 4.0


@dataclass(frozen=True)
class SplitRow:
    path: str
    label: str
    split: str


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
    """Split the ok rows of a manifest, in manifest order."""
    result = []
    splits_of: defaultdict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.status == OK:
            split = assign(row.sha256, cfg)
            splits_of[row.sha256].add(split)
            result.append(SplitRow(row.path, row.label, split))
    # By construction a hash has one split; this guards against a broken assign().
    leaked = [sha for sha, splits in splits_of.items() if len(splits) > 1]
    if leaked:
        raise StageInputError(f"content hash {leaked[0]} would be in more than one split")
    return result


def fractions(rows: list[SplitRow], cfg: Split) -> tuple[dict[str, Any], list[str]]:
    """Per-class fractions of each split, and the classes whose fractions miss the target."""
    counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        counts[row.label][row.split] += 1
    report: dict[str, Any] = {}
    misses = []
    for label in sorted(counts):
        n = sum(counts[label].values())
        report[label] = {s: round(counts[label][s] / n, 4) for s in SPLITS}
        for split, target in (("val", cfg.val), ("test", cfg.test)):
            realised = counts[label][split] / n
            sigma = math.sqrt(target * (1 - target) / n)
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
    report = {"counts": {s: sum(1 for r in rows if r.split == s) for s in SPLITS}, "by_class": by_class}
    write_csv(params.path("split"), rows, ("path", "label", "split"))
    write_json(params.path("split_report"), report)
    return SplitResult(rows=rows, report=report)
