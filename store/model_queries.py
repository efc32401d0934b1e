"""SQL behind the model pages (Model quality, Performance by metric, Prediction explorer).

Every threshold-dependent figure is a lookup of the stored per-threshold columns (``tp_75``,
``reason_75``, ``missed_75`` …) written by the predictions import: changing the IoU threshold in
the app recomputes nothing. Queries return only what a page draws (counts, one gallery page);
the per-row frames for the performance analysis are built once per model and cached by the page.

Object metrics of a prediction (performance analysis, gallery sort) are those of *its object*:
the label it matched when it is a true positive, otherwise the label behind its false-positive
reason (the one it duplicates, the one it overlaps with the wrong class or too loosely); a
background false positive (IoU < 0.1 with every label) has no object, so its object metrics are
null and it is left out of object-metric statistics. Image metrics are always those of its image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from metrics.error_reasons import FN_REASONS, FP_REASONS
from metrics.evaluation import STAT_NAMES
from metrics.matching import THRESHOLD_TAGS
from store.predictions_import import model_is_stale
from store.queries import ProjectReader

LABEL_ERROR_KINDS = ("overlooked", "swapped", "badly_located")
STATS = list(STAT_NAMES)  # the 12 COCO summary numbers, in pycocotools' order
STAT_MEANINGS = {
    "AP": "mean precision over IoU 0.50:0.95, all sizes (the COCO headline number)",
    "AP50": "AP at IoU 0.50: finds the object, boxes may be loose",
    "AP75": "AP at IoU 0.75: boxes must be tight",
    "APs": "AP on small objects (area < 32²)",
    "APm": "AP on medium objects (32² – 96²)",
    "APl": "AP on large objects (area > 96²)",
    "AR1": "recall with 1 detection per image",
    "AR10": "recall with 10 detections per image",
    "AR100": "recall with 100 detections per image",
    "ARs": "AR100 on small objects",
    "ARm": "AR100 on medium objects",
    "ARl": "AR100 on large objects",
}
Outcome = Literal["tp", "fp", "fn"]
# Gallery sort keys besides metrics: what they mean for predictions and for missed labels.
SORT_KEYS = {
    "score": "prediction confidence (for a missed label: the score of the prediction behind its reason)",
    "best_iou": "best IoU with any label (for a missed label: IoU of the prediction behind its reason)",
}


def check_tag(tag: str) -> str:
    """An IoU threshold tag ('50' … '95'); it names columns, so only these pass."""
    if str(tag) not in THRESHOLD_TAGS:
        raise ValueError(f"IoU threshold tag must be one of {THRESHOLD_TAGS}, got {tag!r}")
    return str(tag)


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _placeholders(values: list[Any]) -> str:
    return ", ".join("?" for _ in values)


# ----- models and their summaries --------------------------------------------------------------------------


def models_table(reader: ProjectReader) -> pd.DataFrame:
    """model, dataset, predictions, iou_types (list), stale (its dataset was imported again since
    the matching) of every model in the project."""
    rows = []
    for name in reader.models():
        meta = reader.project.model_meta(name)
        rows.append(
            {
                "model": name,
                "dataset": meta.get("dataset", ""),
                "predictions": int(meta.get("predictions", 0)),
                "iou_types": list(meta.get("iou_types", ["bbox"])),
                "stale": model_is_stale(reader.project, name, meta),
            }
        )
    return pd.DataFrame(rows, columns=["model", "dataset", "predictions", "iou_types", "stale"])


def model_signature(reader: ProjectReader, model: str) -> tuple:
    """(file, mtime) of the model's files and its dataset's metric files: a cache key that changes on re-import."""
    folder = reader.project.model_dir(model)
    files = sorted(folder.glob("*"))
    dataset = reader.project.model_meta(model).get("dataset", "")
    if dataset:
        files += sorted((reader.project.dataset_dir(dataset) / "metrics").glob("*.parquet"))
    return tuple((f.name, f.stat().st_mtime_ns) for f in files if f.is_file())


def load_eval(reader: ProjectReader, model: str) -> dict[str, Any]:
    """eval.json: {iou_type: {stats, per_class, pr_curves, recall_points, confusion}}."""
    return json.loads((reader.project.model_dir(model) / "eval.json").read_text())


def class_outcomes(reader: ProjectReader, model: str, iou_type: str, tag: str) -> pd.DataFrame:
    """category_id, tp, fp, fn at one IoU threshold (ignored and beyond-max-dets predictions not counted).

    ``model``: a model of the project; ``iou_type``: ``"bbox"`` or ``"segm"``; ``tag``: the threshold
    as its column suffix, ``"50"`` … ``"95"`` (:func:`check_tag`; anything else is ValueError). A class
    with predictions but no label, or labels but no prediction, has a row with the other counts 0;
    a class with neither has none."""
    t = check_tag(tag)
    sql = f"""
        WITH p AS (SELECT category_id, count(*) FILTER (WHERE tp_{t}) AS tp,
                          count(*) FILTER (WHERE reason_{t} <> '') AS fp
                   FROM prediction_matches WHERE model = ? AND iou_type = ? GROUP BY category_id),
             g AS (SELECT category_id, count(*) FILTER (WHERE missed_{t}) AS fn
                   FROM gt_matches WHERE model = ? AND iou_type = ? GROUP BY category_id)
        SELECT coalesce(p.category_id, g.category_id) AS category_id, coalesce(p.tp, 0) AS tp,
               coalesce(p.fp, 0) AS fp, coalesce(g.fn, 0) AS fn
        FROM p FULL OUTER JOIN g ON p.category_id = g.category_id
        ORDER BY category_id
    """
    return reader.df(sql, [model, iou_type, model, iou_type])


def reason_counts(
    reader: ProjectReader, model: str, iou_type: str, tag: str, side: Literal["fp", "fn"]
) -> pd.DataFrame:
    """reason, count of false positives (side 'fp') or missed labels ('fn') at one threshold, zeros kept.

    One row per reason of :data:`metrics.error_reasons.FP_REASONS` / ``FN_REASONS``, in that order,
    0 where none; ``tag`` as in :func:`class_outcomes`."""
    t = check_tag(tag)
    table = "prediction_matches" if side == "fp" else "gt_matches"
    names = FP_REASONS if side == "fp" else FN_REASONS
    counts = reader.df(
        f"SELECT reason_{t} AS reason, count(*) AS count FROM {table}"
        f" WHERE model = ? AND iou_type = ? AND reason_{t} <> '' GROUP BY 1",
        [model, iou_type],
    )
    found = dict(zip(counts["reason"], counts["count"], strict=True))
    return pd.DataFrame({"reason": list(names), "count": [int(found.get(n, 0)) for n in names]})


def categories_of(reader: ProjectReader, dataset: str) -> pd.DataFrame:
    """category_id, name of one dataset's classes (empty for an unknown dataset), for legends and pickers."""
    return reader.df(
        "SELECT category_id, name FROM categories WHERE dataset = ? ORDER BY category_id", [dataset]
    )


