"""Wide prediction rows for ``export csv --level prediction``: ids, score, TP at IoU 0.5, matched object."""

from __future__ import annotations

from typing import Any

from store.queries import ProjectReader


def prediction_table_sql(reader: ProjectReader, datasets: list[str] | None = None) -> tuple[str, list[Any]]:
    """One row per prediction (bbox matching) with its outcome and reason at IoU 0.5."""
    cond, params = "true", []
    if datasets:
        cond = f"p.dataset IN ({', '.join('?' for _ in datasets)})"
        params = list(datasets)
    sql = f"""
        SELECT p.dataset, p.image_id, p.prediction_id, p.model, i.file_name, c.name AS category,
               p.category_id, p.score,
               p.bbox_x, p.bbox_y, p.bbox_w, p.bbox_h,
               m.tp_50 AS tp, CASE WHEN m.tp_50 THEN m.matched_object_id_50 ELSE NULL END AS object_id,
               m.tp_75, m.best_iou, m.reason_50 AS fp_reason, m.related_object_id_50 AS fp_related_object_id
        FROM predictions p
        JOIN prediction_matches m
          ON m.model = p.model AND m.prediction_id = p.prediction_id AND m.iou_type = 'bbox'
        JOIN images i ON i.dataset = p.dataset AND i.image_id = p.image_id
        LEFT JOIN categories c ON c.dataset = p.dataset AND c.category_id = p.category_id
        WHERE {cond}
        ORDER BY p.model, p.dataset, p.prediction_id
    """
    return sql, params
