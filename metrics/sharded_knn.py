"""Cosine kNN of every row over tens of millions of vectors, reading them shard by shard.

Why a separate path: :func:`metrics.knn.knn_approximate` needs all rows in memory (plus their PCA
projection and probe lists), 51 GB at 10M × 1280. Here a faiss IVF-PQ index is trained on a sample,
the rows are added shard by shard (the index keeps 32-byte codes, 0.3 GB at 10M), and the queries
are searched shard by shard; each query chunk's candidates are gathered from the shards and
re-ranked by exact cosine, so memory is the codes plus one chunk, whatever the row count.

A GPU index is used when faiss sees one (``faiss.get_num_gpus()``, faiss-gpu builds): GPU IVF-PQ
takes 8-bit codes, the CPU index 4-bit "fast scan" codes (SIMD), so the two give close, not
identical, candidates; the re-rank is exact on both.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from metrics.knn import _drop_self, _fitted_pca, normalise_rows, rerank_by_inner_product
from metrics.vector_shards import Shards

log = logging.getLogger(__name__)

NPROBE = 8  # inverted lists visited per query: 16 gained nothing on a 50k × 128 Gaussian mixture
# Candidates per wanted neighbour, re-ranked by exact cosine, and the dimensions the codes keep: 4-bit
# codes lose the order within a dense cluster, so recall@10 comes from these two. 1M × 128 rows in
# 100 clusters (as dense as 10M in 1,000): PCA 64 + 16 → 0.65, 128 dims + 16 → 0.72, 64 + 32 → 0.79,
# 128 + 32 → 0.83 at 1.5× the search CPU of the first (docs/BENCHMARKS.md figures).
RERANK_FACTOR = 32
PCA_DIM = 128
LISTS_PER_SQRT_ROW = 4  # nlist = 4·√n: ~4k lists at 1M, ~12.6k at 10M (lists of ~250–800 rows)
TRAIN_ROWS_PER_LIST = 39  # faiss' k-means wants ≥ 39 points per centroid
MAX_TRAIN_ROWS = 500_000  # the sample the index is trained on (256 MB at 128-d)
PCA_SAMPLE_ROWS = 50_000
KMEANS_ITERATIONS = 10
GATHER_BYTES = 256 * 2**20  # candidate vectors gathered for one query chunk


def _index(dim: int, nlist: int, use_gpu: bool, seed: int):
    """IVF-PQ in ``dim`` dims; on every GPU faiss sees when ``use_gpu``."""
    import faiss

    codes = f"PQ{max(1, dim // 2)}" if use_gpu else f"PQ{max(1, dim // 2)}x4fs"
    index = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_L2)
    index.cp.seed = seed
    index.cp.niter = KMEANS_ITERATIONS
    index.nprobe = min(NPROBE, nlist)
    if use_gpu:
        index = faiss.index_cpu_to_all_gpus(index)
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", min(NPROBE, nlist))
    return index


def _projected(pca, block: np.ndarray) -> np.ndarray:
    x = normalise_rows(block)
    return x if pca is None else pca.apply(x)


def train_index(shards: Shards, seed: int = 0, use_gpu: bool | None = None):
    """(PCA or None, trained empty IVF-PQ index) from a seeded sample of the shards' rows."""
    import faiss

    n, d = len(shards), shards.dim
    use_gpu = faiss.get_num_gpus() > 0 if use_gpu is None else use_gpu
    dim = min(PCA_DIM, d)
    nlist = max(1, min(n // TRAIN_ROWS_PER_LIST, int(LISTS_PER_SQRT_ROW * math.sqrt(n))))
    size = min(n, MAX_TRAIN_ROWS, max(TRAIN_ROWS_PER_LIST * nlist, 10_000))
    sample = normalise_rows(
        shards.gather(np.sort(np.random.default_rng(seed).choice(n, size, replace=False)))
    )
    pca = _fitted_pca(sample[:: max(1, len(sample) // PCA_SAMPLE_ROWS)], dim) if dim < d else None
    index = _index(dim, nlist, use_gpu, seed)
    index.train(sample if pca is None else pca.apply(sample))
    return pca, index


def _query_chunk_rows(candidates: int, dim: int) -> int:
    return max(256, GATHER_BYTES // max(1, candidates * dim * 4))


def _search_chunk(
    shards: Shards, pca, index, queries: np.ndarray, first_row: int, k: int, position: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """k neighbours of ``queries`` (rows ``first_row``…), self excluded: index candidates re-ranked exactly.

    ``position`` (int32, one per row, reused between chunks) maps the chunk's candidate rows to their
    place in the gathered block: a mask and a lookup, 7× faster here than np.unique + searchsorted.
    """
    queries = normalise_rows(queries)
    _, candidates = index.search(queries if pca is None else pca.apply(queries), RERANK_FACTOR * (k + 1))
    found = candidates >= 0
    wanted = np.zeros(len(position), dtype=bool)
    wanted[candidates[found]] = True
    wanted = np.flatnonzero(wanted)
    position[wanted] = np.arange(len(wanted), dtype=np.int32)
    base = normalise_rows(shards.gather(wanted))  # only the rows this chunk needs
    local = np.where(found, position[np.maximum(candidates, 0)], -1)
    ids, sims = rerank_by_inner_product(queries, base, local, k + 1, labels=candidates)
    own = np.arange(first_row, first_row + len(queries))
    return _drop_self(ids, sims, k, row_ids=own)


def search_shards(shards: Shards, pca, index, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest other rows of every row of ``shards`` in a filled index, walking the shards in order."""
    n = len(shards)
    ids = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    step = _query_chunk_rows(RERANK_FACTOR * (k + 1), shards.dim)
    position = np.zeros(n, dtype=np.int32)
    for first, block in shards:
        for start in range(0, len(block), step):
            rows = slice(first + start, first + min(len(block), start + step))
            ids[rows], sims[rows] = _search_chunk(
                shards, pca, index, np.asarray(block[start : start + step]), rows.start, k, position
            )
    return ids, sims


def knn_sharded(
    shards: Shards, k: int = 10, seed: int = 0, use_gpu: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine k nearest neighbours of every row (itself excluded), best first; -1 / -inf where missing.

    Memory: the index codes, the training sample and one query chunk's candidates, not the rows.
    """
    import faiss

    from metrics.embeddings import cpu_cores

    n = len(shards)
    k = max(0, min(int(k), n - 1))
    if k == 0:
        return np.empty((n, 0), dtype=np.int64), np.empty((n, 0), dtype=np.float32)
    faiss.omp_set_num_threads(cpu_cores())
    started = time.perf_counter()
    pca, index = train_index(shards, seed, use_gpu)
    log.info("sharded knn: index trained in %.1f s", time.perf_counter() - started)
    for _, block in shards:
        index.add(_projected(pca, np.asarray(block)))
    log.info("sharded knn: %d rows added at %.1f s", n, time.perf_counter() - started)
    found = search_shards(shards, pca, index, k)
    log.info("sharded knn: searched at %.1f s", time.perf_counter() - started)
    return found
