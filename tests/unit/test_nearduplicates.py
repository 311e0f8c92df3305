"""Near-duplicate search (data.nearduplicates) against brute force, and the Look of an image
(data.looks): imagehash's pHash bit for bit, and the quality warnings."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from images import rgb, scene
from imgclf.data import nearduplicates
from imgclf.data.looks import QualityWarning, hex64, look, quality_warnings


def planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random hashes, a third of them near copies (0-8 bits flipped) of another,
    some of those copies of the other's mirrored hash."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    mirrored = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    for i in rng.choice(n, n // 3, replace=False):
        source = int(rng.integers(n))
        flips = rng.choice(64, int(rng.integers(0, 9)), replace=False)
        base = mirrored[source] if rng.random() < 0.3 else hashes[source]
        hashes[i] = base ^ np.uint64(sum(1 << int(b) for b in flips))
    return hashes, mirrored


def brute_force(hashes: np.ndarray, mirrored: np.ndarray, distance: int) -> set[tuple[int, int]]:
    found = set()
    for i in range(len(hashes)):
        direct = np.bitwise_count(hashes ^ hashes[i]) <= distance
        flipped = np.bitwise_count(hashes ^ mirrored[i]) <= distance  # i mirrored, near j
        for j in np.flatnonzero(direct | flipped):
            if j != i:
                found.add((min(i, int(j)), max(i, int(j))))
    return found


@pytest.mark.parametrize("distance", [0, 3, 4, 6, 9])
def test_multi_index_search_finds_exactly_the_pairs_brute_force_finds(distance: int) -> None:
    hashes, mirrored = planted(600, seed=distance)
    pairs = nearduplicates.near_pairs(hashes, mirrored, distance)
    expected = brute_force(hashes, mirrored, distance)
    assert len(expected) > 20  # the planted copies are there to be found
    # Equal hashes are linked through their first image rather than pairwise: same groups.
    want = nearduplicates.components(len(hashes), np.array(sorted(expected), np.int64).reshape(-1, 2))
    got = nearduplicates.components(len(hashes), pairs)
    assert np.array_equal(np.unique(want, return_inverse=True)[1], np.unique(got, return_inverse=True)[1])
    first = set(np.unique(hashes, return_index=True)[1].tolist())  # each hash's first image
    between_firsts = {p for p in expected if p[0] in first and p[1] in first}
    assert between_firsts <= {tuple(p) for p in pairs.tolist()} <= expected


def test_several_extra_hashes_per_image_find_what_brute_force_finds() -> None:
    hashes, mirrored = planted(400, seed=11)
    rng = np.random.default_rng(12)
    trimmed = rng.integers(0, 2**64, size=(400, 4), dtype=np.uint64)
    for i in rng.choice(400, 60, replace=False):  # near copies of another image's trimmed hash
        hashes[i] = trimmed[int(rng.integers(400)), int(rng.integers(4))] ^ np.uint64(1 << int(rng.integers(64)))
    extra = np.concatenate([mirrored[:, None], trimmed], axis=1)  # as looks.Look.queries
    pairs = nearduplicates.near_pairs(hashes, extra.ravel(), 4, np.repeat(np.arange(400), 5))
    expected: set[tuple[int, int]] = set()
    for k in range(5):
        expected |= brute_force(hashes, extra[:, k], 4)
    assert len(expected) > 60
    want = nearduplicates.components(400, np.array(sorted(expected), np.int64).reshape(-1, 2))
    got = nearduplicates.components(400, pairs)
    assert np.array_equal(np.unique(want, return_inverse=True)[1], np.unique(got, return_inverse=True)[1])


def test_the_plan_covers_every_bit_once_and_its_radius_keeps_the_pigeonhole() -> None:
    for distance in range(17):
        chunks, radius = nearduplicates.plan(distance, 100_000, 200_000)
        assert [b for lo, hi in chunks for b in range(lo, hi)] == list(range(64))
        assert max(hi - lo for lo, hi in chunks) <= 22
        assert radius == distance // len(chunks)


def test_chains_make_one_group() -> None:
    pairs = np.array([[0, 1], [1, 2], [4, 5]])
    groups = nearduplicates.components(6, pairs)
    assert groups[0] == groups[1] == groups[2] and groups[4] == groups[5]
    assert len({groups[0], groups[3], groups[4]}) == 3


def test_the_hash_is_imagehashs_phash_and_the_mirror_hash_that_of_the_mirrored_image() -> None:
    for seed in range(5):
        image = rgb(seed, (96, 64))
        seen = look(image)
        assert hex64(seen.phash) == str(imagehash.phash(image))
        assert hex64(seen.mirrored) == str(imagehash.phash(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def test_copies_cropped_on_a_side_or_all_round_are_near_a_trimmed_hash_of_their_original() -> None:
    near = 0
    for seed in range(12):
        picture = scene(seed, (200, 150))
        seen = look(picture)
        assert len(seen.trimmed) == 5 and seen.queries == (seen.mirrored, *seen.trimmed)
        one_side = [(10, 0, 200, 150), (0, 0, 190, 150), (0, 7, 200, 150), (0, 0, 200, 142)]  # 5 %
        all_round = [(3, 2, 197, 148), (5, 4, 195, 146)]  # 1.5 and 2.5 % of every side
        for box in one_side + all_round:
            copy = look(picture.crop(box)).phash
            near += min(int(h ^ copy).bit_count() for h in seen.trimmed) <= 4
    assert near >= 0.9 * 72  # 72 of 72 here; through the hash alone, 26 (bench/near_duplicates.py)
    assert look(scene(0, (63, 200))).trimmed == ()  # small images get none (the demo's 28 px)


@pytest.mark.parametrize(
    ("image", "warned"),
    [
        (Image.new("RGB", (64, 48), (128, 128, 128)), [QualityWarning.BLANK]),
        (Image.new("L", (64, 48), 5), [QualityWarning.BLANK, QualityWarning.DARK]),
        (Image.fromarray(np.where(np.arange(64) < 32, 230, 255).astype(np.uint8)[None].repeat(48, 0)), ["bright"]),
        (Image.fromarray(np.where(np.arange(64) < 32, 0, 30).astype(np.uint8)[None].repeat(48, 0)), ["dark"]),
        (rgb(1, (200, 40)), [QualityWarning.ASPECT]),
        (rgb(1, (120, 40)), []),
    ],
)
def test_quality_warnings(image: Image.Image, warned: list[QualityWarning]) -> None:
    assert quality_warnings(*image.size, look(image)) == warned
