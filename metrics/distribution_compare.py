"""How differently one metric is distributed in two datasets: KS statistic, means, shared histograms.

Used by the Compare page to rank every metric by how much two datasets differ (e.g. TACO's
official vs crowd-sourced split). The two-sample Kolmogorov–Smirnov statistic is the largest gap
between the two empirical CDFs: 0 = identical distributions, 1 = no overlap at all. It needs no
binning and no assumption about the shape, and it is bounded, so metrics with different units
rank on one scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# Histograms span these pooled quantiles so one extreme value does not squash every bar into one bin.
HIST_QUANTILES = (0.001, 0.999)
HIST_BINS = 40


@dataclass(frozen=True)
class Comparison:
    """One metric in two datasets."""

    metric: str
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    median_a: float | None
    median_b: float | None
    ks: float | None  # None when either side has no values
    p_value: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _finite(values: Any) -> np.ndarray:
    """Finite float64 values; numeric arrays skip the (slow) generic conversion of mixed input."""
    array = np.asarray(values)
    if array.dtype.kind not in "fiub":
        array = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").to_numpy()
    array = array.astype(np.float64, copy=False)
    return array[np.isfinite(array)]


def compare(metric: str, a: Any, b: Any) -> Comparison:
    """KS statistic (scipy.stats.ks_2samp, two-sided), p-value, means and medians of finite values."""
    from scipy.stats import ks_2samp

    a, b = _finite(a), _finite(b)
    ks = p = None
    if len(a) and len(b):
        result = ks_2samp(
            a, b, alternative="two-sided", method="auto" if len(a) * len(b) < 10_000 else "asymp"
        )
        ks, p = float(result.statistic), float(result.pvalue)
    return Comparison(
        metric=metric,
        n_a=len(a),
        n_b=len(b),
        mean_a=float(a.mean()) if len(a) else None,
        mean_b=float(b.mean()) if len(b) else None,
        median_a=float(np.median(a)) if len(a) else None,
        median_b=float(np.median(b)) if len(b) else None,
        ks=ks,
        p_value=p,
    )


def rank(comparisons: list[Comparison]) -> pd.DataFrame:
    """Comparisons as a table, most different first (KS descending; metrics without a KS last)."""
    columns = list(Comparison.__dataclass_fields__)
    frame = pd.DataFrame([c.as_dict() for c in comparisons], columns=columns)
    return frame.sort_values(["ks", "metric"], ascending=[False, True], na_position="last").reset_index(
        drop=True
    )


def shared_histograms(a: Any, b: Any, bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges, density_a, density_b) on common bins; each density sums to 1 (fraction of its values).

    Normalised so a dataset with 8,000 objects and one with 4,000 compare by shape, not size.
    Values beyond the pooled quantile range are counted in the first/last bin.
    """
    a, b = _finite(a), _finite(b)
    pooled = np.concatenate([a, b])  # callers pass sampled arrays (≤ ~50k each): quantiles stay cheap
    if len(pooled) == 0:
        return np.array([0.0, 1.0]), np.zeros(1), np.zeros(1)
    low, high = np.quantile(pooled, HIST_QUANTILES)
    if not high > low:
        low, high = float(pooled.min()), float(pooled.max())
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)

    def density(values: np.ndarray) -> np.ndarray:
        if len(values) == 0:
            return np.zeros(bins)
        counts, _ = np.histogram(np.clip(values, low, high), bins=edges)
        return counts / len(values)

    return edges, density(a), density(b)
