"""The user's decisions on label-error findings, and how accepted fixes change an exported COCO file.

Decisions live in ``PROJECT/tags.sqlite`` beside the tags (same WAL database, same retrying writes:
two browser sessions deciding at once both land). Each decision stores the fix *as accepted* —
the class, the box — so recomputing the scores later never changes what the user agreed to.
Every decision is undoable (the row is deleted) and mirrored as a tag on the object (or, for an
added box, the image): ``label-fix:accepted`` / ``label-fix:rejected``, so galleries and
``--where "has_tag(...)"`` filters see them.

Kinds of finding: ``object`` (a label: relabel, replace_box, delete) keyed by its object id, and
``candidate`` (a box no label accounts for: add) keyed by the prediction id that proposed it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from store.errors import InputError
from store.schemas import LABEL_DECISIONS, empty_frame, sqlite_columns
from store.tags import _connect, _with_retry, _write, add_tags, remove_tags

ACCEPTED_TAG = "label-fix:accepted"
REJECTED_TAG = "label-fix:rejected"
DECISIONS = ("accepted", "rejected")
FIXES = ("relabel", "replace_box", "delete", "add", "review")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS label_decisions (
    {sqlite_columns(LABEL_DECISIONS)},
    PRIMARY KEY (dataset, finding, image_id, item_id)
);
"""


def _run(project_root: str | Path, sql: str, rows: list[tuple]) -> int:
    """One statement for many rows in one transaction, through the tag store's retrying writer."""
    _ensure_table(project_root)
    return _write(project_root, sql, rows)


def _ensure_table(project_root: str | Path) -> None:
    def create() -> None:
        with _connect(project_root) as con:
            con.executescript(_SCHEMA)

    _with_retry(create)


def _tag_targets(rows: list[dict[str, Any]]) -> tuple[list[int], list[int | None]]:
    images = [int(r["image_id"]) for r in rows]
    objects = [int(r["item_id"]) if r["finding"] == "object" else None for r in rows]
    return images, objects


