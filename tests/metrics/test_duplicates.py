"""Exact and near duplicates: group semantics, flips, scale, and the radius measured on blood_cells."""

from __future__ import annotations

import json
import math
import re
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from metrics.duplicates import (
    FLIP_MASKS,
    PHASH_HAMMING_RADIUS,
    exact_duplicate_groups,
    hamming_pairs,
    near_duplicate_groups,
)
from metrics.hamming_index import pairs_within, plan
from metrics.image import compute_image
from tests.conftest import shared


def test_exact_groups_number_duplicates_and_leave_singletons() -> None:
    groups = exact_duplicate_groups(["a", "b", "a", "", None, "c", "b", "a"])
    assert groups == [0, 1, 0, -1, -1, -1, 1, 0]
    assert exact_duplicate_groups([]) == []


def test_near_groups_are_connected_components_within_radius() -> None:
    base = 0x0123456789ABCDEF
    hashes = [base, base ^ 0b111, base ^ 0b111 ^ (0b111 << 8), ~base, None, -5]
    # 0–1 differ by 3 bits, 1–2 by 3 (0–2 by 6): a chain joins all three at radius 3.
    assert near_duplicate_groups(hashes, radius=3, flips=False) == [0, 0, 0, -1, -1, -1]
    assert near_duplicate_groups(hashes, radius=2, flips=False) == [-1] * 6
    pairs = hamming_pairs(hashes, radius=6, flips=False)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2), (1, 2)]


def test_accepts_a_nullable_int64_column() -> None:
    column = pd.Series([2**62 + 1, None, 2**62 + 1, -7], dtype="Int64")
    assert near_duplicate_groups(column.tolist(), radius=0) == [0, -1, 0, -1]
    assert near_duplicate_groups([float("nan"), np.int64(3), 3], radius=0) == [-1, 0, 0]


def test_signed_and_unsigned_hash_forms_agree() -> None:
    unsigned = 0xF000000000000001
    signed = unsigned - (1 << 64)
    assert near_duplicate_groups([unsigned, signed], radius=0) == [0, 0]


def test_mirrored_copies_are_near_duplicates_only_with_flips(tmp_path: Path) -> None:
    photo = np.asarray(Image.open(shared("fruits_nuts", "images", "3.jpg")).convert("RGB"))
    variants = {
        "orig": photo,
        "hflip": photo[:, ::-1],
        "vflip": photo[::-1],
        "rot180": photo[::-1, ::-1],
        "brighter": cv2.convertScaleAbs(photo, alpha=1.1, beta=10),
        "other": np.asarray(Image.open(shared("fruits_nuts", "images", "7.jpg")).convert("RGB")),
    }
    hashes = []
    for name, pixels in variants.items():
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(np.ascontiguousarray(pixels)).save(path, quality=90)
        hashes.append(compute_image({"path": str(path), "width": 800, "height": 600})["phash"])
    with_flips = near_duplicate_groups(hashes)
    assert with_flips[:5] == [0] * 5 and with_flips[5] == -1
    without = near_duplicate_groups(hashes, flips=False)
    assert without[0] == without[4] == 0 and without[1:4] == [-1, -1, -1] and without[5] == -1


def test_real_distinct_photos_are_not_grouped() -> None:
    folder = shared("fruits_nuts", "images")
    hashes = [
        compute_image({"path": str(p), "width": 800, "height": 600})["phash"] for p in folder.glob("*.jpg")
    ]
    assert len(hashes) == 18
    assert near_duplicate_groups(hashes) == [-1] * 18