# ----- per-row frames for the performance analysis ---------------------------------------------------------


def metric_names(reader: ProjectReader, dataset: str) -> dict[str, list[str]]:
    """{'image': [...], 'object': [...]} metric names stored for this dataset."""
    frame = reader.df(
        "SELECT DISTINCT metric, object_id IS NULL AS image_level FROM metric_values WHERE dataset = ? ORDER BY 1",
        [dataset],
    )
    return {
        "image": frame.loc[frame["image_level"], "metric"].tolist(),
        "object": frame.loc[~frame["image_level"], "metric"].tolist(),
    }


def _pivot(names: list[str], prefix: str) -> str:
    return "".join(
        f", max(value) FILTER (WHERE metric = '{n.replace(chr(39), chr(39) * 2)}') AS {_ident(prefix + n)}"
        for n in names
    )


def prediction_frame(reader: ProjectReader, model: str, iou_type: str, tag: str) -> pd.DataFrame:
    """One row per counted prediction: ids, category_id, score, ``tp`` (0/1), ``iou_tp`` (IoU × TP),
    one ``image:NAME`` column per image metric (its image) and ``object:NAME`` per object metric (its
    object: matched, else the one behind its false-positive reason; null for background)."""
    t = check_tag(tag)
    dataset = reader.project.model_meta(model).get("dataset", "")
    names = metric_names(reader, dataset)
    sql = f"""
        WITH m AS (
            SELECT dataset, image_id, prediction_id, category_id, score,
                   tp_{t}::INTEGER AS tp, matched_iou_{t} AS iou_tp,
                   CASE WHEN tp_{t} THEN matched_object_id_{t}
                        WHEN related_object_id_{t} >= 0 AND reason_{t} <> 'background'
                        THEN related_object_id_{t} END AS object_id
            FROM prediction_matches
            WHERE model = ? AND iou_type = ? AND evaluated AND NOT ignored_{t}),
        im AS (SELECT image_id{_pivot(names["image"], "image:")} FROM metric_values
               WHERE dataset = ? AND object_id IS NULL GROUP BY image_id),
        om AS (SELECT image_id, object_id{_pivot(names["object"], "object:")} FROM metric_values
               WHERE dataset = ? AND object_id IS NOT NULL GROUP BY image_id, object_id)
        SELECT m.* EXCLUDE (object_id), m.object_id, im.* EXCLUDE (image_id), om.* EXCLUDE (image_id, object_id)
        FROM m LEFT JOIN im USING (image_id)
        LEFT JOIN om ON om.image_id = m.image_id AND om.object_id = m.object_id
        ORDER BY m.prediction_id
    """
    return reader.df(sql, [model, iou_type, dataset, dataset])


