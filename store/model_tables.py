"""The Model quality page's tables, from a model's stored evaluation (``eval.json``) and class outcomes.

Pure pandas over what ``store.model_queries`` reads, so the figures are testable without a page and
the page only draws them. Negative COCO stats (-1: no object of that area or class) become missing,
never a number to sort or subtract.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from store.model_queries import STAT_MEANINGS, STATS

PER_CLASS_STATS = ("AP", "AP50", "AP75", "AR100")


def _defined(values: pd.Series) -> pd.Series:
    """COCO's -1 (undefined) as missing."""
    return values.where(values >= 0)


def per_class_table(evaluation: dict[str, Any], outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per class: AP, AP50, AP75, AR100 over every threshold (missing where undefined) with
    ``tp`` / ``fp`` / ``fn`` at the chosen threshold (``outcomes``: category_id, tp, fp, fn; a class
    absent from it counts 0), and precision / recall from them (missing when the denominator is 0).
    Worst AP first, undefined last."""
    per_class = pd.DataFrame(evaluation["per_class"])[
        ["category_id", "category", "objects", *PER_CLASS_STATS]
    ]
    table = per_class.merge(outcomes, on="category_id", how="left").fillna({"tp": 0, "fp": 0, "fn": 0})
    for name in ("tp", "fp", "fn"):
        table[name] = table[name].astype(int)
    table["precision"] = table["tp"] / (table["tp"] + table["fp"]).where(lambda s: s > 0)
    table["recall"] = table["tp"] / (table["tp"] + table["fn"]).where(lambda s: s > 0)
    for name in PER_CLASS_STATS:
        table[name] = _defined(table[name])
    return table.sort_values("AP", ascending=True, na_position="last").reset_index(drop=True)


def compare_tables(first: dict[str, Any], second: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Model A (``first``) against model B (``second``), both evaluations of one IoU type:
    (the 12 stats with their meaning, A, B and B − A; per-class AP of both with ΔAP = B − A, classes
    of either model, largest drop first, classes without both APs last)."""
    stats = pd.DataFrame(
        {
            "stat": STATS,
            "meaning": [STAT_MEANINGS[s] for s in STATS],
            "A": [first["stats"].get(s) for s in STATS],
            "B": [second["stats"].get(s) for s in STATS],
        }
    )
    stats["B − A"] = stats["B"] - stats["A"]
    a = pd.DataFrame(first["per_class"])[["category_id", "category", "objects", "AP"]]
    b = pd.DataFrame(second["per_class"])[["category_id", "AP"]]
    classes = a.merge(b, on="category_id", how="outer", suffixes=(" A", " B"))
    for name in ("AP A", "AP B"):
        classes[name] = _defined(classes[name])
    classes["ΔAP (B − A)"] = classes["AP B"] - classes["AP A"]
    return stats, classes.sort_values("ΔAP (B − A)", na_position="last").reset_index(drop=True)
