"""Cosine k-nearest neighbours of every row, itself excluded.

Exact below ``EXACT_MAX_ROWS`` (blocked matrix multiply, memory bounded by ``BLOCK_BYTES``);
approximate above, with faiss (``faiss-cpu`` on PyPI). Why faiss rather than pynndescent: on 1M
1280-d vectors with 2 cores, pynndescent's graph build takes many minutes, while faiss' PCA + IVF
index builds and searches in well under a minute (figures in docs/BENCHMARKS.md) and needs no JIT
warm-up. The approximate path reduces to ``PCA_DIM`` dimensions, finds ``RERANK_FACTOR`` × k
candidates per row with an inverted-file index of 4-bit PQ codes, then re-ranks them by exact cosine
similarity in C++ (faiss' ``fvec_inner_products_by_idx``, reading the caller's array: a numpy
gather of 44M candidate rows was the bottleneck once, a refine index's copy of the vectors doubled
peak memory).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

import metrics.passive_openmp  # noqa: F401  (before faiss loads its OpenMP runtime)

log = logging.getLogger(__name__)

EXACT_MAX_ROWS = 50_000  # exact search costs n² d: 50k × 50k × 1280 ≈ 3 TFLOP, about a minute here
BLOCK_BYTES = 256 * 2**20  # similarity block kept in memory at once
PCA_DIM = 64  # approximate path: L2 in 64 PCA dims ranks neighbours close to full-dim cosine
RERANK_FACTOR = 4  # candidates per wanted neighbour (PQ codes are lossy), re-ranked exactly in full dims
NPROBE = 8  # inverted lists visited per query
KMEANS_ITERATIONS = 10  # coarse lists only route queries: more iterations barely change recall
PCA_SAMPLE_ROWS = 20_000  # rows the PCA is fitted on: 16× the 1280 dims; the covariance costs n·d²
SHARDED_MIN_ROWS = 2_000_000  # above: metrics.sharded_knn (the in-memory path peaks at ~1.2× the rows)
CHUNK_ROWS = 65_536  # query rows per faiss call: bounds the per-chunk temporaries (~330 MB at 1280-d)


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


def _drop_self(
    ids: np.ndarray, sims: np.ndarray, k: int, row_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """From k+1 results per row, remove the row itself (or the last one when self was not found).

    ``row_ids``: the global id of each result row (default 0..n-1, all rows at once).
    """
    n = len(ids)
    own = np.arange(n) if row_ids is None else np.asarray(row_ids, dtype=np.int64)
    is_self = ids == own[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), ids.shape[1] - 1)
    keep = np.ones(ids.shape, dtype=bool)
    keep[np.arange(n), drop] = False
    ids = ids[keep].reshape(n, k)
    sims = sims[keep].reshape(n, k)
    sims[ids < 0] = -np.inf
    return ids.astype(np.int64, copy=False), sims.astype(np.float32, copy=False)


def _fitted_pca(train: np.ndarray, dim: int):
    """A faiss ``PCAMatrix`` fitted with numpy (one BLAS product + ``eigh``).

    faiss' own PCA training was the slowest part of building the index: 10.4 s against 2.0 s for
    this on 5.8k × 1280 rows, one thread. Same projection up to the sign of each component, which
    does not change any distance.
    """
    import faiss

    mean = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = train - mean
    covariance = (centred.T @ centred).astype(np.float64) / max(1, len(train))
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    pca = faiss.PCAMatrix(train.shape[1], dim)
    faiss.copy_array_to_vector(mean, pca.mean)
    faiss.copy_array_to_vector(eigenvalues[order].astype(np.float32), pca.eigenvalues)
    faiss.copy_array_to_vector(
        np.ascontiguousarray(eigenvectors[:, order].T, dtype=np.float32).ravel(), pca.PCAMat
    )
    pca.is_trained = True
    pca.prepare_Ab()
    return pca


def _rerank(x: np.ndarray, rows: slice, candidates: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine of each query row with its candidates, read in place from ``x``; best ``keep`` first.

    Reading the caller's array (faiss' ``fvec_inner_products_by_idx``) instead of a refine index
    avoids a second copy of every vector (5 GB at 1M × 1280). Candidate ids are sorted within each
    row first: ~20% faster, the reads being closer to sequential.
    """
    return rerank_by_inner_product(x[rows], x, np.sort(candidates, axis=1), keep)