def object_frame(reader: ProjectReader, model: str, iou_type: str, tag: str) -> pd.DataFrame:
    """One row per counted label (crowd regions left out): ids, category_id, ``missed`` (0/1),
    ``image:NAME`` and ``object:NAME`` metric columns."""
    t = check_tag(tag)
    dataset = reader.project.model_meta(model).get("dataset", "")
    names = metric_names(reader, dataset)
    sql = f"""
        WITH g AS (SELECT dataset, image_id, object_id, category_id, missed_{t}::INTEGER AS missed
                   FROM gt_matches WHERE model = ? AND iou_type = ? AND NOT ignored),
        im AS (SELECT image_id{_pivot(names["image"], "image:")} FROM metric_values
               WHERE dataset = ? AND object_id IS NULL GROUP BY image_id),
        om AS (SELECT image_id, object_id{_pivot(names["object"], "object:")} FROM metric_values
               WHERE dataset = ? AND object_id IS NOT NULL GROUP BY image_id, object_id)
        SELECT g.*, im.* EXCLUDE (image_id), om.* EXCLUDE (image_id, object_id)
        FROM g LEFT JOIN im USING (image_id)
        LEFT JOIN om ON om.image_id = g.image_id AND om.object_id = g.object_id
        ORDER BY g.image_id, g.object_id
    """
    return reader.df(sql, [model, iou_type, dataset, dataset])


# ----- galleries -------------------------------------------------------------------------------------------


def _sort_join(
    reader: ProjectReader, dataset: str, sort: str, alias: str, object_column: str
) -> tuple[str, str, list]:
    """(JOIN clause, sort expression, params) for a sort key: score, best_iou, or a metric name."""
    names = metric_names(reader, dataset)
    if sort in names["object"]:
        join = (
            "LEFT JOIN metric_values v ON v.dataset = b.dataset AND v.image_id = b.image_id"
            f" AND v.object_id = b.{object_column} AND v.metric = ?"
        )
        return join, "v.value", [sort]
    if sort in names["image"]:
        join = "LEFT JOIN metric_values v ON v.dataset = b.dataset AND v.image_id = b.image_id AND v.object_id IS NULL AND v.metric = ?"
        return join, "v.value", [sort]
    if sort in SORT_KEYS:
        return "", f"b.{alias}_{sort}", []
    raise ValueError(f"unknown sort key {sort!r}")


def _filters(categories: list[int] | None, reasons: list[str] | None) -> tuple[str, list]:
    where, params = "", []
    if categories:
        where += f" AND b.category_id IN ({_placeholders(categories)})"
        params += [int(c) for c in categories]
    if reasons:
        where += f" AND b.reason IN ({_placeholders(reasons)})"
        params += list(reasons)
    return where, params


