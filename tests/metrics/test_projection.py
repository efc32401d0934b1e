"""2D map: shapes, determinism, and that separate clusters stay separate."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.projection import project_2d, umap_available


def three_clusters(n_per: int = 25, d: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = 5.0 * rng.normal(size=(3, d))
    labels = np.repeat(np.arange(3), n_per)
    return (centres[labels] + rng.normal(size=(3 * n_per, d))).astype(np.float32), labels


def separation(coords: np.ndarray, labels: np.ndarray) -> float:
    """Smallest distance between cluster centres over the largest within-cluster spread."""
    centres = np.array([coords[labels == c].mean(axis=0) for c in np.unique(labels)])
    spread = max(np.linalg.norm(coords[labels == c] - centres[c], axis=1).mean() for c in np.unique(labels))
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1 :]]
    return min(gaps) / spread


# umap's first call JIT-compiles with numba: ~30 s on a quiet 2-core machine, minutes on a busy one
@pytest.mark.parametrize("method", ["pca", "tsne", pytest.param("umap", marks=pytest.mark.slow)])
def test_clusters_stay_apart_and_runs_repeat(method: str) -> None:
    if method == "umap" and not umap_available():
        pytest.skip("umap-learn not installed (project_2d falls back to t-SNE)")
    x, labels = three_clusters()
    coords = project_2d(x, method=method, seed=3)
    assert coords.shape == (75, 2) and coords.dtype == np.float32 and np.isfinite(coords).all()
    assert separation(coords, labels) > 2.0
    np.testing.assert_allclose(project_2d(x, method=method, seed=3), coords, atol=1e-4)


def test_tiny_inputs() -> None:
    assert project_2d(np.empty((0, 8), dtype=np.float32)).shape == (0, 2)
    assert project_2d(np.ones((1, 8), dtype=np.float32)).tolist() == [[0.0, 0.0]]
    two = project_2d(np.eye(2, 8, dtype=np.float32), method="umap")
    assert two.shape == (2, 2) and abs(two[0, 0] - two[1, 0]) > 0.1


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown projection method"):
        project_2d(np.eye(4, dtype=np.float32), method="mds")  # type: ignore[arg-type]
