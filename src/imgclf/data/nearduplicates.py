"""Near-duplicate groups: images whose perceptual hashes differ in at most ``distance`` bits.

Every pair within the distance ends in one group (connected components), so that no two
near-duplicates can land in different splits. Pairs are found by multi-index hashing
(Norouzi et al., "Fast search in Hamming space with multi-index hashing", CVPR 2012),
never by comparing all pairs: the 64 bits are cut into ``m`` chunks, and two hashes
within ``distance`` bits agree within ``distance // m`` bits on at least one chunk
(pigeonhole). Each chunk indexes the hashes by its value in a counting table; each query
looks up every value within ``distance // m`` bits of its own chunk, and only those
candidates are compared whole. 100 000 random hashes are grouped in about a second
(bench/validate_speed.py).

A mirrored or cropped copy is found through the original's extra hashes (looks.Look.queries:
the mirrored image's, the trimmed images'): they are queried against the others' hashes
like the hash itself.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BITS = 64
_MAX_CHUNK = 22  # bits: a counting table of 4 M entries (32 MB), the widest chunk indexed
_BATCH = 1 << 16  # queries looked up at once: bounds the candidate arrays' memory


def near_pairs(
    hashes: np.ndarray, extra: np.ndarray, distance: int, extra_owners: np.ndarray | None = None
) -> np.ndarray:
    """Index pairs (i, j), i < j, of hashes within ``distance`` bits of each other, directly
    or through one image's extra query hashes (mirrored, trimmed: looks.Look.queries).

    Args:
        hashes: (n,) uint64, one perceptual hash per image.
        extra: (q,) uint64 more hashes each image looks for the others' hashes with; by
            default one per image (q = n), the hash of the image mirrored left to right.
        distance: the largest Hamming distance that makes two images near-duplicates.
        extra_owners: (q,) the image each of ``extra`` belongs to (default: 0 .. n-1).

    Returns:
        (p, 2) int64, each pair once, sorted. Equal hashes are linked to the first of them
        rather than pairwise, which connects the same groups with n pairs instead of n².
    """
    import numpy as np

    hashes, extra = np.asarray(hashes, np.uint64), np.asarray(extra, np.uint64)
    mine = np.arange(len(hashes)) if extra_owners is None else np.asarray(extra_owners, np.int64)
    unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    same = np.stack([first[inverse], np.arange(len(hashes))], axis=1)
    found = [same[same[:, 0] != same[:, 1]]]
    # The queries: each distinct hash (for its first image) and every image's extra hashes.
    queries = np.concatenate([unique, extra])
    owners = np.concatenate([first, mine])
    chunks, radius = plan(distance, len(unique), len(queries))
    for lo, hi in chunks:
        found.extend(_chunk_pairs(unique, first, queries, owners, lo, hi, radius, distance))
    pairs = np.concatenate(found).astype(np.int64) if found else np.zeros((0, 2), np.int64)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(np.sort(pairs, axis=1), axis=0)


def _chunk_pairs(
    index: np.ndarray,
    ids: np.ndarray,
    queries: np.ndarray,
    owners: np.ndarray,
    lo: int,
    hi: int,
    radius: int,
    distance: int,
) -> list[np.ndarray]:
    """Pairs whose bits lo..hi differ in at most ``radius`` and whose whole hashes in at most ``distance``."""
    import numpy as np

    width = hi - lo
    mask = np.uint64((1 << width) - 1)
    keys = ((index >> np.uint64(lo)) & mask).astype(np.int64)
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=1 << width)
    starts = np.cumsum(counts) - counts
    flips = [sum(1 << b for b in bits) for r in range(radius + 1) for bits in itertools.combinations(range(width), r)]
    found = []
    for begin in range(0, len(queries), _BATCH):
        batch = queries[begin : begin + _BATCH]
        own = ((batch >> np.uint64(lo)) & mask).astype(np.int64)
        for flip in flips:
            wanted = own ^ flip
            n = counts[wanted]
            total = int(n.sum())
            if not total:
                continue
            query = np.repeat(np.arange(len(batch)), n)
            # The k-th candidate of a query is the k-th hash of its bucket in sorted order.
            offset = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
            candidate = order[np.repeat(starts[wanted], n) + offset]
            close = np.bitwise_count(batch[query] ^ index[candidate]) <= distance
            found.append(np.stack([owners[begin + query[close]], ids[candidate[close]]], axis=1))
    return found


def plan(distance: int, indexed: int, queried: int) -> tuple[list[tuple[int, int]], int]:
    """The chunks (bit ranges) and the per-chunk radius that cost the fewest operations.

    Each chunk costs one lookup per query for every value within the radius, and one
    comparison per candidate; with hashes spread evenly a lookup finds
    ``indexed / 2**width`` candidates.
    """
    best: tuple[float, int] | None = None
    for m in range(math.ceil(BITS / _MAX_CHUNK), BITS + 1):
        radius = distance // m
        width = BITS // m  # the narrowest chunk: the most candidates
        lookups = sum(math.comb(math.ceil(BITS / m), r) for r in range(radius + 1))
        cost = m * lookups * queried * (1 + indexed / 2**width)
        if best is None or cost < best[0]:
            best = (cost, m)
    assert best is not None
    m = best[1]
    edges = [round(i * BITS / m) for i in range(m + 1)]
    return list(itertools.pairwise(edges)), distance // m


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """(n,) for each of ``n`` items linked by ``pairs``, the smallest item of its group.

    Union-find in whole arrays: each round hooks the root of every pair's larger end under
    the smaller root, then compresses every path to its root; a few rounds for any chain.
    (scipy's connected_components gives the same, for a 0.5 s import in every validate.)
    """
    import numpy as np

    labels = np.arange(n)
    if not len(pairs):
        return labels
    a, b = np.asarray(pairs[:, 0]), np.asarray(pairs[:, 1])
    while True:
        low = np.minimum(labels[a], labels[b])
        hooked = labels.copy()
        np.minimum.at(hooked, labels[a], low)
        np.minimum.at(hooked, labels[b], low)
        while not np.array_equal(jumped := hooked[hooked], hooked):
            hooked = jumped
        if np.array_equal(hooked, labels):
            return labels
        labels = hooked
