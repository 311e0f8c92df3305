"""Scanning the raw folder: every candidate file, probed and de-duplicated into manifest rows.

Reads files (in a process pool for large folders) and writes nothing. The class of a
file is its first-level folder; the folder's other levels are just organisation.

A path that is not UTF-8 (b'caf\\xe9.jpg' from a Latin-1 export) is excluded as
``bad_filename`` without being read, and recorded escaped (manifest.escape_name): the
manifest, MLflow and DVC (which cannot hash such a folder) all need UTF-8 names, and
an escaped name that some later stage failed to unescape would open the wrong file.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

from imgclf.data.imaging import Limits, Probe, Reason, probe
from imgclf.data.looks import Look, hex64, look, quality_warnings
from imgclf.data.manifest import EXCLUDED, OK, ManifestRow, escape_name, is_utf8
from imgclf.progress import track

log = logging.getLogger(__name__)

_CLUTTER = frozenset({"thumbs.db", "desktop.ini"})  # plus every dot-file: .DS_Store, ._*, .gitkeep
_IN_PROCESS_BELOW = 256  # files; fewer are probed faster than worker processes start


def is_clutter(name: str) -> bool:
    """OS and tool droppings that are never images: skipped, but counted."""
    return name.startswith(".") or name.lower() in _CLUTTER


def list_candidates(raw: Path, skipped: Counter[str]) -> list[str]:
    """Paths (POSIX, relative to ``raw``, sorted) of every file under a class folder.

    Nested folders are walked; symlinked folders are not followed but listed, so
    that probe names them. Clutter, top-level files and class folders that link
    outside ``raw`` are counted in ``skipped`` instead.
    """
    root = raw.resolve()
    found: list[str] = []
    for entry in sorted(os.scandir(raw), key=lambda e: e.name):
        if is_clutter(entry.name):
            skipped["clutter"] += 1
        elif not entry.is_dir(follow_symlinks=True):
            skipped["top_level"] += 1
        elif entry.is_symlink() and not Path(os.path.realpath(entry.path)).is_relative_to(root):
            skipped["symlink_outside"] += 1
            log.warning("class folder %s links outside %s; skipped", entry.name, raw)
        else:
            found.extend(_walk_class(Path(entry.path), raw, skipped))
    return sorted(found)


def _walk_class(folder: Path, raw: Path, skipped: Counter[str]) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        for name in list(dirnames):
            if is_clutter(name):
                skipped["clutter"] += 1
                dirnames.remove(name)
            elif (here / name).is_symlink():  # os.walk does not descend into it
                yield (here / name).relative_to(raw).as_posix()
        for name in filenames:
            if is_clutter(name):
                skipped["clutter"] += 1
            else:
                yield (here / name).relative_to(raw).as_posix()


def probe_all(raw: Path, paths: list[str], limits: Limits, workers: int) -> Iterator[Probe]:
    """Probe each file, in order, in ``workers`` processes (0 = one per core), with its Look."""
    root = raw.resolve()
    files = (raw / p for p in paths)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(paths) < _IN_PROCESS_BELOW:
        yield from (probe(f, root, limits, look) for f in files)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # Chunks keep inter-process traffic low; only paths and small Probe records cross.
        yield from pool.map(partial(probe, root=root, limits=limits, look=look), files, chunksize=64)


def resolve_duplicates(
    rows: Iterable[ManifestRow], distance: int | None = None, looks: Mapping[str, Look] | None = None
) -> list[ManifestRow]:
    """Group copies and near-duplicates, and exclude what cannot be trusted.

    The usable images whose bytes are the same, or (``distance`` not None) whose perceptual
    hashes differ in at most ``distance`` bits, directly or through one image's query hashes
    (mirrored, trimmed), form a group:
    every pair so linked, through any chain. Each member of a group records its key, the
    smallest sha256 among its members, in ``group`` (split keeps a group together by it).
    A group under two or more classes excludes every member (``label_conflict``: nobody
    knows which label is right); within one class every member is kept, except repeated
    bytes: the first path in sorted order is kept and the rest are ``duplicate``.

    Args:
        looks: path -> the image's Look, whose extra hashes (Look.queries: mirrored,
            trimmed) find mirrored and cropped copies; without it only the hashes are compared.
    """
    import numpy as np

    from imgclf.data.nearduplicates import components, near_pairs

    rows = list(rows)
    usable = [i for i, row in enumerate(rows) if row.status == OK]
    shas = sorted({rows[i].sha256 for i in usable})
    # Identical bytes are linked whatever the distance: through their content hash as a node.
    content = {sha: len(usable) + k for k, sha in enumerate(shas)}
    links = [np.array([(k, content[rows[i].sha256]) for k, i in enumerate(usable)], np.int64).reshape(-1, 2)]
    if distance is not None and usable:
        hashes = np.array([int(rows[i].phash, 16) for i in usable], np.uint64)
        # Streamed from the Looks into the arrays: gathering each image's queries tuple
        # first would add about 10 MB at validate's peak for 100 000 images.
        found = [(looks or {}).get(rows[i].path) for i in usable]
        counts = np.fromiter((len(f.queries) if f else 0 for f in found), np.int64, len(found))
        asked = itertools.chain.from_iterable(f.queries for f in found if f)
        extra = np.fromiter(asked, np.uint64, int(counts.sum()))
        links.append(near_pairs(hashes, extra, distance, np.repeat(np.arange(len(usable)), counts)))
    members: defaultdict[int, list[int]] = defaultdict(list)
    for k, component in enumerate(components(len(usable) + len(shas), np.concatenate(links))[: len(usable)]):
        members[int(component)].append(usable[k])
    resolved = list(rows)
    for group in members.values():
        if len(group) < 2:
            continue
        key = min(rows[i].sha256 for i in group)
        conflict = len({rows[i].label for i in group}) > 1
        seen: set[str] = set()
        for i in group:  # in path order
            row = replace(rows[i], group=key)
            if conflict:
                row = replace(row, status=EXCLUDED, reason=Reason.LABEL_CONFLICT.value)
            elif row.sha256 in seen:
                row = replace(row, status=EXCLUDED, reason=Reason.DUPLICATE.value)
            seen.add(row.sha256)
            resolved[i] = row
    return resolved


def exclude_listed(rows: Iterable[ManifestRow], listed: Collection[str]) -> list[ManifestRow]:
    """Rows whose path is ``listed`` (validate.exclude_paths) excluded as ``excluded_by_user``,
    whatever they are otherwise: the user's decision comes before any grouping."""
    return [
        replace(row, status=EXCLUDED, reason=Reason.EXCLUDED_BY_USER.value) if row.path in listed else row
        for row in rows
    ]