def rerank_by_inner_product(
    queries: np.ndarray, base: np.ndarray, candidates: np.ndarray, keep: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Inner product of each query with its candidate rows of ``base`` (-1 = none); best ``keep`` first.

    ``labels`` (same shape as ``candidates``) are what is returned for each candidate; default the
    candidate row itself. Lets a caller re-rank against a gathered subset of the vectors.
    """
    import faiss

    readable = np.ascontiguousarray(np.maximum(candidates, 0), dtype=np.int64)  # -1 masked below
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    similarities = np.empty(candidates.shape, dtype=np.float32)
    faiss.fvec_inner_products_by_idx(
        faiss.swig_ptr(similarities),
        faiss.swig_ptr(queries),
        faiss.swig_ptr(base),
        faiss.swig_ptr(readable),
        base.shape[1],
        len(queries),
        candidates.shape[1],
    )
    similarities[candidates < 0] = -np.inf
    if keep < candidates.shape[1]:  # partition first: a full sort of 176 candidates cost 4× more
        best = np.argpartition(-similarities, keep - 1, axis=1)[:, :keep]
    else:
        best = np.broadcast_to(np.arange(candidates.shape[1]), candidates.shape)
    order = np.argsort(-np.take_along_axis(similarities, best, axis=1), axis=1, kind="stable")
    best = np.take_along_axis(best, order, axis=1)
    found = np.take_along_axis(candidates if labels is None else labels, best, axis=1)
    return found, np.take_along_axis(similarities, best, axis=1)


def knn_approximate(vectors: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Approximate cosine kNN with faiss: PCA → IVF-PQ fast-scan candidates → exact re-rank.

    Every row is both in the index and a query, so the PCA projection and the coarse lists each row
    probes are computed once and reused for adding and searching (``search_preassigned``). On unit
    rows L2² = 2 − 2·cos, so the L2 candidates are the cosine ones. Missing neighbours: -1 / -inf.
    """
    import faiss
    from faiss.contrib.ivf_tools import search_preassigned

    from metrics.embeddings import cpu_cores

    started = time.perf_counter()
    faiss.omp_set_num_threads(cpu_cores())
    x = normalise_rows(vectors)
    n, d = x.shape
    dim = min(PCA_DIM, d)
    nlist = max(1, min(n // 64, int(2 * math.sqrt(n))))
    rng = np.random.default_rng(seed)
    train = x[np.sort(rng.choice(n, size=min(n, max(39 * nlist, 10_000)), replace=False))]
    pca = _fitted_pca(train[:: max(1, len(train) // PCA_SAMPLE_ROWS)], dim)  # spread over the whole array
    # inverted lists of 4-bit PQ codes scanned with SIMD ("fast scan") in the PCA space
    ivf = faiss.index_factory(dim, f"IVF{nlist},PQ{max(1, dim // 2)}x4fs", faiss.METRIC_L2)
    ivf.cp.seed = seed
    ivf.cp.niter = KMEANS_ITERATIONS
    ivf.nprobe = min(NPROBE, nlist)
    ivf.train(pca.apply(train))
    del train
    log.info("knn: PCA %d→%d and %d lists trained in %.1f s", d, dim, nlist, time.perf_counter() - started)
    reduced = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, CHUNK_ROWS):
        reduced[start : start + CHUNK_ROWS] = pca.apply(x[start : start + CHUNK_ROWS])
    ivf.add(reduced)
    probe_distances = np.empty((n, ivf.nprobe), dtype=np.float32)
    probes = np.empty((n, ivf.nprobe), dtype=np.int64)
    for start in range(0, n, CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        probe_distances[rows], probes[rows] = ivf.quantizer.search(reduced[rows], ivf.nprobe)
    log.info("knn: %d rows projected, added and routed at %.1f s", n, time.perf_counter() - started)
    ids = np.empty((n, k + 1), dtype=np.int64)
    similarities = np.empty((n, k + 1), dtype=np.float32)
    for start in range(0, n, CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        _, candidates = search_preassigned(
            ivf, reduced[rows], RERANK_FACTOR * (k + 1), probes[rows], probe_distances[rows]
        )
        ids[rows], similarities[rows] = _rerank(x, rows, candidates, k + 1)
    log.info("knn: searched and re-ranked at %.1f s", time.perf_counter() - started)
    return _drop_self(ids, similarities, k)


def knn(vectors: np.ndarray, k: int = 10, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine k nearest neighbours of every row, itself excluded.

    Returns ``(indices, similarities)``, both (n, min(k, n-1)), best first. ``exact=None`` picks exact
    search below ``EXACT_MAX_ROWS`` rows and the sharded IVF-PQ path (:mod:`metrics.sharded_knn`, which
    needs no second copy of the rows and reads a memory-mapped array block by block) above
    ``SHARDED_MIN_ROWS``. The approximate path may return fewer than k neighbours for
    a row: missing ones are index -1 with similarity -inf.
    """
    n = len(vectors)
    k = max(0, min(int(k), n - 1))
    if k == 0:
        return np.empty((n, 0), dtype=np.int64), np.empty((n, 0), dtype=np.float32)
    use_exact = n <= EXACT_MAX_ROWS if exact is None else exact
    if exact is None and n > SHARDED_MIN_ROWS:  # bounded memory: the rows are read block by block
        from metrics.sharded_knn import knn_sharded
        from metrics.vector_shards import Shards

        return knn_sharded(Shards.from_array(vectors), k)
    return knn_exact(vectors, k) if use_exact else knn_approximate(vectors, k)
