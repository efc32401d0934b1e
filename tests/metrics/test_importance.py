"""Metric importance ranks real drivers first; bins report rates with correct Wilson intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrics.importance import (
    metric_importance,
    performance_by_bins,
    permutation_significance,
    wilson_interval,
)
from tests.metrics.coco_reference import ours
from tests.metrics.generated_predictions import generate_predictions, load_coco, renumber_ids


def synthetic(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    driver = rng.uniform(0, 1, n)  # monotone: higher -> more misses
    u_shape = rng.uniform(-1, 1, n)  # extremes missed, middle found
    noise = rng.normal(0, 1, n)
    p_missed = 0.05 + 0.5 * driver + 0.4 * (np.abs(u_shape) > 0.7)
    missed = rng.random(n) < np.clip(p_missed, 0, 1)
    frame = pd.DataFrame({"object_id": np.arange(n), "driver": driver, "u_shape": u_shape, "noise": noise})
    frame["missed"] = missed
    frame.loc[::50, "noise"] = np.nan  # nulls are left out per metric
    return frame


def test_importance_ranks_drivers_and_signs() -> None:
    table = metric_importance(synthetic(), "missed").set_index("metric")
    assert list(table.index[:2]) == ["driver", "u_shape"] or list(table.index[:2]) == ["u_shape", "driver"]
    assert table.index[-1] == "noise"
    assert "object_id" not in table.index
    assert table.loc["driver", "spearman"] > 0.2
    assert abs(table.loc["u_shape", "spearman"]) < 0.1
    assert table.loc["u_shape", "mutual_information"] > 5 * table.loc["noise", "mutual_information"] + 0.02
    assert table.loc["noise", "mutual_information"] < 0.01
    assert table.loc["noise", "rows"] == 4000 - 80


def test_importance_with_continuous_outcome_and_constant_column() -> None:
    frame = synthetic()
    frame["constant"] = 1.0
    outcome = frame["driver"] * 2 + np.random.default_rng(1).normal(0, 0.1, len(frame))
    table = metric_importance(frame, outcome.to_numpy(), ["driver", "noise", "constant"]).set_index("metric")
    assert table.index[0] == "driver" and table.loc["driver", "spearman"] > 0.95
    assert np.isnan(table.loc["constant", "mutual_information"])


def test_importance_on_real_predictions() -> None:
    gt = renumber_ids(load_coco("blood_cells"))
    result, _ = ours(gt, generate_predictions(gt, seed=3), "bbox")
    preds = result.predictions_frame()
    preds["area"] = result.pred_area
    table = metric_importance(preds, "tp_50", ["best_iou", "score", "area"])
    assert table["metric"].iloc[0] == "best_iou"
    assert table.set_index("metric").loc["best_iou", "spearman"] > 0.5


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(np.array([0, 5, 10]), np.array([10, 10, 10]))
    np.testing.assert_allclose(low, [0.0, 0.236593, 0.722467], atol=1e-6)
    np.testing.assert_allclose(high, [0.277533, 0.763407, 1.0], atol=1e-6)


def test_performance_by_bins() -> None:
    frame = synthetic()
    bins = performance_by_bins(frame["driver"], frame["missed"], n_bins=5)
    assert len(bins) == 5 and bins["count"].sum() == len(frame)
    assert bins["rate"].is_monotonic_increasing
    assert (bins["ci_low"] <= bins["rate"]).all() and (bins["rate"] <= bins["ci_high"]).all()
    first = frame["driver"] <= bins["high"].iloc[0]
    assert bins["rate"].iloc[0] == pytest.approx(frame.loc[first, "missed"].mean())
    # Repeated values collapse bins rather than failing; nulls are dropped.
    repeated = performance_by_bins([1, 1, 1, 1, 2, np.nan], [1, 0, 1, 0, 1, 1], n_bins=4)
    assert repeated["count"].sum() == 5
    continuous = performance_by_bins(frame["driver"], frame["driver"] * 0.5, n_bins=4)
    assert (continuous["ci_high"] - continuous["ci_low"] > 0).all()
    assert performance_by_bins([], []).empty


# ----- significance against a permutation null ----------------------------------------------------------------------


def _metric_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.random.Generator]:
    """Twelve object metrics with the spread of real ones (sizes log-normal, scores uniform, some nulls)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"metric_{i}": rng.normal(size=n) for i in range(10)})
    frame["area"] = rng.lognormal(6, 1.2, n)
    frame["sharpness"] = rng.uniform(0, 1, n)
    frame.loc[rng.random(n) < 0.15, "sharpness"] = np.nan  # a metric known for only some rows
    return frame, rng


@pytest.mark.parametrize("seed", range(5))
def test_model_with_random_errors_has_no_significant_metric(seed: int) -> None:
    frame, rng = _metric_frame(3000, seed)
    missed = rng.random(len(frame)) < 0.3  # misses that depend on nothing
    table = metric_importance(frame, missed.astype(float)).set_index("metric")
    assert len(table) == 12 and table["p_value"].notna().all()
    assert not table["significant"].any(), table.sort_values("p_value").head(3)
    # The ranking itself still orders noise: what the significance is for.
    assert table["mutual_information"].max() > 0


def test_planted_dependence_on_object_size_is_significant() -> None:
    frame, rng = _metric_frame(3000, 0)
    small = frame["area"] < frame["area"].quantile(0.3)
    missed = rng.random(len(frame)) < np.where(small, 0.45, 0.30)  # small objects missed more often
    table = metric_importance(frame, missed.astype(float)).set_index("metric")
    assert table.loc["area", "significant"] and table.loc["area", "p_value"] == pytest.approx(1 / 201)
    assert table.loc["area", "spearman"] < 0
    assert table["significant"].sum() == 1, table.sort_values("p_value").head(3)


def test_planted_dependence_of_a_continuous_outcome_and_the_plus_one_correction() -> None:
    frame, rng = _metric_frame(2000, 1)
    iou_tp = np.clip(0.5 + 0.3 * frame["sharpness"].fillna(0.5) + rng.normal(0, 0.3, len(frame)), 0, 1)
    iou_tp[rng.random(len(frame)) < 0.3] = 0.0  # false positives: IoU × TP = 0
    tested = permutation_significance(frame, iou_tp.to_numpy(), n_permutations=99, random_state=3)
    tested = tested.set_index("metric")
    assert tested.loc["sharpness", "p_value"] == pytest.approx(1 / 100)  # never 0: (1 + 0) / (1 + 99)
    assert (tested.drop(index="sharpness")["p_value"] >= 0.05).all()
    assert (tested["p_raw"] <= tested["p_value"] + 1e-12).all()  # family-wise is never below the metric's own
    again = permutation_significance(frame, iou_tp.to_numpy(), n_permutations=99, random_state=3)
    pd.testing.assert_frame_equal(again.set_index("metric"), tested)  # seeded


def test_constant_metric_and_no_permutations() -> None:
    frame = synthetic(500)
    frame["constant"] = 1.0
    table = metric_importance(frame, "missed", ["driver", "constant"]).set_index("metric")
    assert np.isnan(table.loc["constant", "p_value"]) and not table.loc["constant", "significant"]
    assert table.loc["driver", "significant"]
    untested = metric_importance(frame, "missed", ["driver"], n_permutations=0)
    assert untested["p_value"].isna().all() and not untested["significant"].any()
