"""The Model quality tables from hand-made evaluations: no page, no project."""

from __future__ import annotations

import math

import pandas as pd

from store.model_queries import STATS
from store.model_tables import compare_tables, per_class_table


def _evaluation(aps: dict[int, float], stats: dict[str, float] | None = None) -> dict:
    names = {1: "cat", 2: "dog", 3: "eel"}
    return {
        "stats": stats or dict.fromkeys(STATS, 0.5),
        "per_class": [
            {"category_id": c, "category": names[c], "objects": 10 * c, "AP": ap, "AP50": ap, "AP75": -1.0,
             "AR100": ap}
            for c, ap in aps.items()
        ],
    }  # fmt: skip


def test_per_class_table_counts_rates_and_undefined_stats():
    outcomes = pd.DataFrame({"category_id": [1, 2], "tp": [3, 0], "fp": [1, 0], "fn": [1, 0]})
    table = per_class_table(_evaluation({1: 0.7, 2: 0.2, 3: -1.0}), outcomes).set_index("category")
    assert list(table.index) == ["dog", "cat", "eel"]  # worst AP first, undefined (-1) last
    assert table.loc["cat", ["tp", "fp", "fn"]].tolist() == [3, 1, 1]
    assert table.loc["cat", "precision"] == 0.75 and table.loc["cat", "recall"] == 0.75
    assert table.loc["eel", ["tp", "fp", "fn"]].tolist() == [0, 0, 0]  # absent from the outcomes
    assert math.isnan(table.loc["dog", "precision"]) and math.isnan(table.loc["dog", "recall"])  # 0 / 0
    assert table["AP75"].isna().all() and math.isnan(table.loc["eel", "AP"])
    assert table["tp"].dtype.kind == "i"


def test_compare_tables_differences_and_classes_of_either_model():
    first = _evaluation({1: 0.6, 2: 0.4}, stats={**dict.fromkeys(STATS, 0.5), "AP": 0.30})
    second = _evaluation({1: 0.2, 2: -1.0, 3: 0.9}, stats={**dict.fromkeys(STATS, 0.5), "AP": 0.45})
    stats, classes = compare_tables(first, second)
    assert stats["stat"].tolist() == list(STATS) and stats["meaning"].map(bool).all()
    ap = stats.set_index("stat").loc["AP"]
    assert (ap["A"], ap["B"]) == (0.30, 0.45) and math.isclose(ap["B − A"], 0.15)
    assert classes["category_id"].tolist() == [1, 2, 3]  # the largest drop first, then the incomparable
    assert math.isclose(classes.loc[0, "ΔAP (B − A)"], -0.4)
    assert classes.loc[1:, "ΔAP (B − A)"].isna().all()  # dog undefined (-1) in B, eel only in B
