"""What the Label errors page asks of the store: the ranked queue, the missing-label candidates, counts.

Reads the ``label_issues`` / ``label_candidates`` views (written by ``store.label_issues``) with
DuckDB and merges the user's decisions (``store.label_decisions``) so each finding says whether it
was accepted, rejected or is still open.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from store import label_decisions
from store.label_issues import load_meta
from store.queries import ProjectReader

DECIDED = ("open", "accepted", "rejected", "all")
# What a card needs to draw the image (store.thumbnails reads these from the record).
IMAGE_FIELDS = (
    "i.file_name, i.path, i.status, i.error, i.width, i.height, i.content_hash, i.exif_orientation, "
    "i.orientation_applied"
)


def _in(column: str, values: list[Any] | None) -> tuple[str, list[Any]]:
    if not values:
        return "true", []
    return f"{column} IN ({', '.join('?' for _ in values)})", list(values)


def scored_datasets(reader: ProjectReader, datasets: list[str]) -> dict[str, dict[str, Any]]:
    """Dataset → the pass's meta (evidence used, model, planted counts) for datasets that have one."""
    out = {}
    for dataset in datasets:
        meta = load_meta(reader.project, dataset)
        if meta is not None:
            out[dataset] = meta
    return out


def _with_decisions(reader: ProjectReader, frame: pd.DataFrame, finding: str, key: str) -> pd.DataFrame:
    stored = label_decisions.decisions(reader.project.root)
    stored = stored[stored["finding"] == finding][["dataset", "image_id", "item_id", "decision"]]
    stored = stored.rename(columns={"item_id": key}).astype({"image_id": "int64", key: "int64"})
    merged = frame.merge(stored, on=["dataset", "image_id", key], how="left")
    merged["decision"] = merged["decision"].fillna("open")
    return merged


def queue(
    reader: ProjectReader,
    datasets: list[str],
    kinds: list[str] | None = None,
    categories: list[str] | None = None,
    min_score: float = 0.0,
    decided: str = "open",
    image_id: int | None = None,
) -> pd.DataFrame:
    """Findings, most likely wrong first: label, image, kind, suggested fix, evidence, decision
    (of one image only when ``image_id`` is given: the sample view's list)."""
    ds_cond, ds_params = _in("li.dataset", datasets)
    image_cond, image_params = _in("li.image_id", None if image_id is None else [int(image_id)])
    kind_cond, kind_params = _in("li.label_issue_kind", kinds)
    cat_cond, cat_params = _in("c.name", categories)
    sql = f"""
        SELECT li.*, {IMAGE_FIELDS}, c.name AS category, sc.name AS suggested_category
        FROM label_issues li
        JOIN images i ON i.dataset = li.dataset AND i.image_id = li.image_id
        LEFT JOIN categories c ON c.dataset = li.dataset AND c.category_id = li.category_id
        LEFT JOIN categories sc ON sc.dataset = li.dataset AND sc.category_id = li.suggested_category_id
        WHERE {ds_cond} AND {kind_cond} AND {cat_cond} AND {image_cond} AND li.label_issue >= ?
        ORDER BY li.label_issue DESC, li.dataset, li.image_id, li.object_id
    """
    frame = reader.df(sql, [*ds_params, *kind_params, *cat_params, *image_params, float(min_score)])
    frame = _with_decisions(reader, frame, "object", "object_id")
    if decided != "all":
        frame = frame[frame["decision"] == decided]
    return frame.reset_index(drop=True)


def candidates(
    reader: ProjectReader,
    datasets: list[str],
    categories: list[str] | None = None,
    min_probability: float = 0.0,
    decided: str = "open",
    image_id: int | None = None,
) -> pd.DataFrame:
    """Boxes a model found that no label accounts for, likeliest overlooked object first (of one image
    only when ``image_id`` is given)."""
    ds_cond, ds_params = _in("lc.dataset", datasets)
    image_cond, image_params = _in("lc.image_id", None if image_id is None else [int(image_id)])
    cat_cond, cat_params = _in("c.name", categories)
    sql = f"""
        SELECT lc.*, {IMAGE_FIELDS}, c.name AS category
        FROM label_candidates lc
        JOIN images i ON i.dataset = lc.dataset AND i.image_id = lc.image_id
        LEFT JOIN categories c ON c.dataset = lc.dataset AND c.category_id = lc.category_id
        WHERE {ds_cond} AND {cat_cond} AND {image_cond} AND lc.missing_probability >= ?
        ORDER BY lc.missing_probability DESC, lc.dataset, lc.image_id, lc.prediction_id
    """
    frame = reader.df(sql, [*ds_params, *cat_params, *image_params, float(min_probability)])
    frame = _with_decisions(reader, frame, "candidate", "prediction_id")
    if decided != "all":
        frame = frame[frame["decision"] == decided]
    return frame.reset_index(drop=True)


def object_finding(row: Any) -> dict[str, Any]:
    """The decision record of a label finding: its fix with the suggested class / box."""
    return {
        "finding": "object", "image_id": int(row.image_id), "item_id": int(row.object_id), "fix": row.fix,
        "category_id": row.suggested_category_id, "bbox_x": row.suggested_x, "bbox_y": row.suggested_y,
        "bbox_w": row.suggested_w, "bbox_h": row.suggested_h,
    }  # fmt: skip


def candidate_finding(row: Any) -> dict[str, Any]:
    """The decision record of a missing-label candidate: add its box with its class."""
    return {
        "finding": "candidate", "image_id": int(row.image_id), "item_id": int(row.prediction_id), "fix": "add",
        "category_id": int(row.category_id), "bbox_x": row.bbox_x, "bbox_y": row.bbox_y,
        "bbox_w": row.bbox_w, "bbox_h": row.bbox_h,
    }  # fmt: skip


def decide_rows(reader: ProjectReader, rows: pd.DataFrame, decision: str, finding: str = "object") -> int:
    """Record one decision for many findings (grouped by dataset); fixes needing review are skipped."""
    changed = 0
    make = object_finding if finding == "object" else candidate_finding
    for dataset, group in rows.groupby("dataset"):
        records = [make(r) for r in group.itertuples(index=False)]
        records = [r for r in records if r["fix"] != "review" or decision == "rejected"]
        if records:
            changed += label_decisions.decide(reader.project.root, str(dataset), records, decision)
    return changed


def undo_rows(reader: ProjectReader, rows: pd.DataFrame, finding: str = "object") -> int:
    make = object_finding if finding == "object" else candidate_finding
    changed = 0
    for dataset, group in rows.groupby("dataset"):
        changed += label_decisions.undo(
            reader.project.root, str(dataset), [make(r) for r in group.itertuples(index=False)]
        )
    return changed
