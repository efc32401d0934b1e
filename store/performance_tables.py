"""The Performance-by-metric page's tables, built from the model's prediction and label frames
(store.model_queries): metric importance with its significance per outcome, the table that puts the
precision and recall sides side by side, and a metric's bins. Pure table building; the page only
draws them (and caches them per model and file signature)."""

from __future__ import annotations

import pandas as pd

from metrics.importance import metric_importance, performance_by_bins

# outcome → the frame it is read from: per prediction ('tp', 'iou_tp') or per label ('missed').
OUTCOME_FRAMES = {"tp": "predictions", "iou_tp": "predictions", "missed": "objects"}
IMPORTANCE_COLUMNS = ["metric", "level", "mutual_information", "spearman", "rows", "p_value", "significant"]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's metric columns ('image:NAME', 'object:NAME')."""
    return [c for c in frame.columns if c.startswith(("image:", "object:"))]


def importance_tables(predictions: pd.DataFrame, objects: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per outcome ('tp', 'iou_tp', 'missed'): metric, level, mutual_information, spearman, rows,
    p_value (family-wise, permutation null: metrics.importance.permutation_significance), significant."""
    frames = {"predictions": predictions, "objects": objects}
    out = {}
    for outcome, source in OUTCOME_FRAMES.items():
        frame = frames[source]
        table = metric_importance(frame, outcome, metric_columns(frame))
        table["level"] = table["metric"].str.split(":").str[0]
        table["metric"] = table["metric"].str.split(":", n=1).str[1]
        out[outcome] = table[IMPORTANCE_COLUMNS]
    return out


def combined_importance(tables: dict[str, pd.DataFrame], side: str) -> pd.DataFrame:
    """One row per metric: the precision side ``side`` ('tp' or 'iou_tp') beside the recall side,
    most informative about misses first."""
    precision = tables[side].rename(
        columns={
            "mutual_information": "MI (precision)",
            "spearman": "ρ (precision)",
            "rows": "predictions",
            "p_value": "p (precision)",
            "significant": "significant (precision)",
        }
    )
    recall = tables["missed"].rename(
        columns={
            "mutual_information": "MI (recall)",
            "spearman": "ρ (missed)",
            "rows": "labels",
            "p_value": "p (recall)",
            "significant": "significant (recall)",
        }
    )
    combined = precision.merge(recall, on=["metric", "level"], how="outer")
    return combined.sort_values("MI (recall)", ascending=False, na_position="last").reset_index(drop=True)


def bins_table(
    predictions: pd.DataFrame, objects: pd.DataFrame, column: str, n_bins: int, category_id: int | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(precision bins over predictions, FN-rate bins over labels) of one metric column, optionally one class."""
    if category_id is not None:
        predictions = predictions[predictions["category_id"] == category_id]
        objects = objects[objects["category_id"] == category_id]
    precision = performance_by_bins(predictions[column], predictions["tp"], n_bins)
    misses = performance_by_bins(objects[column], objects["missed"], n_bins)
    return precision, misses
