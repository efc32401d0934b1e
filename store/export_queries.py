"""What the Filter & export page reads besides the filter itself: class names, metric bounds, file names.

Values go in as parameters, never spliced into the SQL; each function returns only what the page
draws (the page runs no SQL of its own).
"""

from __future__ import annotations

import pandas as pd

from store.queries import ProjectReader


def _marks(values: list) -> str:
    return ", ".join("?" for _ in values)


def class_names(reader: ProjectReader, datasets: list[str]) -> list[str]:
    """Distinct category names over ``datasets``, sorted (what the class picker offers)."""
    if not datasets:
        return []
    sql = f"SELECT DISTINCT name FROM categories WHERE dataset IN ({_marks(datasets)}) ORDER BY 1"
    return reader.df(sql, list(datasets))["name"].tolist()


def metric_bounds(reader: ProjectReader, metrics: list[str], datasets: list[str]) -> pd.DataFrame:
    """min (``lo``) and max (``hi``) of each metric over ``datasets``, indexed by metric; a metric
    with no value there has no row."""
    if not metrics or not datasets:
        return pd.DataFrame({"lo": [], "hi": []}, index=pd.Index([], name="metric"))
    sql = (
        "SELECT metric, min(value) AS lo, max(value) AS hi FROM metric_values "
        f"WHERE metric IN ({_marks(metrics)}) AND dataset IN ({_marks(datasets)}) GROUP BY metric"
    )
    return reader.df(sql, [*metrics, *datasets]).set_index("metric")


def image_files(reader: ProjectReader, keys: pd.DataFrame) -> pd.DataFrame:
    """dataset, image_id, file_name, status of the images ``keys`` (dataset, image_id) lists, sorted by both."""
    if not len(keys):
        return pd.DataFrame(columns=["dataset", "image_id", "file_name", "status"])
    wanted = keys[["dataset", "image_id"]].astype({"dataset": "string", "image_id": "int64"})
    return reader.df(
        "SELECT i.dataset, i.image_id, i.file_name, i.status FROM images i "
        "JOIN _keys k ON k.dataset = i.dataset AND k.image_id = i.image_id ORDER BY 1, 2",
        tables={"_keys": wanted},
    )
