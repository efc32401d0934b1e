"""KS comparison, ranking and shared histograms on distributions with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.distribution_compare import compare, rank, shared_histograms


def test_identical_samples_have_zero_ks() -> None:
    values = np.arange(100.0)
    result = compare("m", values, values)
    assert result.ks == 0.0 and result.p_value == pytest.approx(1.0)
    assert result.mean_a == result.mean_b == 49.5


def test_disjoint_samples_have_ks_one() -> None:
    result = compare("m", [1, 2, 3], [10, 11, 12, 13])
    assert result.ks == 1.0
    assert result.n_a == 3 and result.n_b == 4
    assert result.median_b == 11.5


def test_shift_of_half_a_uniform_range() -> None:
    rng = np.random.default_rng(0)
    result = compare("m", rng.uniform(0, 1, 20_000), rng.uniform(0.5, 1.5, 20_000))
    assert result.ks == pytest.approx(0.5, abs=0.02)  # the CDFs differ by 0.5 at x = 0.5
    assert result.p_value < 1e-100


def test_nulls_and_non_finite_are_ignored() -> None:
    result = compare("m", [1.0, None, np.nan, np.inf, 2.0], [])
    assert result.n_a == 2 and result.n_b == 0
    assert result.ks is None and result.mean_b is None


def test_rank_orders_by_ks_with_missing_last() -> None:
    table = rank(
        [compare("same", [1, 2], [1, 2]), compare("none", [1], []), compare("apart", [1, 2], [5, 6])]
    )
    assert table["metric"].tolist() == ["apart", "same", "none"]


def test_shared_histograms_are_normalised_on_common_edges() -> None:
    edges, da, db = shared_histograms(np.zeros(10), np.ones(1000), bins=4)
    assert edges[0] == 0.0 and edges[-1] == 1.0 and len(da) == len(db) == 4
    assert da.sum() == pytest.approx(1.0) and db.sum() == pytest.approx(1.0)
    assert da[0] == 1.0 and db[-1] == 1.0
    edges, da, db = shared_histograms([3.0, 3.0], [3.0])
    assert edges[0] < 3.0 < edges[-1] and da.sum() == pytest.approx(1.0)
