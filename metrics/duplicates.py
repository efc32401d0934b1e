"""Duplicate images: exact (same decoded pixels) and near (perceptual hashes within a Hamming radius).

Near duplicates join pairs of 64-bit pHashes (metrics.image._phash) within the radius into groups
(connected components: A~B and B~C puts A, B, C together). Mirrored copies (the commonest
augmentation) count too: a flip turns a hash into hash XOR a lane mask, so the distance is the
minimum over the four flips. The pairs are found exactly, two ways with the same result:
- ``brute``: every pair, a vectorised XOR + popcount (``np.bitwise_count``) in cache-sized tiles;
  cost grows with n²: 20k hashes took ~7 s on 2 busy cores, 1M would take hours.
- ``index``: multi-index hashing (metrics.hamming_index): hashes are split into blocks, pigeonhole
  says a pair within the radius is close on one block, so only hashes in nearby buckets of some
  block are verified with the full popcount. Used from a few thousand hashes up ("auto").
Chance matches grow with n²: two random hashes are within 12 bits with probability ~2.3·10⁻⁷
(~9·10⁻⁷ with flips), ~0.9 per million pairs, so ~4,500 chance pairs among 100k images (5·10⁹
pairs) and ~450k among 1M; pass a smaller radius for very large sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Default Hamming radius (of 64 bits), measured on blood_cells (100 sources, 70 as three augmented
# copies, flips and cut-outs): radius 12 puts 66 of the 70 triplicated sources in pure groups (55 with
# all three copies) with 2 false groups; 10 gives 59 / 39 / 2, 14 gives 66 / 58 / 3, 16 gives 12 false.
PHASH_HAMMING_RADIUS = 12
# XOR masks that turn a hash into the hash of the flipped image (lanes EE|EO|OE|OO, see metrics.image).
FLIP_MASKS = np.array(
    [0, 0x0000FFFF0000FFFF, 0x00000000FFFFFFFF, 0x0000FFFFFFFF0000], dtype=np.uint64
)  # none, left-right, up-down, both (= 180° rotation)
# Tile of the pair matrix handled per numpy step: small enough to stay in cache.
_TILE_ROWS = 256
_TILE_COLS = 4096
# "auto" uses the index from this many hashes (below it all pairs take < 0.2 s and no compiled code
# is loaded); it is exact either way.
_INDEX_FROM = 4096


def exact_duplicate_groups(pixel_hashes: Sequence[str | None]) -> list[int]:
    """Group id per image for identical non-empty pixel hashes; −1 for singletons and missing hashes.

    Group ids are 0..k−1 in order of first appearance, so the output is deterministic.
    """
    members: dict[str, list[int]] = {}
    for index, value in enumerate(pixel_hashes):
        if value:
            members.setdefault(value, []).append(index)
    groups = [-1] * len(pixel_hashes)
    next_id = 0
    for indices in members.values():
        if len(indices) > 1:
            for index in indices:
                groups[index] = next_id
            next_id += 1
    return groups


def _is_hash(value: object) -> bool:
    """False for None, NaN and pandas' NA (whose comparison raises in ``bool``)."""
    if value is None:
        return False
    try:
        return bool(value == value)
    except TypeError:
        return False


