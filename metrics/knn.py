"""Cosine k-nearest neighbours of every row, itself excluded.

Exact below ``EXACT_MAX_ROWS`` (blocked matrix multiply, memory bounded by ``BLOCK_BYTES``);
approximate above, with faiss (``faiss-cpu`` on PyPI). Why faiss rather than pynndescent: on 1M
1280-d vectors with 2 cores, pynndescent's graph build takes many minutes, while faiss' PCA + IVF
index builds and searches in well under a minute (figures in docs/BENCHMARKS.md) and needs no JIT
warm-up. The approximate path reduces to ``PCA_DIM`` dimensions, finds ``RERANK_FACTOR`` × k
candidates per row with an inverted-file index, then re-ranks them by exact cosine similarity
(faiss' IndexRefineFlat, in C++: a numpy gather of 20M candidate rows was the bottleneck).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

log = logging.getLogger(__name__)

EXACT_MAX_ROWS = 50_000  # exact search costs n² d: 50k × 50k × 1280 ≈ 3 TFLOP, about a minute here
BLOCK_BYTES = 256 * 2**20  # similarity block kept in memory at once
PCA_DIM = 64  # approximate path: L2 in 64 PCA dims ranks neighbours close to full-dim cosine
RERANK_FACTOR = 4  # candidates per wanted neighbour (PQ codes are lossy), re-ranked exactly in full dims
NPROBE = 8  # inverted lists visited per query
KMEANS_ITERATIONS = 10  # coarse lists only route queries: more iterations barely change recall


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32 C-contiguous.

    Already-unit rows (embeddings are stored normalised) are returned without a copy: at a million
    1280-d rows a copy is 5 GB.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]  # no n×d temporary, unlike linalg.norm
    if np.all(np.abs(norms - 1.0) < 1e-4):
        return x
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _top_k_excluding_self(sims: np.ndarray, row_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns per row of ``sims`` (rows are queries ``row_ids``), the query's own column dropped."""
    sims[np.arange(len(row_ids)), row_ids] = -np.inf
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    part_sims = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-part_sims, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_sims, order, axis=1)


def knn_exact(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN by blocks of rows; memory O(block × n)."""
    x = normalise_rows(vectors)
    n = len(x)
    block = max(1, min(n, BLOCK_BYTES // (4 * max(n, 1))))
    indices = np.empty((n, k), dtype=np.int64)
    similarities = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = x[start:stop] @ x.T
        idx, sim = _top_k_excluding_self(sims, np.arange(start, stop), k)
        indices[start:stop], similarities[start:stop] = idx, sim
    return indices, similarities


def _drop_self(ids: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From k+1 results per row, remove the row itself (or the last one when self was not found)."""
    n = len(ids)
    is_self = ids == np.arange(n)[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), ids.shape[1] - 1)
    keep = np.ones(ids.shape, dtype=bool)
    keep[np.arange(n), drop] = False
    ids = ids[keep].reshape(n, k)
    sims = sims[keep].reshape(n, k)
    sims[ids < 0] = -np.inf
    return ids.astype(np.int64, copy=False), sims.astype(np.float32, copy=False)


def knn_approximate(vectors: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Approximate cosine kNN with faiss: PCA → IVF-PQ fast-scan candidates → exact re-rank.

    On unit rows, L2² = 2 − 2·cos, so L2 search ranks like cosine. Missing neighbours: -1 / -inf.
    """
    import faiss

    from metrics.embeddings import cpu_cores

    started = time.perf_counter()
    faiss.omp_set_num_threads(cpu_cores())
    x = normalise_rows(vectors)
    n, d = x.shape
    dim = min(PCA_DIM, d)
    nlist = max(1, min(n // 64, int(2 * math.sqrt(n))))
    rng = np.random.default_rng(seed)
    train = x[np.sort(rng.choice(n, size=min(n, max(39 * nlist, 10_000)), replace=False))]
    # PCA → inverted lists of 4-bit PQ codes scanned with SIMD ("fast scan") → exact re-rank in full dims
    index = faiss.index_factory(d, f"PCA{dim},IVF{nlist},PQ{dim // 2}x4fs,RFlat", faiss.METRIC_L2)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.seed = seed
    ivf.cp.niter = KMEANS_ITERATIONS
    ivf.nprobe = min(NPROBE, nlist)
    index.k_factor = RERANK_FACTOR
    index.train(train)
    log.info("knn: PCA %d→%d and %d lists trained in %.1f s", d, dim, nlist, time.perf_counter() - started)
    index.add(x)
    log.info("knn: %d rows added at %.1f s", n, time.perf_counter() - started)
    distances, ids = index.search(x, k + 1)
    log.info("knn: searched at %.1f s", time.perf_counter() - started)
    return _drop_self(ids, 1.0 - distances / 2.0, k)


def knn(vectors: np.ndarray, k: int = 10, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine k nearest neighbours of every row, itself excluded.

    Returns ``(indices, similarities)``, both (n, min(k, n-1)), best first. ``exact=None`` picks exact
    search below ``EXACT_MAX_ROWS`` rows. The approximate path may return fewer than k neighbours for
    a row: missing ones are index -1 with similarity -inf.
    """
    n = len(vectors)
    k = max(0, min(int(k), n - 1))
    if k == 0:
        return np.empty((n, 0), dtype=np.int64), np.empty((n, 0), dtype=np.float32)
    use_exact = n <= EXACT_MAX_ROWS if exact is None else exact
    return knn_exact(vectors, k) if use_exact else knn_approximate(vectors, k)