def test_default_radius_on_blood_cells_triplicates() -> None:
    """blood_cells: 240 files = 100 sources, 70 of them as three augmented (flipped, cut-out) copies.

    Measured at the default radius (PHASH_HAMMING_RADIUS, 12) with flips: 67 groups, 2 false (two sources mixed), 58 of the
    70 triplicated sources with all three copies in one group, 68 with at least two together.
    """
    root = shared("blood_cells")
    images = json.loads((root / "annotations.json").read_text())["images"]
    hashes = [
        compute_image({"path": str(root / "images" / im["file_name"]), "width": 416, "height": 416})["phash"]
        for im in images
    ]
    sources = [re.match(r"(image-\d+)_png", im["file_name"]).group(1) for im in images]
    groups = near_duplicate_groups(hashes)  # the default radius: the figures below are its contract
    members: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        if group >= 0:
            members[group].append(index)
    copies: dict[str, list[int]] = defaultdict(list)
    for index, source in enumerate(sources):
        copies[source].append(index)
    triplicated = [s for s, idx in copies.items() if len(idx) == 3]
    assert len(copies) == 100 and len(triplicated) == 70
    false_groups = sum(1 for m in members.values() if len({sources[i] for i in m}) > 1)
    all_three = sum(
        1 for s in triplicated if groups[copies[s][0]] >= 0 and len({groups[i] for i in copies[s]}) == 1
    )
    at_least_two = sum(
        1
        for s in triplicated
        if any(
            g >= 0 and [groups[i] for i in copies[s]].count(g) >= 2 for g in {groups[i] for i in copies[s]}
        )
    )
    singles_grouped = sum(1 for s, idx in copies.items() if len(idx) == 1 and groups[idx[0]] >= 0)
    print(
        f"groups={len(members)} false={false_groups} all3={all_three} >=2={at_least_two} singles={singles_grouped}"
    )
    assert all_three >= 55 and at_least_two >= 66
    assert false_groups <= 3
    assert len(members) >= 60
    # Without flip matching the mirrored copy is lost: far fewer complete triplets.
    plain = near_duplicate_groups(hashes, flips=False)
    plain_all_three = sum(
        1 for s in triplicated if plain[copies[s][0]] >= 0 and len({plain[i] for i in copies[s]}) == 1
    )
    assert plain_all_three < all_three / 2


def test_scales_to_many_hashes_and_matches_chance_rate() -> None:
    """20k random hashes: planted copies found, and chance pairs at the binomial rate (a popcount check)."""
    rng = np.random.default_rng(0)
    n = 20_000
    hashes = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
    hashes[n - 1] = hashes[0] ^ 0b101  # a near copy, 2 bits away
    hashes[n - 2] = hashes[5] ^ np.int64(0x0000FFFF0000FFFF)  # a mirrored copy: the left-right mask
    start = time.perf_counter()
    pairs = {tuple(p) for p in hamming_pairs(hashes.tolist()).tolist()}
    elapsed = time.perf_counter() - start
    assert (0, n - 1) in pairs and (5, n - 2) in pairs
    # Random 64-bit hashes: P(distance ≤ 12) = Σ C(64, k) / 2⁶⁴, about 4× that with the four flips.
    chance = sum(math.comb(64, k) for k in range(PHASH_HAMMING_RADIUS + 1)) / 2**64
    expected = n * (n - 1) / 2 * 4 * chance
    assert 0.7 * expected < len(pairs) - 2 < 1.3 * expected, (len(pairs), expected)
    assert elapsed < 60, f"20k hashes took {elapsed:.1f} s"


@pytest.mark.parametrize("radius", [0, 5])
def test_identical_hashes_always_group(radius: int) -> None:
    assert near_duplicate_groups([7, 7, 8], radius=radius, flips=False)[:2] == [0, 0]


# --- the index (multi-index hashing) against the all-pairs search -----------------------------------


def _union_find_reference(n: int, pairs: np.ndarray) -> list[int]:
    """The union-find near_duplicate_groups used before the index (ids in order of first member)."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs.tolist():
        root_i, root_j = find(i), find(j)
        if root_i != root_j:
            parent[max(root_i, root_j)] = min(root_i, root_j)
    roots = [find(i) for i in range(n)]
    sizes: dict[int, int] = defaultdict(int)
    for root in roots:
        sizes[root] += 1
    ids: dict[int, int] = {}
    return [-1 if sizes[root] < 2 else ids.setdefault(root, len(ids)) for root in roots]


def _pair_set(pairs: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, pairs.tolist()))


def _planted_hashes(n: int, groups: int, radius: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Random hashes with planted groups: copies of a source with ≤ radius bits changed, some mirrored.

    Returns the hashes (shuffled) and the planted (source, copy) index pairs.
    """
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    planted = []
    slot = 0
    for _ in range(groups):
        source = slot
        for _copy in range(int(rng.integers(1, 4))):
            slot += 1
            bits = rng.choice(64, size=int(rng.integers(0, radius + 1)), replace=False)
            noise = np.uint64(sum(1 << int(b) for b in bits))
            hashes[slot] = hashes[source] ^ noise ^ FLIP_MASKS[rng.integers(0, 4)]
            planted.append((source, slot))
        slot += 1
    order = rng.permutation(n)
    where = np.argsort(order)  # new position of each old index
    return hashes[order], [tuple(sorted((int(where[a]), int(where[b])))) for a, b in planted]