def _gallery_base(t: str, outcome: Outcome) -> str:
    """The rows of one outcome at threshold tag ``t`` (params: model, iou_type)."""
    if outcome in ("tp", "fp"):
        condition = f"m.tp_{t}" if outcome == "tp" else f"m.reason_{t} <> ''"
        base = f"""
            SELECT m.dataset, m.image_id, m.prediction_id, m.category_id, m.score, m.reason_{t} AS reason,
                   CASE WHEN m.tp_{t} THEN m.matched_object_id_{t}
                        WHEN m.related_object_id_{t} >= 0 AND m.reason_{t} <> 'background'
                        THEN m.related_object_id_{t} END AS object_id,
                   CASE WHEN m.tp_{t} THEN m.matched_iou_{t} ELSE m.related_iou_{t} END AS iou,
                   CASE WHEN m.tp_{t} THEN NULL ELSE m.related_category_id_{t} END AS related_category_id,
                   m.score AS s_score, m.best_iou AS s_best_iou
            FROM prediction_matches m
            WHERE m.model = ? AND m.iou_type = ? AND m.evaluated AND {condition}
        """
    else:
        base = f"""
            SELECT g.dataset, g.image_id, nullif(g.related_prediction_id_{t}, -1) AS prediction_id,
                   g.category_id, p.score, g.reason_{t} AS reason, g.object_id, g.related_iou_{t} AS iou,
                   p.category_id AS related_category_id, p.score AS s_score, g.related_iou_{t} AS s_best_iou
            FROM gt_matches g
            LEFT JOIN predictions p ON p.model = g.model AND p.prediction_id = g.related_prediction_id_{t}
            WHERE g.model = ? AND g.iou_type = ? AND g.missed_{t}
        """
    return base


def gallery_total(
    reader: ProjectReader,
    model: str,
    iou_type: str,
    tag: str,
    outcome: Outcome,
    categories: list[int] | None = None,
    reasons: list[str] | None = None,
) -> int:
    """How many items :func:`gallery` would page through: a count, with no joins or sort."""
    where, filter_params = _filters(categories, reasons)
    return _count(reader, _gallery_base(check_tag(tag), outcome), where, [model, iou_type, *filter_params])


