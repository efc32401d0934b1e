"""Benchmark: the sharded IVF-PQ kNN (metrics/sharded_knn.py) over vectors on disk.

    python bench/knn_scale_bench.py --rows 1000000 --dim 128 --folder /tmp/knn-shards
    python bench/knn_scale_bench.py --rows 200000 --queries 500 --json out.json

Synthetic "PCA'd embeddings": a Gaussian mixture (``--clusters`` centres) whose per-dimension scale
decays like 1/√(j+1), as a PCA basis' variances do, unit-normalised and written as row-ordered
``.npy`` shards of ``--shard-rows``. Times training, adding and searching (wall and this process'
CPU seconds each), samples the resident memory every 0.1 s (anonymous memory apart from
file pages mapped from the shards, which the kernel can drop), and measures recall@k against exact
search for ``--queries`` random rows (exact scan streamed over the shards).

``--search-shards N`` searches only the rows of the first N shards against the whole index (the
build is complete): at 10M rows the search time is then projected from the measured fraction.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metrics import sharded_knn  # noqa: E402
from metrics.vector_shards import Shards  # noqa: E402


class MemorySampler(threading.Thread):
    """Peak RssAnon / RssFile of this process, read from /proc every ``interval`` seconds."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval, self.peak_anon, self.peak_file = interval, 0, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            fields = dict(
                line.split(":", 1)
                for line in Path("/proc/self/status").read_text().splitlines()
                if ":" in line
            )
            self.peak_anon = max(self.peak_anon, int(fields["RssAnon"].split()[0]) * 1024)
            self.peak_file = max(self.peak_file, int(fields["RssFile"].split()[0]) * 1024)
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_shards(folder: Path, rows: int, dim: int, clusters: int, shard_rows: int, seed: int) -> list[Path]:
    """Unit rows of a Gaussian mixture with a decaying spectrum, one shard in memory at a time."""
    rng = np.random.default_rng(seed)
    scale = (1.0 / np.sqrt(np.arange(1, dim + 1))).astype(np.float32)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32) * scale
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, start in enumerate(range(0, rows, shard_rows)):
        count = min(shard_rows, rows - start)
        x = 0.5 * rng.standard_normal((count, dim), dtype=np.float32) * scale
        x += centres[rng.integers(0, clusters, count)]
        x /= np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
        paths.append(folder / f"vectors-{number:06d}.npy")
        np.save(paths[-1], x, allow_pickle=False)
    return paths


def exact_neighbours(shards: Shards, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k (self excluded) of the query rows, merged shard by shard."""
    q = shards.gather(queries)
    best_ids = np.full((len(q), 0), -1, dtype=np.int64)
    best_sims = np.full((len(q), 0), -np.inf, dtype=np.float32)
    for first, block in shards:
        sims = q @ np.asarray(block).T
        own = (queries >= first) & (queries < first + len(block))
        sims[np.flatnonzero(own), queries[own] - first] = -np.inf
        ids = np.concatenate([best_ids, np.broadcast_to(np.arange(first, first + len(block)), sims.shape)], 1)
        sims = np.concatenate([best_sims, sims], 1)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        best_ids, best_sims = np.take_along_axis(ids, top, 1), np.take_along_axis(sims, top, 1)
    return best_ids


def search_rows(shards: Shards, searched: Shards, pca, index, k: int) -> tuple[np.ndarray, np.ndarray]:
    """sharded_knn.search_shards for the rows of ``searched`` (the first shards of ``shards``)."""
    if len(searched) == len(shards):
        return sharded_knn.search_shards(shards, pca, index, k)
    ids = np.empty((len(searched), k), dtype=np.int64)
    sims = np.empty((len(searched), k), dtype=np.float32)
    step = sharded_knn._query_chunk_rows(sharded_knn.RERANK_FACTOR * (k + 1), shards.dim)
    position = np.zeros(len(shards), dtype=np.int32)
    for first, block in searched:
        for start in range(0, len(block), step):
            rows = slice(first + start, first + min(len(block), start + step))
            queries = np.asarray(block[start : start + step])
            ids[rows], sims[rows] = sharded_knn._search_chunk(
                shards, pca, index, queries, rows.start, k, position
            )
    return ids, sims


def timed(label: str, report: dict, action):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = action()
    report[label] = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(cpu_seconds() - cpu, 1)}
    print(label, report[label], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--shard-rows", type=int, default=65_536)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=1000, help="rows whose recall@k is measured")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folder", default="/tmp/knn-scale-shards")
    parser.add_argument("--keep", action="store_true", help="keep the shard folder")
    parser.add_argument("--search-shards", type=int, help="search only the first N shards' rows")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()

    import metrics.embeddings as embeddings

    embeddings.cpu_cores = lambda: args.threads  # the bench pins the core count it reports
    folder = Path(args.folder)
    report: dict = {
        "date_utc": datetime.now(UTC).isoformat(timespec="minutes"),
        "load_before": os.getloadavg(),
        "rows": args.rows,
        "dim": args.dim,
        "k": args.k,
        "threads": args.threads,
        "nprobe": sharded_knn.NPROBE,
        "rerank_factor": sharded_knn.RERANK_FACTOR,
    }
    paths = timed(
        "generate",
        report,
        lambda: write_shards(folder, args.rows, args.dim, args.clusters, args.shard_rows, 0),
    )
    shards = Shards.from_files(paths)
    sampler = MemorySampler()
    sampler.start()
    cpu_start, wall_start = cpu_seconds(), time.perf_counter()
    pca, index = timed("train", report, lambda: sharded_knn.train_index(shards, seed=0, use_gpu=None))

    def add() -> None:
        for _, block in shards:
            index.add(sharded_knn._projected(pca, np.asarray(block)))

    timed("add", report, add)
    searched = Shards.from_files(paths[: args.search_shards]) if args.search_shards else shards
    ids, _ = timed("search", report, lambda: search_rows(shards, searched, pca, index, args.k))
    report["searched_rows"] = len(searched)
    report["total"] = {
        "wall_s": round(time.perf_counter() - wall_start, 1),
        "cpu_s": round(cpu_seconds() - cpu_start, 1),
    }
    sampler.stop()
    report["peak_rss_anon_mib"] = round(sampler.peak_anon / 2**20)
    report["peak_rss_file_mib"] = round(sampler.peak_file / 2**20)
    report["ru_maxrss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    queries = np.sort(np.random.default_rng(1).choice(len(searched), min(args.queries, len(searched)), False))
    exact = timed("exact_sample", report, lambda: exact_neighbours(shards, queries, args.k))
    found = ids[queries]
    report["recall_at_k"] = round(
        float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, exact, strict=True)])), 4
    )
    report["load_after"] = os.getloadavg()
    print(json.dumps(report), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
