"""Cosine kNN: exact path against brute force, approximate path against exact (recall)."""

from __future__ import annotations

import numpy as np
import pytest

from metrics import knn as knn_module
from metrics.knn import knn, normalise_rows


def brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def clustered(n: int, d: int, clusters: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    return (centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def test_hand_made_neighbours() -> None:
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    idx, sims = knn(x, k=2)
    assert idx.tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]
    assert sims[0, 0] == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-6)
    assert sims[3, 0] == pytest.approx(0.0, abs=1e-6)  # [-1,0]·[0,1]: best remaining is orthogonal
    assert sims.dtype == np.float32 and idx.dtype == np.int64


def test_exact_matches_brute_force_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)
    monkeypatch.setattr(knn_module, "BLOCK_BYTES", 4 * 300 * 7)  # 7 rows a block: many blocks
    idx, sims = knn(x, k=5)
    ref_idx, ref_sims = brute_force(x.astype(np.float64), 5)
    np.testing.assert_allclose(sims, ref_sims, atol=1e-5)
    assert (idx == ref_idx).mean() > 0.99  # ties in float32 may swap order, never values
    assert not (idx == np.arange(300)[:, None]).any()


def test_self_excluded_even_with_exact_duplicates() -> None:
    x = np.array([[1, 1], [1, 1], [1, 1], [0, 1]], dtype=np.float32)
    idx, sims = knn(x, k=2)
    for row in range(3):
        assert row not in idx[row]
        assert set(idx[row]) == {0, 1, 2} - {row}
        np.testing.assert_allclose(sims[row], 1.0, atol=1e-6)


def test_k_is_clipped_to_the_other_rows() -> None:
    idx, sims = knn(np.eye(3, dtype=np.float32), k=10)
    assert idx.shape == (3, 2) and sims.shape == (3, 2)
    idx, sims = knn(np.ones((1, 4), dtype=np.float32), k=10)
    assert idx.shape == (1, 0)


def test_zero_rows_do_not_produce_nan() -> None:
    x = np.array([[0, 0], [1, 0], [0, 1]], dtype=np.float32)
    assert np.isfinite(normalise_rows(x)).all()
    _, sims = knn(x, k=1)
    assert np.isfinite(sims).all()


def test_approximate_recall_against_exact() -> None:
    x = clustered(6000, 64, clusters=40)
    exact_idx, _ = knn(x, k=10, exact=True)
    approx_idx, approx_sims = knn(x, k=10, exact=False)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx_idx, exact_idx, strict=True)])
    assert recall > 0.75, recall  # measured 0.82 here, 0.855 on real blood-cell crop embeddings
    assert not (approx_idx == np.arange(len(x))[:, None]).any()
    assert (np.diff(approx_sims, axis=1) <= 1e-6).all()  # best first
