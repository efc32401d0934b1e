"""Exact Hamming range self-join over 64-bit hashes without comparing all pairs: multi-index hashing.

Split the 64 bits into m blocks and give block k a threshold t_k with Σ (t_k + 1) ≥ radius + 1. Two
hashes within ``radius`` bits then lie within t_k bits of each other on at least one block k
(pigeonhole: else the distance would be ≥ Σ (t_k + 1)). So per block the hashes are bucketed by the
block's bits (sorted, with bucket offsets), and every pair of buckets whose keys differ in at most t_k
bits is compared hash against hash with a full 64-bit popcount. Pigeonhole + verification: the pairs
are exactly those of the all-pairs search, only a small fraction is looked at (multi-index hashing,
Norouzi, Punjani, Fleet, "Fast Exact Search in Hamming Space with Multi-Index Hashing", 2014, run as a
self-join over bucket pairs so a bucket's neighbours are enumerated once, not once per member).

Matching under XOR masks (mirrored images, metrics.duplicates.FLIP_MASKS): a pair is within radius
when the minimum distance over the masks is; under the best mask some block is within t_k, so each
block pairs buckets once per distinct restriction of the masks to its bits ("variant"), and a pair
found through variant v is verified against the masks that restrict to v. Lanes a block does not
touch cost nothing (the pHash's even-even lane, the top 16 bits, is never flipped).

The layout (block widths and thresholds) is chosen per call by a cost model, per block and variant:
|ball(width, t)| × (~25 × non-empty buckets + n² / 2^(width+1) hash comparisons); a bucket visit is
dear when buckets hold a few hashes (measured at 10M: 16-bit lanes 1,873 CPU-s, 21/22/21-bit blocks
4,565). At radius 12 with flips: 13-bit blocks up to ~200k hashes, the four 16-bit lanes from
~300k to 10M.

The inner loop is compiled with numba (already installed as a dependency of umap-learn; the compiled
code is cached beside this file) and runs bucket ranges on threads.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit

# Candidate layouts (block widths from the top bit down); the cost model picks one per call.
# At most 24 bits a block: its offsets array has 2^width + 1 entries (64 MB of int32 at 24).
_LAYOUTS = (
    (16, 16, 16, 16),
    (13, 13, 13, 13, 12),
    (22, 21, 21),
    (21, 22, 21),
    (21, 21, 22),
    (24, 20, 20),
    (20, 24, 20),
    (20, 20, 24),
)
# Relative cost of visiting one bucket pair (reading two offsets) vs comparing one pair of hashes.
_PROBE_COST = 25.0
# Buckets per job: enough jobs to spread over threads, each large enough to amortise the call.
_JOBS_PER_THREAD = 8


@dataclass(frozen=True)
class Block:
    shift: int  # the block is bits [shift, shift + width) of the hash
    width: int
    threshold: int  # pair buckets whose keys differ in at most this many bits
    variants: tuple[int, ...]  # distinct restrictions of the XOR masks to this block


def _ball_size(width: int, threshold: int) -> int:
    return sum(math.comb(width, k) for k in range(min(width, threshold) + 1))


def _variants(masks: np.ndarray, shift: int, width: int) -> tuple[int, ...]:
    key_mask = (1 << width) - 1
    return tuple(sorted({(int(m) >> shift) & key_mask for m in masks}))


def plan(n: int, radius: int, masks: np.ndarray) -> tuple[tuple[Block, ...], float]:
    """The cheapest layout for ``n`` hashes at ``radius`` and its estimated cost (hash comparisons).

    Assumes uniformly spread hashes; skewed ones fill some buckets more, which costs more but never
    changes the result.
    """
    best: tuple[float, tuple[Block, ...]] | None = None
    for widths in _LAYOUTS:
        shifts = [64 - sum(widths[: k + 1]) for k in range(len(widths))]
        variants = [_variants(masks, s, w) for s, w in zip(shifts, widths, strict=True)]
        # Cost of one pattern (one bucket-key difference) on a block, per variant.
        unit = [
            len(v) * (_PROBE_COST * min(n, 2**w) + n * n / 2 ** (w + 1))
            for v, w in zip(variants, widths, strict=True)
        ]
        # Thresholds: Σ (t_k + 1) ≥ radius + 1 with each t_k ≤ width, at least cost: a small dynamic
        # programme over the blocks (a larger sum never costs less, so Σ t_k = need exactly).
        need = max(radius + 1 - len(widths), 0)
        table: dict[int, tuple[float, tuple[int, ...]]] = {0: (0.0, ())}  # Σ t so far → cheapest
        for u, w in zip(unit, widths, strict=True):
            step: dict[int, tuple[float, tuple[int, ...]]] = {}
            for total, (cost, ts) in table.items():
                for t in range(min(w, need - total) + 1):
                    candidate = (cost + u * _ball_size(w, t), (*ts, t))
                    if total + t not in step or candidate[0] < step[total + t][0]:
                        step[total + t] = candidate
            table = step
        best_t = table.get(need)
        if best_t is None:  # no split of these widths reaches the radius
            continue
        blocks = tuple(
            Block(s, w, t, v) for s, w, t, v in zip(shifts, widths, best_t[1], variants, strict=True)
        )
        total = best_t[0] + sum(2**w for w in widths)  # pairs + building the offsets
        if best is None or total < best[0]:
            best = (total, blocks)
    if best is None:
        raise ValueError(f"no block layout for radius {radius}")
    return best[1], best[0]


def _patterns(width: int, threshold: int) -> np.ndarray:
    """Every ``width``-bit value with at most ``threshold`` bits set, ascending."""
    values = [
        sum(1 << b for b in bits)
        for k in range(min(width, threshold) + 1)
        for bits in itertools.combinations(range(width), k)
    ]
    return np.sort(np.array(values, dtype=np.uint64))


@njit(inline="always")
def _popcount(x):  # SWAR; LLVM turns it into one popcnt instruction
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(inline="always")
def _distance(x, m0, m1, m2, m3):
    """min over the four masks of popcount(x ^ m) (masks repeated when there are fewer)."""
    return min(min(_popcount(x ^ m0), _popcount(x ^ m1)), min(_popcount(x ^ m2), _popcount(x ^ m3)))


@njit(nogil=True, cache=True)
def _join_buckets(sorted_hashes, sorted_index, offsets, variant, patterns, masks, radius, first, last):
    """Pairs (i, j), i < j, within ``radius`` (min over the 4 ``masks``) between each bucket q in
    first..last−1 and the buckets q ^ variant ^ e (e in ``patterns``) not below it."""
    capacity = 1024
    out = np.empty((capacity, 2), dtype=np.int64)
    count = 0
    limit = np.uint64(radius)
    m0, m1, m2, m3 = masks[0], masks[1], masks[2], masks[3]
    two = m2 == m0 and m3 == m1  # at most two distinct masks: half the popcounts in the scan
    for q in range(first, last):
        a0 = offsets[q]
        a1 = offsets[q + 1]
        if a0 == a1:
            continue
        for e in patterns:
            q2 = np.int64(np.uint64(q) ^ variant ^ e)
            if q2 < q:
                continue  # that pair of buckets is joined from q2's side
            b0 = offsets[q2]
            b1 = offsets[q2 + 1]
            if b0 == b1:
                continue
            for a in range(a0, a1):
                ha = sorted_hashes[a]
                start = a + 1 if q2 == q else b0
                hit = False  # branch-free scan first (vectorised), hits are rare
                if two:
                    for b in range(start, b1):
                        x = ha ^ sorted_hashes[b]
                        hit |= min(_popcount(x ^ m0), _popcount(x ^ m1)) <= limit
                else:
                    for b in range(start, b1):
                        hit |= _distance(ha ^ sorted_hashes[b], m0, m1, m2, m3) <= limit
                if not hit:
                    continue
                for b in range(start, b1):
                    if _distance(ha ^ sorted_hashes[b], m0, m1, m2, m3) <= limit:
                        if count == capacity:
                            capacity *= 2
                            grown = np.empty((capacity, 2), dtype=np.int64)
                            grown[:count] = out[:count]
                            out = grown
                        i = sorted_index[a]
                        j = sorted_index[b]
                        out[count, 0] = min(i, j)
                        out[count, 1] = max(i, j)
                        count += 1
    return out[:count]


def estimated_cost(n: int, radius: int, masks: np.ndarray) -> float:
    """Estimated hash comparisons of :func:`pairs_within` (compare with n²/2 for all pairs)."""
    return plan(n, radius, masks)[1]


def pairs_within(
    hashes: np.ndarray, radius: int, masks: np.ndarray, threads: int | None = None
) -> np.ndarray:
    """Every pair of positions (i < j) whose min over ``masks`` of popcount(h_i ^ h_j ^ m) ≤ ``radius``.

    ``hashes`` is uint64; ``masks`` a uint64 array (include 0 for the plain distance). Returns an
    (m, 2) int64 array sorted by (i, j), each pair once: the same set as the all-pairs search.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    masks = np.ascontiguousarray(masks, dtype=np.uint64)
    n = len(hashes)
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    blocks, _ = plan(n, radius, masks)
    index_type = np.int32 if n < 2**31 - 1 else np.int64
    threads = threads or min(os.cpu_count() or 1, 8)
    tables = []
    jobs = []
    for block in blocks:
        key_mask = (1 << block.width) - 1
        keys = (hashes >> np.uint64(block.shift)) & np.uint64(key_mask)
        order = np.argsort(keys, kind="stable")
        offsets = np.zeros((1 << block.width) + 1, dtype=index_type)
        np.cumsum(np.bincount(keys, minlength=1 << block.width), out=offsets[1:])
        tables.append(
            (hashes[order], order.astype(index_type), offsets, _patterns(block.width, block.threshold))
        )
        del keys, order
        for variant in block.variants:
            # The masks that restrict to this variant on this block (a pair found through it can only
            # be within radius under one of them — or is found through another block or variant).
            own = masks[((masks >> np.uint64(block.shift)) & np.uint64(key_mask)) == variant]
            own = np.resize(own, 4)  # the kernel takes four masks (1 or 2 repeated: m0 m1 m0 m1)
            # Split the buckets so that each job holds about the same number of hashes.
            bounds = np.searchsorted(offsets, np.linspace(0, n, _JOBS_PER_THREAD * threads + 1)[1:-1])
            edges = np.unique(np.concatenate([[0], bounds, [1 << block.width]]))
            jobs += [
                (len(tables) - 1, np.uint64(variant), own, int(lo), int(hi))
                for lo, hi in itertools.pairwise(edges)
            ]

    def run(job: tuple) -> np.ndarray:
        table, variant, own, first, last = job
        sorted_hashes, sorted_index, offsets, patterns = tables[table]
        pairs = _join_buckets(
            sorted_hashes, sorted_index, offsets, variant, patterns, own, radius, first, last
        )
        # One int64 key a pair, in a new array: the kernel's over-allocated buffer is freed at once
        # (holding every job's buffer cost 5 GB at 10M hashes).
        return np.unique(pairs[:, 0] * n + pairs[:, 1])

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            found = list(pool.map(run, jobs))
    else:
        found = [run(job) for job in jobs]
    # A pair can match on several blocks or variants: keep each once, sorted by (i, j).
    unique = np.unique(np.concatenate(found))
    del found
    return np.stack([unique // n, unique % n], axis=1)
