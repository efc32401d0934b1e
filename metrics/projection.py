"""2D map of embeddings for the explorer's scatter plot.

UMAP (``umap-learn`` on PyPI) keeps local neighbourhoods and global layout best; when it is not
installed we fall back to t-SNE (scikit-learn), and PCA is always available (fast, linear, for very
large sets or a quick first look). Wide embeddings are reduced to ``PRE_PCA_DIM`` with PCA first (on unit-length rows, so
Euclidean distances rank like cosine): the neighbour graph barely changes and UMAP / t-SNE run several times faster.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import numpy as np

Method = Literal["umap", "pca", "tsne"]
PRE_PCA_DIM = 50


def umap_available() -> bool:
    return importlib.util.find_spec("umap") is not None


def _pca(x: np.ndarray, dim: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    dim = min(dim, x.shape[1], len(x))
    return PCA(n_components=dim, random_state=seed).fit_transform(x)


def project_2d(vectors: np.ndarray, method: Method = "umap", seed: int = 0) -> np.ndarray:
    """(n, 2) float32 coordinates; deterministic for a given seed.

    ``method='umap'`` falls back to t-SNE when umap-learn is missing. Fewer than 3 rows cannot be
    embedded meaningfully by UMAP / t-SNE and use PCA (zeros padded where there is no variance).
    """
    from metrics.knn import normalise_rows

    x = normalise_rows(np.asarray(vectors, dtype=np.float32))  # Euclidean on unit rows ranks like cosine
    n = len(x)
    if method not in ("umap", "pca", "tsne"):
        raise ValueError(f"unknown projection method {method!r}: use 'umap', 'pca' or 'tsne'")
    if n == 0:
        return np.empty((0, 2), dtype=np.float32)
    if method == "umap" and not umap_available():
        method = "tsne"
    if n < 3 or method == "pca":
        out = np.zeros((n, 2), dtype=np.float32)
        if n >= 2:
            coords = _pca(x, 2, seed)
            out[:, : coords.shape[1]] = coords
        return out
    reduced = _pca(x, PRE_PCA_DIM, seed) if x.shape[1] > PRE_PCA_DIM else x
    if method == "umap":
        import umap

        reducer = umap.UMAP(
            n_components=2, n_neighbors=min(15, n - 1), metric="euclidean", random_state=seed, n_jobs=1
        )
        return reducer.fit_transform(reduced).astype(np.float32)
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(reduced).astype(np.float32)