def _as_uint64(phashes: Sequence[int | None] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed/unsigned 64-bit ints (None/NaN/NA = no hash) → uint64 array and a validity mask.

    Pass ints (e.g. an Int64 column's ``tolist()``) or an int64/uint64 array, never floats: float64
    keeps only 53 bits.
    """
    if isinstance(phashes, np.ndarray) and phashes.dtype in (np.int64, np.uint64):
        return phashes.view(np.uint64), np.ones(len(phashes), dtype=bool)  # same bits, no copy
    valid = np.array([_is_hash(h) for h in phashes], dtype=bool)
    masked = [int(h) & 0xFFFFFFFFFFFFFFFF if ok else 0 for h, ok in zip(phashes, valid, strict=True)]
    return np.array(masked, dtype=np.uint64), valid  # explicit dtype: big ints never go through float


def _brute_pairs(hashes: np.ndarray, radius: int, masks: np.ndarray) -> np.ndarray:
    """All position pairs (i < j) within ``radius`` (min over ``masks``), comparing every pair."""
    n = len(hashes)
    found = []
    for row in range(0, n, _TILE_ROWS):
        block = hashes[row : row + _TILE_ROWS, None]
        for col in range(row, n, _TILE_COLS):  # only j ≥ i: the upper triangle
            xor = block ^ hashes[None, col : col + _TILE_COLS]
            distance = np.bitwise_count(xor)
            for mask in masks:
                np.minimum(distance, np.bitwise_count(xor ^ mask), out=distance)
            rows, cols = np.nonzero(distance <= radius)
            i, j = row + rows, col + cols
            keep = j > i
            if keep.any():
                found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def hamming_pairs(
    phashes: Sequence[int | None] | np.ndarray,
    radius: int = PHASH_HAMMING_RADIUS,
    flips: bool = True,
    method: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """All index pairs (i < j) within ``radius`` bits (minimum over flips if ``flips``), as (m, 2).

    ``method``: "brute" (all pairs), "index" (multi-index hashing) or "auto" (the index from
    ``_INDEX_FROM`` hashes up). The set of pairs is the same; the index returns them sorted.
    """
    values, valid = _as_uint64(phashes)
    index = np.flatnonzero(valid)
    hashes = values[index]
    if method == "auto":
        method = "index" if len(hashes) >= _INDEX_FROM and radius < 32 else "brute"
    if method == "brute":
        pairs = _brute_pairs(hashes, radius, FLIP_MASKS[1:] if flips else FLIP_MASKS[:0])
    elif method == "index":
        from metrics.hamming_index import pairs_within  # numba: compiled on first use, then cached

        pairs = pairs_within(hashes, radius, FLIP_MASKS if flips else FLIP_MASKS[:1], threads)
    else:
        raise ValueError(f"method must be 'auto', 'brute' or 'index', not {method!r}")
    return index[pairs] if len(pairs) else np.empty((0, 2), dtype=np.int64)


def _components(n: int, pairs: np.ndarray) -> list[int]:
    """Group id per node (connected components of ``pairs``), −1 for singletons, ids in order of first member."""
    if n == 0:
        return []
    smallest = _smallest_member(n, np.asarray(pairs, dtype=np.int64).reshape(-1, 2))
    labels = np.unique(smallest, return_inverse=True)[1].reshape(-1)  # components numbered 0..k−1
    _, first, sizes = np.unique(labels, return_index=True, return_counts=True)
    grouped = np.sort(first[sizes > 1])  # first member of each group, in index order
    ids = np.full(len(first), -1, dtype=np.int64)
    ids[labels[grouped]] = np.arange(len(grouped))
    return ids[labels].tolist()


def _smallest_member(n: int, pairs: np.ndarray) -> np.ndarray:
    """Per node, the smallest index in its connected component (min-label propagation with pointer
    jumping, O(log n) rounds of numpy). Any component labelling gives the same group ids after the
    canonical renumbering above; scipy.sparse.csgraph cost ~0.4 s of imports in every import run.
    """
    labels = np.arange(n, dtype=np.int64)
    a, b = pairs[:, 0], pairs[:, 1]
    while len(a):
        low = np.minimum(labels[a], labels[b])
        before = labels.copy()
        np.minimum.at(labels, a, low)
        np.minimum.at(labels, b, low)
        while True:  # point every node at its label's label until stable
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels, before):
            break
    return labels


def near_duplicate_groups(
    phashes: Sequence[int | None] | np.ndarray,
    radius: int = PHASH_HAMMING_RADIUS,
    flips: bool = True,
    method: str = "auto",
    threads: int | None = None,
) -> list[int]:
    """Group id per image (connected components of pHash distance ≤ ``radius``); −1 for singletons.

    ``flips`` also matches left-right / up-down mirrored copies. Missing hashes (None, e.g.
    unreadable images) are always singletons. Group ids are 0..k−1 in order of first member.
    ``method`` / ``threads``: see :func:`hamming_pairs` (the groups do not depend on them).
    """
    return _components(len(phashes), hamming_pairs(phashes, radius, flips, method, threads))
