"""Which metrics drive model performance: ranking metric columns against an outcome, and binning.

Outcomes are per row: for precision, a prediction's TP flag (or IoU × TP); for recall, an
object's "missed" flag. Two measures, because each misses what the other sees:

* mutual information (scikit-learn's k-NN estimator): any dependence, also non-monotone
  (e.g. both tiny and huge objects are missed), in nats, >= 0;
* Spearman rank correlation: the direction of a monotone trend, in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Mutual information is estimated on at most this many rows (k-NN cost grows ~n log n; a sample of
# this size ranks metrics stably) — chosen by a fixed random state so the ranking is reproducible.
MI_MAX_ROWS = 20_000
# z of a two-sided 95% interval.
Z_95 = 1.959963984540054


def _is_binary(outcome: np.ndarray) -> bool:
    values = np.unique(outcome[~np.isnan(outcome)])
    return values.size <= 2 and np.isin(values, [0.0, 1.0]).all()


def metric_importance(
    frame: pd.DataFrame,
    outcome: str | Sequence[float] | np.ndarray | pd.Series,
    metric_columns: Sequence[str] | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """Per metric column: ``mutual_information``, ``spearman``, ``rows`` used; best-informing first.

    ``outcome`` is a column name of ``frame`` or values aligned with its rows. A binary outcome
    uses ``mutual_info_classif``, anything else ``mutual_info_regression``. Rows where the metric
    or outcome is null are left out per metric. ``metric_columns`` defaults to every numeric
    column except the outcome and id-like columns (``*_id``).
    """
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    if isinstance(outcome, str):
        target_name = outcome
        target = frame[outcome].to_numpy(dtype=float)
    else:
        target_name = None
        target = np.asarray(outcome, dtype=float)
    if len(target) != len(frame):
        raise ValueError(f"outcome has {len(target)} values for {len(frame)} rows")
    if metric_columns is None:
        metric_columns = [
            c
            for c in frame.columns
            if c != target_name
            and not str(c).endswith("_id")
            and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
        ]
    binary = _is_binary(target)
    rng = np.random.default_rng(random_state)
    rows = []
    for column in metric_columns:
        values = frame[column].to_numpy(dtype=float)
        ok = np.isfinite(values) & np.isfinite(target)
        x, y = values[ok], target[ok]
        mi, rho = np.nan, np.nan
        if x.size >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            rho = float(pd.Series(x).rank().corr(pd.Series(y).rank()))
            if x.size > MI_MAX_ROWS:
                pick = rng.choice(x.size, MI_MAX_ROWS, replace=False)
                x_mi, y_mi = x[pick], y[pick]
            else:
                x_mi, y_mi = x, y
            if binary:
                mi = float(mutual_info_classif(x_mi[:, None], y_mi.astype(int), random_state=random_state)[0])
            else:
                mi = float(mutual_info_regression(x_mi[:, None], y_mi, random_state=random_state)[0])
        rows.append({"metric": column, "mutual_information": mi, "spearman": rho, "rows": int(x.size)})
    table = pd.DataFrame(rows, columns=["metric", "mutual_information", "spearman", "rows"])
    table = table.sort_values("mutual_information", ascending=False, na_position="last", kind="stable")
    return table.reset_index(drop=True)


def wilson_interval(
    successes: np.ndarray, count: np.ndarray, z: float = Z_95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion (stays inside [0, 1] and behaves at 0 or n successes)."""
    successes = np.asarray(successes, dtype=float)
    count = np.asarray(count, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / count
        denominator = 1 + z**2 / count
        centre = (p + z**2 / (2 * count)) / denominator
        half = z * np.sqrt(p * (1 - p) / count + z**2 / (4 * count**2)) / denominator
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def performance_by_bins(
    metric_values: Sequence[float] | np.ndarray | pd.Series,
    outcome: Sequence[float] | np.ndarray | pd.Series,
    n_bins: int = 10,
) -> pd.DataFrame:
    """Quantile bins of a metric with ``count``, ``rate`` (mean outcome) and a 95% interval.

    Binary outcomes get Wilson intervals; others the normal interval of the mean. Bins that
    collapse on repeated values are merged; null metric values are left out.
    """
    values = np.asarray(metric_values, dtype=float)
    target = np.asarray(outcome, dtype=float)
    ok = np.isfinite(values) & np.isfinite(target)
    values, target = values[ok], target[ok]
    columns = ["bin", "low", "high", "count", "rate", "ci_low", "ci_high"]
    if values.size == 0:
        return pd.DataFrame(columns=columns)
    codes, edges = pd.qcut(values, n_bins, labels=False, retbins=True, duplicates="drop")
    codes = np.asarray(codes, dtype=np.int64)
    n = len(edges) - 1
    count = np.bincount(codes, minlength=n).astype(float)
    total = np.bincount(codes, weights=target, minlength=n)
    rate = total / np.maximum(count, 1)
    if _is_binary(target):
        low, high = wilson_interval(total, count)
    else:
        squares = np.bincount(codes, weights=target**2, minlength=n)
        variance = np.maximum(squares / np.maximum(count, 1) - rate**2, 0) * count / np.maximum(count - 1, 1)
        half = Z_95 * np.sqrt(variance / np.maximum(count, 1))
        low, high = rate - half, rate + half
    return pd.DataFrame(
        {
            "bin": np.arange(n),
            "low": edges[:-1],
            "high": edges[1:],
            "count": count.astype(np.int64),
            "rate": rate,
            "ci_low": low,
            "ci_high": high,
        }
    )