def scan(
    raw: Path, limits: Limits, workers: int = 0, distance: int | None = None, exclude: Collection[str] = ()
) -> tuple[list[ManifestRow], Counter[str]]:
    """The manifest of ``raw`` and the counts of what was skipped; reads files, writes nothing.

    Args:
        distance: validate.near_duplicate_distance (resolve_duplicates); None: copies only.
        exclude: manifest paths to exclude as ``excluded_by_user`` (validate.exclude_paths).
    """
    skipped: Counter[str] = Counter()
    paths = list_candidates(raw, skipped)
    readable = [path for path in paths if is_utf8(path)]
    if len(readable) < len(paths):
        log.warning(
            "%d file names under %s are not UTF-8 (excluded as bad_filename); rename them, "
            "e.g. convmv -f latin1 -t utf8 -r --notest: DVC cannot hash the folder either",
            len(paths) - len(readable),
            raw,
        )
    probes = track(probe_all(raw, readable, limits, workers), len(readable), "validate")
    found = dict(zip(readable, probes, strict=True))
    rows = [_row(escape_name(path), found.get(path, Probe(Reason.BAD_FILENAME))) for path in paths]
    looks = {path: probe.look for path, probe in found.items() if probe.look is not None}
    return resolve_duplicates(exclude_listed(rows, frozenset(exclude)), distance, looks), skipped


def _row(path: str, found: Probe) -> ManifestRow:
    seen = found.look
    return ManifestRow(
        path=path,
        label=path.split("/", 1)[0],
        status=OK if found.reason is None else EXCLUDED,
        reason="" if found.reason is None else found.reason.value,
        sha256=found.sha256,
        width=found.width,
        height=found.height,
        mode=found.mode,
        bytes=found.bytes,
        phash="" if seen is None else hex64(seen.phash),
        warnings="" if seen is None else ";".join(quality_warnings(found.width, found.height, seen)),
    )
