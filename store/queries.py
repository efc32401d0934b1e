"""Read a project with SQL: an in-memory DuckDB whose views scan the project's Parquet files.

Readers hold no lock and open no database file, so the app keeps reading while an import or a
training job writes in another process. Views are globs evaluated at query time: a dataset
committed by another process shows up at the next query.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from metrics.outliers import MODERATE_IQR, SEVERE_IQR
from store.project import Project

# view name → glob below the project root
VIEWS: dict[str, str] = {
    "images": "datasets/*/images.parquet",
    "objects": "datasets/*/objects.parquet",
    "categories": "datasets/*/categories.parquet",
    "metric_values": "datasets/*/metrics/*.parquet",
    "duplicates": "datasets/*/duplicates.parquet",
    "predictions": "models/*/predictions.parquet",
    "prediction_matches": "models/*/matches.parquet",
    "gt_matches": "models/*/gt_matches.parquet",
    "label_issues": "datasets/*/label_issues/objects.parquet",
    "label_candidates": "datasets/*/label_issues/candidates.parquet",
}

EMPTY_SCHEMAS: dict[str, str] = {
    "images": "dataset VARCHAR, image_id BIGINT, file_name VARCHAR, path VARCHAR, width BIGINT, height BIGINT, "
    "decoded_width BIGINT, decoded_height BIGINT, exif_orientation BIGINT, orientation_applied BOOLEAN, "
    "status VARCHAR, error VARCHAR, file_size BIGINT, content_hash VARCHAR, pixel_hash VARCHAR, phash BIGINT",
    "objects": "dataset VARCHAR, object_id BIGINT, image_id BIGINT, category_id BIGINT, bbox_x DOUBLE, "
    "bbox_y DOUBLE, bbox_w DOUBLE, bbox_h DOUBLE, area DOUBLE, iscrowd BIGINT, segmentation VARCHAR, seg_type VARCHAR",
    "categories": "dataset VARCHAR, category_id BIGINT, name VARCHAR, supercategory VARCHAR",
    "metric_values": "dataset VARCHAR, image_id BIGINT, object_id BIGINT, metric VARCHAR, version BIGINT, value DOUBLE",
    "duplicates": "dataset VARCHAR, image_id BIGINT, kind VARCHAR, group_id BIGINT",
    "predictions": "model VARCHAR, dataset VARCHAR, prediction_id BIGINT, image_id BIGINT, category_id BIGINT, "
    "score DOUBLE, bbox_x DOUBLE, bbox_y DOUBLE, bbox_w DOUBLE, bbox_h DOUBLE, segmentation VARCHAR",
    "prediction_matches": "model VARCHAR, dataset VARCHAR, iou_type VARCHAR, prediction_id BIGINT",
    "gt_matches": "model VARCHAR, dataset VARCHAR, iou_type VARCHAR, object_id BIGINT",
    "label_issues": "dataset VARCHAR, image_id BIGINT, object_id BIGINT, category_id BIGINT, label_issue DOUBLE, "
    "label_issue_kind VARCHAR, suggested_category_id BIGINT, suggested_x DOUBLE, suggested_y DOUBLE, "
    "suggested_w DOUBLE, suggested_h DOUBLE, fix VARCHAR",
    "label_candidates": "dataset VARCHAR, model VARCHAR, image_id BIGINT, prediction_id BIGINT, category_id BIGINT, "
    "bbox_x DOUBLE, bbox_y DOUBLE, bbox_w DOUBLE, bbox_h DOUBLE, score DOUBLE, missing_probability DOUBLE",
}


def _any_file(root: Path, pattern: str) -> bool:
    """Whether a glob matches anything; stops at the first hit (it runs before every query)."""
    return next(iter(root.glob(pattern)), None) is not None


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


class ProjectReader:
    """Thread-safe query access to one project (one DuckDB connection, a cursor per query)."""

    def __init__(self, root: str | Path, memory_limit: str | None = None):
        """``memory_limit`` (DuckDB's, e.g. "512MB") caps the buffer pool: by default DuckDB keeps up
        to 80% of RAM, which a writer that then prewarms summaries (store.page_summaries) adds to
        its own peak."""
        self.project = Project(root)
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET threads TO 2")
        if memory_limit:
            self._con.execute("SET memory_limit = ?", [memory_limit])
        self._lock = threading.Lock()
        self._signature: tuple = ()
        self.refresh()

    def _file_signature(self) -> tuple:
        root = self.project.root
        return tuple((name, _any_file(root, pattern)) for name, pattern in VIEWS.items()) + (
            tuple(self.project.datasets()),
            tuple(self.project.models()),
        )

    def refresh(self) -> None:
        """(Re)create views; only needed when a table appears for the first time or disappears."""
        signature = self._file_signature()
        if signature == self._signature:
            return
        with self._lock:
            root = self.project.root
            for name, pattern in VIEWS.items():
                if _any_file(root, pattern):
                    source = f"read_parquet('{_sql_path(root / pattern)}', union_by_name=true)"
                    self._con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {source}")
                else:
                    self._con.execute(f"CREATE OR REPLACE TABLE _empty_{name} ({EMPTY_SCHEMAS[name]})")
                    self._con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _empty_{name}")
            self._signature = signature

    def cursor(self) -> duckdb.DuckDBPyConnection:
        self.refresh()
        return self._con.cursor()

    def df(
        self, sql: str, params: list[Any] | None = None, tables: dict[str, pd.DataFrame] | None = None
    ) -> pd.DataFrame:
        """Run a query and return a DataFrame (only the rows the page needs).

        ``tables`` names in-memory frames the query joins against (keys to look up, tagged ids),
        visible to this query's cursor only.
        """
        cur = self.cursor()
        try:
            for name, frame in (tables or {}).items():
                cur.register(name, frame)
            return cur.execute(sql, params or []).df()
        finally:
            cur.close()

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        row = self.row(sql, params)
        return None if row is None else row[0]

    def row(self, sql: str, params: list[Any] | None = None) -> tuple | None:
        """The first row of a query (None when it has none)."""
        cur = self.cursor()
        try:
            return cur.execute(sql, params or []).fetchone()
        finally:
            cur.close()

    # ----- common questions -----------------------------------------------------------------
    def datasets(self) -> list[str]:
        return self.project.datasets()

    def models(self) -> list[str]:
        return self.project.models()

    def metric_names(self, level: str | None = None) -> list[str]:
        if level is None:
            return self.df("SELECT DISTINCT metric FROM metric_values ORDER BY 1")["metric"].tolist()
        sql = "SELECT DISTINCT metric FROM metric_values WHERE (object_id IS NULL) = ? ORDER BY 1"
        return self.df(sql, [level == "image"])["metric"].tolist()

    def dataset_counts(self) -> pd.DataFrame:
        return self.df(
            """
            WITH i AS (SELECT dataset, count(*) AS images,
                         count(*) FILTER (WHERE status = 'missing') AS missing_images,
                         count(*) FILTER (WHERE status = 'unreadable') AS unreadable_images
                       FROM images GROUP BY dataset),
                 o AS (SELECT dataset, count(*) AS objects, count(DISTINCT category_id) AS categories_used
                       FROM objects GROUP BY dataset),
                 c AS (SELECT dataset, count(*) AS categories FROM categories GROUP BY dataset)
            SELECT i.dataset, i.images, coalesce(o.objects, 0) AS objects, coalesce(c.categories, 0) AS categories,
                   coalesce(o.categories_used, 0) AS categories_used, i.missing_images, i.unreadable_images
            FROM i LEFT JOIN o USING (dataset) LEFT JOIN c USING (dataset) ORDER BY i.dataset
            """
        )

    def metric_summary(self, datasets: list[str] | None = None, by_dataset: bool = False) -> pd.DataFrame:
        """count/mean/median/min/max and IQR outlier counts per metric (moderate: 1.5–2.5×IQR, severe: >2.5×IQR)."""
        where = "WHERE value IS NOT NULL"
        params: list[Any] = []
        if datasets:
            where += f" AND dataset IN ({', '.join('?' for _ in datasets)})"
            params = list(datasets)
        keys = "dataset, metric" if by_dataset else "metric"
        join = " AND ".join(f"v.{k} = q.{k}" for k in keys.split(", "))
        # One sort for the three quartiles, a 25-row fence table, then one plain scan for the counts.
        return self.df(
            f"""
            WITH v AS (SELECT {keys}, object_id, value FROM metric_values {where}),
                 q0 AS (SELECT {keys}, CASE WHEN count(object_id) > 0 THEN 'object' ELSE 'image' END AS level,
                               count(*) AS count, avg(value) AS mean, min(value) AS min, max(value) AS max,
                               quantile_cont(value, [0.25, 0.5, 0.75]) AS qs
                        FROM v GROUP BY {keys}),
                 q AS (SELECT * EXCLUDE (qs), qs[2] AS median, qs[1] AS q1, qs[3] AS q3,
                              qs[1] - {MODERATE_IQR} * (qs[3] - qs[1]) AS m_lo,
                              qs[3] + {MODERATE_IQR} * (qs[3] - qs[1]) AS m_hi,
                              qs[1] - {SEVERE_IQR} * (qs[3] - qs[1]) AS s_lo,
                              qs[3] + {SEVERE_IQR} * (qs[3] - qs[1]) AS s_hi
                       FROM q0),
                 f AS (SELECT {", ".join(f"q.{k}" for k in keys.split(", "))},
                              count(*) FILTER (WHERE (v.value < q.m_lo OR v.value > q.m_hi)
                                               AND v.value >= q.s_lo AND v.value <= q.s_hi) AS moderate_outliers,
                              count(*) FILTER (WHERE v.value < q.s_lo OR v.value > q.s_hi) AS severe_outliers
                       FROM v JOIN q ON {join} GROUP BY {", ".join(f"q.{k}" for k in keys.split(", "))})
            SELECT q.{keys.replace(", ", ", q.")}, q.level, q.count, q.mean, q.median, q.min, q.max, q.q1, q.q3,
                   f.moderate_outliers, f.severe_outliers
            FROM q JOIN f USING ({keys}) ORDER BY {keys}
            """,
            params,
        )
