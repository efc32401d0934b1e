"""Tukey fences: exact flags on hand-made values, and the report summary on real TACO areas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrics.outliers import iqr_bounds, iqr_flags, summary

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_fences_follow_the_quartiles_and_sets_are_disjoint():
    bounds = iqr_bounds([1, 2, 3, 4, 5, 6, 7, 8])
    assert (bounds["q1"], bounds["q3"], bounds["iqr"]) == (2.75, 6.25, 3.5)
    assert (bounds["moderate_low"], bounds["moderate_high"]) == (-2.5, 11.5)
    assert (bounds["severe_low"], bounds["severe_high"]) == (-6.0, 15.0)
    values = [1, 2, 3, 4, 5, 6, 7, 8, 15, 19, 20, -4, -9]
    moderate, severe, bounds = iqr_flags(values)
    q1, q3 = np.percentile(values, [25, 75])
    assert bounds["moderate_high"] == pytest.approx(q3 + 1.5 * (q3 - q1))
    assert bounds["severe_low"] == pytest.approx(q1 - 2.5 * (q3 - q1))
    assert not (moderate & severe).any() and (moderate | severe).sum() > 0


def test_exact_flags_on_a_small_series():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 16, 30]  # Q1 = 3.25, Q3 = 7.75, IQR = 4.5
    moderate, severe, bounds = iqr_flags(values)
    assert (bounds["moderate_high"], bounds["severe_high"]) == (14.5, 19.0)
    assert moderate.tolist() == [False] * 8 + [True, False]  # 16: beyond 1.5×IQR, inside 2.5×IQR
    assert severe.tolist() == [False] * 9 + [True]  # 30: beyond 2.5×IQR
    assert summary(values) == {
        "count": 10,
        "mean": 8.2,
        "median": 5.5,
        "min": 1.0,
        "max": 30.0,
        "moderate_outliers": 1,
        "severe_outliers": 1,
    }


def test_nan_none_and_inf_are_ignored_and_never_flagged():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 16, 30, None, float("nan"), float("inf")]
    moderate, severe, _ = iqr_flags(values)
    assert moderate.sum() == 1 and severe.sum() == 1
    assert not moderate[10:].any() and not severe[10:].any()
    assert summary(values)["count"] == 10
    nullable = pd.Series([1.0, None, 3.0], dtype="Float64")
    assert summary(nullable)["count"] == 2 and summary(nullable)["mean"] == 2.0


def test_empty_and_constant_inputs():
    empty = summary([None, float("nan")])
    assert empty["count"] == 0 and empty["median"] is None and empty["moderate_outliers"] == 0
    moderate, severe, _ = iqr_flags([])
    assert moderate.shape == (0,) and severe.shape == (0,)
    # IQR 0: anything different from the constant is beyond both fences
    moderate, severe, _ = iqr_flags([5, 5, 5, 5, 5, 6])
    assert severe.tolist() == [False] * 5 + [True] and not moderate.any()


def test_taco_relative_areas_have_a_long_tail_of_large_objects():
    path = DATA / "taco" / "annotations.json"
    if not path.is_file():
        pytest.skip(f"shared test data {path} is absent")
    data = json.loads(path.read_text())
    sizes = {i["id"]: i["width"] * i["height"] for i in data["images"]}
    relative = [a["area"] / sizes[a["image_id"]] for a in data["annotations"]]
    result = summary(relative)
    moderate, severe, bounds = iqr_flags(relative)
    assert result["count"] == 4784
    assert result["median"] == pytest.approx(0.00176, abs=0.00001)
    assert result["severe_outliers"] == int(severe.sum()) > result["moderate_outliers"] > 0
    assert bounds["moderate_low"] < 0  # small objects can't be low outliers: the tail is one-sided
    assert (np.asarray(relative)[severe] > bounds["severe_high"]).all()