def decide(project_root: str | Path, dataset: str, findings: Iterable[dict[str, Any]], decision: str) -> int:
    """Record ``decision`` for each finding (keys: finding, image_id, item_id, fix, and for the fix
    category_id / bbox_x..bbox_h); a second decision on the same finding replaces the first."""
    if decision not in DECISIONS:
        raise InputError("decision", f"expected one of {DECISIONS}, got {decision!r}")
    rows = [dict(f) for f in findings]
    for row in rows:
        if row.get("finding") not in ("object", "candidate") or row.get("fix") not in FIXES:
            raise InputError("decision", f"not a label-error finding: {row!r}")
    now = time.time()
    values = [
        (dataset, r["finding"], int(r["image_id"]), int(r["item_id"]), decision, r["fix"],
         None if pd.isna(r.get("category_id")) else int(r["category_id"]),
         *(None if pd.isna(r.get(k)) else float(r[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")), now)
        for r in rows
    ]  # fmt: skip
    changed = _run(
        project_root,
        f"INSERT OR REPLACE INTO label_decisions VALUES ({', '.join('?' * len(LABEL_DECISIONS))})",
        values,
    )
    _retag(project_root, dataset, rows, decision)
    return changed


def _retag(project_root: str | Path, dataset: str, rows: list[dict[str, Any]], decision: str | None) -> None:
    for finding in ("object", "candidate"):
        part = [r for r in rows if r["finding"] == finding]
        if not part:
            continue
        images, objects = _tag_targets(part)
        object_ids = objects if finding == "object" else None
        for tag in (ACCEPTED_TAG, REJECTED_TAG):
            if decision is None or tag != (ACCEPTED_TAG if decision == "accepted" else REJECTED_TAG):
                if finding == "object":  # an image keeps its tag while another candidate on it is decided
                    remove_tags(project_root, dataset, images, object_ids, tag)
        if decision is not None:
            add_tags(
                project_root,
                dataset,
                images,
                object_ids,
                ACCEPTED_TAG if decision == "accepted" else REJECTED_TAG,
            )


def undo(project_root: str | Path, dataset: str, findings: Iterable[dict[str, Any]]) -> int:
    """Forget the decisions on these findings (finding, image_id, item_id); return how many existed."""
    rows = [dict(f) for f in findings]
    keys = [(dataset, r["finding"], int(r["image_id"]), int(r["item_id"])) for r in rows]
    changed = _run(
        project_root,
        "DELETE FROM label_decisions WHERE dataset = ? AND finding = ? AND image_id = ? AND item_id = ?",
        keys,
    )
    _retag(project_root, dataset, rows, None)
    return changed


def decisions(project_root: str | Path, dataset: str | None = None) -> pd.DataFrame:
    """Every stored decision (optionally of one dataset), newest first."""
    path = Path(project_root).expanduser().resolve() / "tags.sqlite"
    if not path.is_file():
        return empty_frame(LABEL_DECISIONS)

    def query() -> pd.DataFrame:
        with _connect(project_root) as con:
            con.executescript(_SCHEMA)
            sql = "SELECT * FROM label_decisions"
            params: tuple = ()
            if dataset is not None:
                sql += " WHERE dataset = ?"
                params = (dataset,)
            return pd.read_sql_query(sql + " ORDER BY decided DESC", con, params=params)

    return _with_retry(query)


def _moved_segmentation(segmentation: Any, old: list[float], new: list[float]) -> Any:
    """Polygons carried from the old box onto the new one (scale + shift); anything else → the new box."""
    x, y, w, h = old
    nx, ny, nw, nh = new
    if isinstance(segmentation, list) and segmentation and all(isinstance(p, list) for p in segmentation):
        sx, sy = (nw / w if w else 1.0), (nh / h if h else 1.0)
        return [
            [(c - x) * sx + nx if i % 2 == 0 else (c - y) * sy + ny for i, c in enumerate(poly)]
            for poly in segmentation
        ]
    return _rectangle(new) if segmentation else []


def _rectangle(box: list[float]) -> list[list[float]]:
    x, y, w, h = box
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def apply_fixes(coco: dict[str, Any], accepted: pd.DataFrame) -> dict[str, int]:
    """Apply accepted fixes to a COCO dict in place; ids are kept, added boxes get new ids.

    Returns how many of each fix were applied (a fix whose label is not in ``coco`` is skipped).
    """
    counts = dict.fromkeys(("relabel", "replace_box", "delete", "add"), 0)
    if accepted is None or not len(accepted):
        return counts
    accepted = accepted[accepted["decision"] == "accepted"]
    by_key = {(int(a["image_id"]), int(a["id"])): a for a in coco["annotations"]}
    deleted: set[tuple[int, int]] = set()
    for row in accepted[accepted["finding"] == "object"].itertuples(index=False):
        ann = by_key.get((int(row.image_id), int(row.item_id)))
        if ann is None:
            continue
        if row.fix == "relabel" and not pd.isna(row.category_id):
            ann["category_id"] = int(row.category_id)
            counts["relabel"] += 1
        elif row.fix == "replace_box" and not pd.isna(row.bbox_w):
            new = [float(row.bbox_x), float(row.bbox_y), float(row.bbox_w), float(row.bbox_h)]
            old = [float(v) for v in ann["bbox"]]
            ann["segmentation"] = _moved_segmentation(ann.get("segmentation"), old, new)
            scale = (new[2] * new[3]) / (old[2] * old[3]) if old[2] * old[3] > 0 else 1.0
            ann["area"] = float(ann.get("area") or old[2] * old[3]) * scale
            ann["bbox"] = new
            counts["replace_box"] += 1
        elif row.fix == "delete":
            deleted.add((int(row.image_id), int(row.item_id)))
            counts["delete"] += 1
    if deleted:
        coco["annotations"] = [
            a for a in coco["annotations"] if (int(a["image_id"]), int(a["id"])) not in deleted
        ]
    images = {int(i["id"]) for i in coco["images"]}
    with_polygons = any(
        isinstance(a.get("segmentation"), list) and a["segmentation"] for a in coco["annotations"]
    )
    next_id = max((int(a["id"]) for a in coco["annotations"]), default=0) + 1
    for row in accepted[accepted["finding"] == "candidate"].sort_values(["image_id", "item_id"]).itertuples():
        if int(row.image_id) not in images or row.fix != "add" or pd.isna(row.bbox_w):
            continue
        box = [float(row.bbox_x), float(row.bbox_y), float(row.bbox_w), float(row.bbox_h)]
        coco["annotations"].append({
            "id": next_id, "image_id": int(row.image_id), "category_id": int(row.category_id), "bbox": box,
            "area": box[2] * box[3], "iscrowd": 0,
            "segmentation": _rectangle(box) if with_polygons else [],
        })  # fmt: skip
        next_id += 1
        counts["add"] += 1
    return counts
