"""Benchmark: near-duplicate grouping of 64-bit pHashes (metrics.duplicates, multi-index hashing).

    python bench/phash_bench.py                                  # 1M hashes, radius 12, flips, 2 threads
    python bench/phash_bench.py --hashes 1000000 10000000 --json out.json
    python bench/phash_bench.py --hashes 20000 --check-brute     # also the all-pairs search: same pairs?

Synthetic hashes: uniform random 64-bit values (the cheapest case for chance matches is no better:
real pHashes are skewed, which fills some buckets more) plus planted near-duplicate groups: a source
and 1–3 copies, each copy the source with 0..radius random bits changed and XOR-ed with a random one
of the four flip masks (a mirrored copy), so every planted (source, copy) pair is within the radius.
Reports the wall and CPU time of the pair search and of the grouping, the peak RSS while grouping (a
0.05 s /proc sampler) over the RSS before it, the recall of the planted pairs (the index is exact, so
anything under 100% is a bug), and the chance pairs found against the binomial expectation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metrics.duplicates import (  # noqa: E402
    FLIP_MASKS,
    PHASH_HAMMING_RADIUS,
    _components,
    hamming_pairs,
)
from metrics.hamming_index import plan  # noqa: E402


def planted_hashes(n: int, planted_share: float, radius: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random hashes, ``planted_share`` of them copies of an earlier source; (hashes, planted pairs)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    copies = int(n * planted_share)
    # Sources are the first hashes; each copy picks one of them (1–3 copies a source on average ~2).
    sources = rng.integers(0, max(copies // 2, 1), size=copies)
    targets = n - copies + np.arange(copies)
    changed = rng.integers(0, radius + 1, size=copies)  # bits changed per copy
    ranks = np.argsort(rng.random((copies, 64)), axis=1)  # a random bit order per copy
    bits = (ranks < changed[:, None]).astype(np.uint64) << np.arange(64, dtype=np.uint64)
    noise = np.bitwise_or.reduce(bits, axis=1)
    hashes[targets] = hashes[sources] ^ noise ^ FLIP_MASKS[rng.integers(0, 4, size=copies)]
    order = rng.permutation(n)  # shuffle so planted copies are not neighbours in the input
    where = np.empty(n, dtype=np.int64)
    where[order] = np.arange(n)
    pairs = np.sort(np.stack([where[sources], where[targets]], axis=1), axis=1)
    return hashes[order], pairs


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakRss:
    """Samples this process's RSS every 0.05 s while the block runs."""

    def __enter__(self) -> PeakRss:
        self.before = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def machine() -> dict:
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": model or platform.processor(), "cpus": os.cpu_count(), "python": platform.python_version()}


def bench(n: int, args: argparse.Namespace) -> dict:
    hashes, planted = planted_hashes(n, args.planted, args.radius, args.seed)
    blocks, cost = plan(n, args.radius, FLIP_MASKS)
    load_before = os.getloadavg()[0]
    with PeakRss() as memory:
        wall, cpu = time.perf_counter(), time.process_time()
        pairs = hamming_pairs(hashes, args.radius, method="index", threads=args.threads)
        pairs_wall, pairs_cpu = time.perf_counter() - wall, time.process_time() - cpu
        groups = np.array(_components(n, pairs))
        total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
    found = pairs[:, 0] * n + pairs[:, 1]
    planted_keys = np.unique(planted[:, 0] * n + planted[:, 1])
    recall = float(np.isin(planted_keys, found).mean())
    same_group = float((groups[planted[:, 0]] == groups[planted[:, 1]]).mean())
    chance = sum(math.comb(64, k) for k in range(args.radius + 1)) / 2**64
    row = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "hashes": n,
        "radius": args.radius,
        "threads": args.threads,
        "layout": [(b.width, b.threshold, len(b.variants)) for b in blocks],
        "planned_comparisons": cost,
        "pairs_wall_s": round(pairs_wall, 1),
        "pairs_cpu_s": round(pairs_cpu, 1),
        "group_wall_s": round(total_wall, 1),
        "group_cpu_s": round(total_cpu, 1),
        "rss_before_mb": round(memory.before),
        "rss_peak_mb": round(memory.peak),
        "planted_pairs": len(planted_keys),
        "planted_recall": recall,
        "planted_same_group": same_group,
        "pairs_found": len(pairs),
        "chance_pairs_expected": round(n * (n - 1) / 2 * len(FLIP_MASKS) * chance),
        "groups": int(groups.max() + 1) if len(groups) else 0,
        "largest_group": int(np.bincount(groups[groups >= 0]).max()) if (groups >= 0).any() else 0,
        "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
    }
    if args.check_brute:
        start = time.perf_counter()
        brute = hamming_pairs(hashes, args.radius, method="brute")
        row["brute_wall_s"] = round(time.perf_counter() - start, 1)
        row["brute_same_pairs"] = bool(np.array_equal(np.unique(brute[:, 0] * n + brute[:, 1]), found))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hashes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--radius", type=int, default=PHASH_HAMMING_RADIUS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--planted", type=float, default=0.01, help="share of hashes that are planted copies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-brute", action="store_true", help="also run the all-pairs search (small n)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    info = machine()
    print(f"machine: {info['cpu']}, {info['cpus']} CPUs, Python {info['python']}")
    start = time.perf_counter()
    hamming_pairs(np.arange(5000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15), method="index", threads=1)
    print(f"numba kernel load/compile + warm-up: {time.perf_counter() - start:.1f} s")
    rows = []
    for n in args.hashes:
        row = bench(n, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