def gallery(
    reader: ProjectReader,
    model: str,
    iou_type: str,
    tag: str,
    outcome: Outcome,
    categories: list[int] | None = None,
    reasons: list[str] | None = None,
    sort: str = "score",
    descending: bool = True,
    limit: int = 24,
    offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """One page of true positives, false positives or missed labels, and how many there are in all.

    Rows: dataset, image_id, file_name, category_id, category, reason, prediction_id, object_id,
    score, iou, related_category (the other class in a confusion), box of the prediction
    (``p_*``) and of the label (``o_*``), ``sort_value``.
    """
    t = check_tag(tag)
    dataset = reader.project.model_meta(model).get("dataset", "")
    base = _gallery_base(t, outcome)
    join, sort_expr, sort_params = _sort_join(reader, dataset, sort, "s", "object_id")
    where, filter_params = _filters(categories, reasons)
    order = "DESC" if descending else "ASC"
    sql = f"""
        WITH b AS ({base})
        SELECT b.dataset, b.image_id, i.file_name, b.category_id, c.name AS category, b.reason,
               b.prediction_id, b.object_id, b.score, b.iou, b.related_category_id, rc.name AS related_category,
               p.bbox_x AS p_x, p.bbox_y AS p_y, p.bbox_w AS p_w, p.bbox_h AS p_h,
               o.bbox_x AS o_x, o.bbox_y AS o_y, o.bbox_w AS o_w, o.bbox_h AS o_h,
               {sort_expr} AS sort_value, count(*) OVER () AS total
        FROM b
        JOIN images i ON i.dataset = b.dataset AND i.image_id = b.image_id
        LEFT JOIN categories c ON c.dataset = b.dataset AND c.category_id = b.category_id
        LEFT JOIN categories rc ON rc.dataset = b.dataset AND rc.category_id = b.related_category_id
        LEFT JOIN predictions p ON p.model = ? AND p.prediction_id = b.prediction_id
        LEFT JOIN objects o ON o.dataset = b.dataset AND o.image_id = b.image_id AND o.object_id = b.object_id
        {join}
        WHERE TRUE {where}
        ORDER BY sort_value {order} NULLS LAST, b.image_id, b.prediction_id, b.object_id
        LIMIT ? OFFSET ?
    """
    params = [model, iou_type, model, *sort_params, *filter_params, int(limit), int(offset)]
    frame = reader.df(sql, params)
    total = (
        int(frame["total"].iloc[0])
        if len(frame)
        else gallery_total(reader, model, iou_type, tag, outcome, categories, reasons)
    )
    return frame.drop(columns=["total"]), total


def _count(reader: ProjectReader, base: str, where: str, params: list) -> int:
    return int(reader.scalar(f"WITH b AS ({base}) SELECT count(*) FROM b WHERE TRUE {where}", params) or 0)


def label_errors(
    reader: ProjectReader,
    model: str,
    iou_type: str,
    kinds: list[str] | None = None,
    limit: int = 24,
    offset: int = 0,
) -> tuple[pd.DataFrame, int]:
    """One page of label-error candidates, most likely first, and the total.

    Rows: kind, score, dataset, image_id, file_name, object_id (null for 'overlooked': nothing to
    point at, a label is to be added), prediction_id, category (the label's), suggested_category
    (the prediction's), iou, boxes of the prediction (``p_*``) and the label (``o_*``).
    """
    path = reader.project.model_dir(model) / "label_errors.parquet"
    if not Path(path).is_file():
        return pd.DataFrame(), 0
    where = ""
    if kinds:
        where = f" AND e.kind IN ({_placeholders(kinds)})"
    sql = f"""
        WITH e AS (SELECT * FROM read_parquet(?) WHERE iou_type = ?)
        SELECT e.kind, e.score, e.dataset, e.image_id, i.file_name, nullif(e.object_id, -1) AS object_id,
               nullif(e.prediction_id, -1) AS prediction_id, e.category_id, c.name AS category,
               e.suggested_category_id, sc.name AS suggested_category, e.iou,
               p.bbox_x AS p_x, p.bbox_y AS p_y, p.bbox_w AS p_w, p.bbox_h AS p_h,
               o.bbox_x AS o_x, o.bbox_y AS o_y, o.bbox_w AS o_w, o.bbox_h AS o_h,
               count(*) OVER () AS total
        FROM e
        JOIN images i ON i.dataset = e.dataset AND i.image_id = e.image_id
        LEFT JOIN categories c ON c.dataset = e.dataset AND c.category_id = e.category_id
        LEFT JOIN categories sc ON sc.dataset = e.dataset AND sc.category_id = e.suggested_category_id
        LEFT JOIN predictions p ON p.model = e.model AND p.prediction_id = e.prediction_id
        LEFT JOIN objects o ON o.dataset = e.dataset AND o.image_id = e.image_id AND o.object_id = e.object_id
        WHERE TRUE {where}
        ORDER BY e.score DESC, e.image_id, e.prediction_id
        LIMIT ? OFFSET ?
    """
    frame = reader.df(sql, [str(path), iou_type, *(kinds or []), int(limit), int(offset)])
    total = int(frame["total"].iloc[0]) if len(frame) else 0
    return frame.drop(columns=["total"]), total


def image_predictions(reader: ProjectReader, model: str, keys: list[tuple[str, int]]) -> pd.DataFrame:
    """Predictions of the model on the given images (what the cards draw beside the labels)."""
    columns = [
        "dataset",
        "image_id",
        "prediction_id",
        "category_id",
        "category",
        "score",
        "bbox_x",
        "bbox_y",
        "bbox_w",
        "bbox_h",
    ]
    image_ids = sorted({int(k[1]) for k in keys})
    if not image_ids:
        return pd.DataFrame(columns=columns)
    sql = f"""
        SELECT p.dataset, p.image_id, p.prediction_id, p.category_id, c.name AS category, p.score,
               p.bbox_x, p.bbox_y, p.bbox_w, p.bbox_h
        FROM predictions p
        LEFT JOIN categories c ON c.dataset = p.dataset AND c.category_id = p.category_id
        WHERE p.model = ? AND p.image_id IN ({_placeholders(image_ids)})
        ORDER BY p.image_id, p.score DESC
    """
    return reader.df(sql, [model, *image_ids])[columns]


def image_records(reader: ProjectReader, dataset: str, image_ids: list[int]) -> dict[int, dict[str, Any]]:
    """image_id → images row (what a picture needs: path, status, frame, orientation, content hash)."""
    ids = sorted({int(i) for i in image_ids})
    if not ids:
        return {}
    frame = reader.df(
        f"SELECT * FROM images WHERE dataset = ? AND image_id IN ({_placeholders(ids)})", [dataset, *ids]
    )
    return {int(row["image_id"]): row for row in frame.to_dict("records")}
