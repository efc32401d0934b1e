"""Outliers by Tukey's fences on the interquartile range (IQR), as the report contract says.

With Q1, Q3 the 25th/75th percentiles (linear interpolation) and IQR = Q3 − Q1:

* severe:   value < Q1 − 2.5·IQR  or  value > Q3 + 2.5·IQR
* moderate: beyond the 1.5·IQR fence but *not* beyond the 2.5·IQR fence

so the two sets are disjoint and ``moderate_outliers + severe_outliers`` is every value outside
the 1.5·IQR fences (Tukey's "outside" vs "far out"). NaN / None / ±inf values are ignored: they
never count, never flag and do not move the quartiles.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

MODERATE_IQR = 1.5  # Tukey's inner fence
SEVERE_IQR = 2.5  # cocolens' outer fence (the report contract), stricter than Tukey's 3.0
# The fences in words, for every help text that explains the outlier bands.
MODERATE_TEXT = f"{MODERATE_IQR:g}–{SEVERE_IQR:g}×IQR beyond the quartiles"
SEVERE_TEXT = f"beyond {SEVERE_IQR:g}×IQR"


def _as_float(values: Iterable[Any]) -> np.ndarray:
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=object)
    out = np.full(arr.shape, np.nan, dtype=np.float64)
    for i, v in enumerate(arr.ravel()):
        try:
            out.flat[i] = np.nan if v is None else float(v)
        except (TypeError, ValueError):
            out.flat[i] = np.nan
    return out


def to_float_array(values: Iterable[Any]) -> np.ndarray:
    """Values (floats, None, pandas NA) → float64 array with NaN for anything not a finite number."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        arr = _as_float(values)
    arr = arr.astype(np.float64, copy=True).ravel()
    arr[~np.isfinite(arr)] = np.nan
    return arr


def iqr_bounds(values: Iterable[Any]) -> dict[str, float]:
    """Quartiles and fences: q1, q3, iqr, moderate_low/high (1.5·IQR), severe_low/high (2.5·IQR)."""
    arr = to_float_array(values)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        nan = float("nan")
        return dict.fromkeys(
            ["q1", "q3", "iqr", "moderate_low", "moderate_high", "severe_low", "severe_high"], nan
        )
    q1, q3 = (float(q) for q in np.percentile(finite, [25, 75]))
    return {"q1": q1, "q3": q3, "iqr": q3 - q1, **fences(q1, q3)}


def fences(q1: float, q3: float) -> dict[str, float]:
    """moderate_low/high and severe_low/high from the quartiles: the one place the factors are applied
    (the SQL summaries in ``store`` apply the same :data:`MODERATE_IQR` / :data:`SEVERE_IQR`)."""
    iqr = q3 - q1
    return {
        "moderate_low": q1 - MODERATE_IQR * iqr,
        "moderate_high": q3 + MODERATE_IQR * iqr,
        "severe_low": q1 - SEVERE_IQR * iqr,
        "severe_high": q3 + SEVERE_IQR * iqr,
    }


def iqr_flags(values: Iterable[Any]) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """(moderate, severe, bounds): disjoint bool arrays in input order, and the fences used."""
    arr = to_float_array(values)
    bounds = iqr_bounds(arr)
    finite = np.isfinite(arr)
    with np.errstate(invalid="ignore"):
        beyond_moderate = finite & ((arr < bounds["moderate_low"]) | (arr > bounds["moderate_high"]))
        severe = finite & ((arr < bounds["severe_low"]) | (arr > bounds["severe_high"]))
    return beyond_moderate & ~severe, severe, bounds


def summary(values: Iterable[Any]) -> dict[str, float | int | None]:
    """The report's per-metric summary: count, mean, median, min, max, moderate/severe outliers.

    ``count`` is the number of finite values; statistics are None when there are none.
    """
    arr = to_float_array(values)
    finite = arr[np.isfinite(arr)]
    moderate, severe, _ = iqr_flags(arr)
    if finite.size == 0:
        stats: dict[str, float | None] = dict.fromkeys(["mean", "median", "min", "max"], None)
    else:
        stats = {
            "mean": float(finite.mean()),
            "median": float(np.median(finite)),
            "min": float(finite.min()),
            "max": float(finite.max()),
        }
    return {
        "count": int(finite.size),
        **stats,
        "moderate_outliers": int(moderate.sum()),
        "severe_outliers": int(severe.sum()),
    }
