"""Wide views: one row per image or object with one column per metric (named as in the report).

Built with DuckDB PIVOT over the long metric files, so nothing is loaded into pandas whole.
"""

from __future__ import annotations

from typing import Any

from store.queries import ProjectReader


def _in_list(column: str, values: list[Any] | None) -> tuple[str, list[Any]]:
    if not values:
        return "true", []
    return f"{column} IN ({', '.join('?' for _ in values)})", list(values)


def image_metric_names(reader: ProjectReader) -> list[str]:
    return reader.df("SELECT DISTINCT metric FROM metric_values WHERE object_id IS NULL ORDER BY 1")[
        "metric"
    ].tolist()


def object_metric_names(reader: ProjectReader) -> list[str]:
    return reader.df("SELECT DISTINCT metric FROM metric_values WHERE object_id IS NOT NULL ORDER BY 1")[
        "metric"
    ].tolist()


def _pivot_columns(names: list[str], alias: str) -> str:
    return ", ".join(f"max({alias}.value) FILTER (WHERE {alias}.metric = '{n}') AS \"{n}\"" for n in names)


def image_table_sql(reader: ProjectReader, datasets: list[str] | None = None) -> tuple[str, list[Any]]:
    """SQL for the wide image table: ids, file, status, hash and every image metric."""
    names = image_metric_names(reader)
    cond, params = _in_list("i.dataset", datasets)
    metric_cols = (", " + _pivot_columns(names, "m")) if names else ""
    sql = f"""
        SELECT i.dataset, i.image_id, i.file_name, i.status, i.content_hash{metric_cols}
        FROM images i LEFT JOIN metric_values m
          ON m.dataset = i.dataset AND m.image_id = i.image_id AND m.object_id IS NULL
        WHERE {cond}
        GROUP BY i.dataset, i.image_id, i.file_name, i.status, i.content_hash
        ORDER BY i.dataset, i.image_id
    """
    return sql, params


def object_table_sql(reader: ProjectReader, datasets: list[str] | None = None) -> tuple[str, list[Any]]:
    """SQL for the wide object table: ids, file, category name and id (two categories may share a name),
    box and every object metric."""
    names = object_metric_names(reader)
    cond, params = _in_list("o.dataset", datasets)
    metric_cols = (", " + _pivot_columns(names, "m")) if names else ""
    sql = f"""
        SELECT o.dataset, o.image_id, o.object_id, i.file_name, c.name AS category, o.category_id,
               o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h, o.iscrowd,
               any_value(li.label_issue_kind) AS label_issue_kind, any_value(li.fix) AS label_fix,
               any_value(sc.name) AS suggested_category,
               any_value(li.suggested_category_id) AS suggested_category_id, any_value(li.suggested_x) AS suggested_bbox_x,
               any_value(li.suggested_y) AS suggested_bbox_y, any_value(li.suggested_w) AS suggested_bbox_w,
               any_value(li.suggested_h) AS suggested_bbox_h{metric_cols}
        FROM objects o
        JOIN images i ON i.dataset = o.dataset AND i.image_id = o.image_id
        LEFT JOIN categories c ON c.dataset = o.dataset AND c.category_id = o.category_id
        LEFT JOIN label_issues li
          ON li.dataset = o.dataset AND li.image_id = o.image_id AND li.object_id = o.object_id
        LEFT JOIN categories sc ON sc.dataset = li.dataset AND sc.category_id = li.suggested_category_id
        LEFT JOIN metric_values m
          ON m.dataset = o.dataset AND m.image_id = o.image_id AND m.object_id = o.object_id
        WHERE {cond}
        GROUP BY o.dataset, o.image_id, o.object_id, i.file_name, c.name, o.category_id,
                 o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h, o.iscrowd
        ORDER BY o.dataset, o.image_id, o.object_id
    """
    return sql, params
