"""Which metrics drive model performance: ranking metric columns against an outcome, and binning.

Outcomes are per row: for precision, a prediction's TP flag (or IoU × TP); for recall, an
object's "missed" flag. Two measures, because each misses what the other sees:

* mutual information (scikit-learn's k-NN estimator): any dependence, also non-monotone
  (e.g. both tiny and huge objects are missed), in nats, >= 0;
* Spearman rank correlation: the direction of a monotone trend, in [-1, 1].

A ranking alone shows noise as a ranking: a model whose errors are random still gets an ordered
list. :func:`permutation_significance` therefore tests each metric's dependence against a
permutation null (the outcome shuffled, seeded), family-wise over all metrics of the table with
Westfall & Young's max-T, so that "significant" means the same with 3 metrics as with 30.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Mutual information is estimated on at most this many rows (k-NN cost grows ~n log n; a sample of
# this size ranks metrics stably) — chosen by a fixed random state so the ranking is reproducible.
MI_MAX_ROWS = 20_000
# Significance: outcome permutations, the level a metric must beat, and the quantile bins the tested
# statistic (plug-in mutual information of the binned metric and outcome) uses.
N_PERMUTATIONS = 200
SIGNIFICANCE_LEVEL = 0.05
METRIC_BINS = 10
OUTCOME_BINS = 5
# z of a two-sided 95% interval.
Z_95 = 1.959963984540054


def _is_binary(outcome: np.ndarray) -> bool:
    values = np.unique(outcome[~np.isnan(outcome)])
    return values.size <= 2 and np.isin(values, [0.0, 1.0]).all()


def _target_and_columns(
    frame: pd.DataFrame,
    outcome: str | Sequence[float] | np.ndarray | pd.Series,
    metric_columns: Sequence[str] | None,
) -> tuple[np.ndarray, list[str]]:
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
    return target, list(metric_columns)


def _quantile_codes(values: np.ndarray, bins: int) -> np.ndarray:
    """0-based quantile-bin codes (bins that collapse on repeated values are merged)."""
    return np.asarray(pd.qcut(values, bins, labels=False, duplicates="drop"), dtype=np.int64)


def _binned_mi(codes: np.ndarray, classes: np.ndarray, n_codes: int, n_classes: int) -> np.ndarray:
    """Plug-in mutual information (nats) of ``codes`` (n,) with each row of ``classes`` (k, n)."""
    k, n = classes.shape
    flat = (np.arange(k)[:, None] * n_codes + codes[None, :]) * n_classes + classes
    joint = np.bincount(flat.ravel(), minlength=k * n_codes * n_classes).reshape(k, n_codes, n_classes) / n
    rows = joint.sum(axis=2, keepdims=True)
    cols = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / (rows * cols)), 0.0)
    return terms.sum(axis=(1, 2))


def permutation_significance(
    frame: pd.DataFrame,
    outcome: str | Sequence[float] | np.ndarray | pd.Series,
    metric_columns: Sequence[str] | None = None,
    n_permutations: int = N_PERMUTATIONS,
    random_state: int = 0,
) -> pd.DataFrame:
    """Per metric: ``p_value`` of its dependence with the outcome, family-wise over the metrics given.

    The tested statistic is the plug-in mutual information of the metric in METRIC_BINS quantile bins
    with the outcome (binary, or in OUTCOME_BINS quantile bins), which, like the k-NN estimate that
    ranks the metrics, sees any dependence, also non-monotone. Its null: the outcome permuted
    ``n_permutations`` times (seeded by ``random_state``) among the rows where the metric and outcome
    are known; one set of random keys drives every metric's permutations, so the metrics' nulls keep
    their joint dependence. Each statistic is standardised by its own null (mean, standard deviation)
    and compared with the largest standardised null statistic of all metrics in each permutation
    (Westfall & Young's single-step max-T): ``p_value = (1 + #{max null >= observed}) / (1 +
    n_permutations)``, so the chance that any metric of a model with random errors reads p < 0.05
    is at most about 5 %. The smallest possible p is 1 / (1 + n_permutations). ``p_raw`` is the
    metric's own permutation p-value, the same +1 correction, without the family-wise step.
    NaN where the metric or outcome is constant or has fewer than 3 rows. Rows are capped at
    MI_MAX_ROWS by one seeded sample shared by all metrics.
    """
    target, columns = _target_and_columns(frame, outcome, metric_columns)
    rng = np.random.default_rng(random_state)
    rows = np.arange(len(frame))
    if rows.size > MI_MAX_ROWS:
        rows = np.sort(rng.choice(rows.size, MI_MAX_ROWS, replace=False))
    target = target[rows]
    # One random order of the rows per permutation, shared by every metric: a metric's permutation is
    # that order restricted to its own rows (the same as sorting the keys of those rows, but one sort).
    order = np.argsort(rng.random((n_permutations, rows.size)), axis=1)
    observed: dict[str, float] = {}
    nulls: dict[str, np.ndarray] = {}
    for column in columns:
        values = frame[column].to_numpy(dtype=float)[rows]
        ok = np.isfinite(values) & np.isfinite(target)
        x, y = values[ok], target[ok]
        if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        codes = _quantile_codes(x, METRIC_BINS)
        classes = y.astype(np.int64) if _is_binary(y) else _quantile_codes(y, OUTCOME_BINS)
        n_codes, n_classes = int(codes.max()) + 1, int(classes.max()) + 1
        position = np.cumsum(ok) - 1  # row → its index among the metric's rows
        shuffled = classes[position[order[ok[order]].reshape(n_permutations, x.size)]]
        observed[column] = float(_binned_mi(codes, classes[None, :], n_codes, n_classes)[0])
        nulls[column] = _binned_mi(codes, shuffled, n_codes, n_classes)
    p_raw = {c: (1 + int((nulls[c] >= observed[c] - 1e-12).sum())) / (1 + n_permutations) for c in observed}
    p_value: dict[str, float] = {}
    if observed:
        scale = {c: max(float(nulls[c].std()), 1e-12) for c in observed}
        z_null = np.stack([(nulls[c] - nulls[c].mean()) / scale[c] for c in observed])
        max_null = z_null.max(axis=0)
        for c in observed:
            z = (observed[c] - nulls[c].mean()) / scale[c]
            p_value[c] = (1 + int((max_null >= z - 1e-9).sum())) / (1 + n_permutations)
    return pd.DataFrame(
        {
            "metric": columns,
            "p_value": [p_value.get(c, np.nan) for c in columns],
            "p_raw": [p_raw.get(c, np.nan) for c in columns],
        }
    )


def metric_importance(
    frame: pd.DataFrame,
    outcome: str | Sequence[float] | np.ndarray | pd.Series,
    metric_columns: Sequence[str] | None = None,
    random_state: int = 0,
    n_permutations: int = N_PERMUTATIONS,
) -> pd.DataFrame:
    """Per metric column: ``mutual_information``, ``spearman``, ``rows`` used, and ``p_value`` /
    ``significant`` (p < SIGNIFICANCE_LEVEL, from :func:`permutation_significance`); best-informing first.

    ``outcome`` is a column name of ``frame`` or values aligned with its rows. A binary outcome
    uses ``mutual_info_classif``, anything else ``mutual_info_regression``. Rows where the metric
    or outcome is null are left out per metric. ``metric_columns`` defaults to every numeric
    column except the outcome and id-like columns (``*_id``). ``n_permutations=0`` skips the test
    (``p_value`` NaN, nothing significant).
    """
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    target, metric_columns = _target_and_columns(frame, outcome, metric_columns)
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
    if n_permutations > 0:
        tested = permutation_significance(frame, target, metric_columns, n_permutations, random_state)
        table["p_value"] = tested["p_value"].to_numpy()
    else:
        table["p_value"] = np.nan
    table["significant"] = table["p_value"] < SIGNIFICANCE_LEVEL
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