@pytest.mark.parametrize(("radius", "flips"), [(12, True), (12, False), (0, True), (5, True), (16, True)])
def test_index_finds_exactly_the_all_pairs_set(radius: int, flips: bool) -> None:
    hashes, planted = _planted_hashes(6_000, groups=400, radius=min(radius, 12), seed=radius)
    brute = hamming_pairs(hashes, radius, flips, method="brute")
    index = hamming_pairs(hashes, radius, flips, method="index", threads=2)
    assert _pair_set(index) == _pair_set(brute)
    assert len(index) == len(_pair_set(index))  # each pair once
    assert index.tolist() == sorted(index.tolist())
    if flips and radius >= 12:
        assert set(planted) <= _pair_set(index)  # every planted copy, mirrored or not
    expected = _union_find_reference(len(hashes), brute)
    assert near_duplicate_groups(hashes, radius, flips, method="index") == expected
    assert near_duplicate_groups(hashes, radius, flips, method="brute") == expected


def test_index_with_crowded_buckets_and_missing_hashes() -> None:
    """Skewed hashes (the top 40 bits shared: all in one bucket of most blocks) and None entries."""
    rng = np.random.default_rng(3)
    low = rng.integers(0, 2**24, size=5_000, dtype=np.uint64)
    hashes: list[int | None] = [int((np.uint64(0xABCDEF1234) << np.uint64(24)) | x) for x in low]
    hashes[10] = hashes[20] = None
    brute = hamming_pairs(hashes, 6, method="brute")
    index = hamming_pairs(hashes, 6, method="index", threads=1)
    assert _pair_set(index) == _pair_set(brute) and len(brute) > 10_000
    assert not ({10, 20} & set(index.ravel().tolist()))
    assert near_duplicate_groups(hashes, 6, method="index") == _union_find_reference(len(hashes), brute)


def test_every_plan_satisfies_the_pigeonhole_bound() -> None:
    for n in (10, 5_000, 1_000_000, 10_000_000):
        for radius in range(0, 25):
            for masks in (FLIP_MASKS, FLIP_MASKS[:1]):
                blocks, _ = plan(n, radius, masks)
                assert sum(b.width for b in blocks) == 64
                assert sum(b.threshold + 1 for b in blocks) >= radius + 1
                assert all(0 <= b.threshold <= b.width for b in blocks)


def test_pairs_within_handles_tiny_inputs() -> None:
    masks = FLIP_MASKS
    assert pairs_within(np.array([], dtype=np.uint64), 12, masks).shape == (0, 2)
    assert pairs_within(np.array([5], dtype=np.uint64), 12, masks).shape == (0, 2)
    assert pairs_within(np.array([5, 5, 9], dtype=np.uint64), 0, masks[:1]).tolist() == [[0, 1]]


@pytest.mark.parametrize("name", ["fruits_nuts", "blood_cells"])
def test_index_groups_equal_all_pairs_groups_on_real_sets(name: str) -> None:
    """The real sets' pHashes: the same pairs and groups as the all-pairs search at the default radius."""
    root = shared(name)
    images = json.loads((root / "annotations.json").read_text())["images"]
    hashes = [
        compute_image(
            {"path": str(root / "images" / im["file_name"]), "width": im["width"], "height": im["height"]}
        )["phash"]
        for im in images
    ]
    found = {}
    for flips in (True, False):
        brute = found[flips] = hamming_pairs(hashes, flips=flips, method="brute")
        index = hamming_pairs(hashes, flips=flips, method="index")
        assert _pair_set(index) == _pair_set(brute)
        groups = near_duplicate_groups(hashes, flips=flips, method="index")
        assert groups == near_duplicate_groups(hashes, flips=flips, method="brute")
        assert groups == _union_find_reference(len(hashes), brute)
    if name == "blood_cells":
        assert len(found[True]) > 50  # the augmented triplicates: a real test of the grouping
