"""``cocolens export coco``: a (filtered) dataset back to COCO JSON, optionally downscaled.

Ids are the ones of the imported file, so the export joins back to it; every image carries
``cocolens_content_hash`` (sha1 of the file imported) so it can be matched after renames; with
``with_metrics`` every image and annotation gets ``"cocolens_metrics": {name: value}``.

With ``max_side`` the images are written again next to the JSON (``OUT_STEM_images/``, same
``file_name`` layout), decoded in the frame the annotations refer to (EXIF orientation applied as
at import) and resized so their longest side is at most ``max_side``; boxes, polygons, RLEs and
areas are scaled by the same factors, so labels stay aligned. Images already small enough are
copied byte for byte when no rotation is needed.

Everything is written atomically: the images folder appears by one rename, then the JSON.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from store.errors import InputError
from store.filters import project_reader, sql_literal, where_rows_sql
from store.project import replace_dir_atomic, write_bytes_atomic
from store.queries import ProjectReader

JPEG_QUALITY = 95  # re-encoded exports stay visually lossless; the originals are never touched
MIN_MAX_SIDE = 8  # below this a "downscaled" image carries no usable pixels


def _choose_dataset(reader: ProjectReader, dataset: str | None) -> str:
    names = reader.datasets()
    if dataset is not None:
        if dataset not in names:
            raise InputError(str(reader.project.root), f"no dataset named {dataset!r} (have: {', '.join(names)})",
                             field="--dataset")  # fmt: skip
        return dataset
    if len(names) == 1:
        return names[0]
    if not names:
        raise InputError(str(reader.project.root), "the project has no datasets", field="--project")
    raise InputError(str(reader.project.root), f"the project has {len(names)} datasets; name one with --dataset",
                     field="--dataset")  # fmt: skip


def _ids_condition(column: str, ids: Iterable[int] | None) -> str:
    if ids is None:
        return "true"
    values = sorted({int(v) for v in ids})
    if not values:
        return "false"
    return f"{column} IN ({', '.join(str(v) for v in values)})"


def _object_condition(object_ids: Iterable[Any] | None) -> str:
    """Objects by id, or by (image_id, object_id) pairs: ids may repeat on different images (TACO)."""
    if object_ids is None:
        return "true"
    items = list(object_ids)
    if items and isinstance(items[0], tuple | list):
        pairs = sorted({(int(i), int(o)) for i, o in items})
        return (
            f"(o.image_id, o.object_id) IN ({', '.join(f'({i}, {o})' for i, o in pairs)})"
            if pairs
            else "false"
        )
    return _ids_condition("o.object_id", items)


def _selection(
    reader: ProjectReader,
    dataset: str,
    where: str | None,
    image_ids: Iterable[int] | None,
    object_ids: Iterable[Any] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The images and objects to export (all columns), in id order."""
    ds = sql_literal(dataset)
    image_cond = _ids_condition("i.image_id", image_ids)
    object_cond = _object_condition(object_ids)
    if where:
        rows = where_rows_sql(reader, where, [dataset])
        image_cond += f" AND i.image_id IN (SELECT image_id FROM ({rows}))"
        object_cond += f" AND (o.image_id, o.object_id) IN (SELECT (image_id, object_id) FROM ({rows}) WHERE object_id IS NOT NULL)"
    images = reader.df(
        f"SELECT i.* FROM images i WHERE i.dataset = {ds} AND {image_cond} ORDER BY i.image_id"
    )
    objects = reader.df(
        f"SELECT o.* FROM objects o JOIN images i ON i.dataset = o.dataset AND i.image_id = o.image_id "
        f"WHERE o.dataset = {ds} AND {image_cond} AND {object_cond} ORDER BY o.image_id, o.object_id"
    )
    return images, objects


def _metric_dicts(reader: ProjectReader, dataset: str, keys: pd.DataFrame) -> dict[tuple, dict[str, float]]:
    """(image_id,) or (image_id, object_id) → {metric: value} for the exported rows (nulls left out)."""
    if len(keys) == 0:
        return {}
    columns = [c for c in ("image_id", "object_id") if c in keys.columns]
    on = " AND ".join(f"k.{c} = m.{c}" for c in columns)
    null = "NULL" if columns == ["image_id"] else "NOT NULL"
    frame = reader.df(
        f"SELECT {', '.join('m.' + c for c in columns)}, m.metric, m.value FROM metric_values m JOIN _keys k"
        f" ON {on} WHERE m.dataset = {sql_literal(dataset)} AND m.object_id IS {null} AND m.value IS NOT NULL",
        tables={"_keys": keys[columns].astype("int64")},
    )
    out: dict[tuple, dict[str, float]] = {}
    ids = zip(*(frame[c].tolist() for c in columns), strict=True)
    for key, metric, value in zip(ids, frame["metric"].tolist(), frame["value"].tolist(), strict=True):
        out.setdefault(tuple(int(k) for k in key), {})[metric] = float(value)
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def _scale_factors(width: int, height: int, max_side: int | None) -> tuple[int, int, float, float]:
    """(new_w, new_h, sx, sy); factors are exact ratios of the integer sizes so masks line up."""
    if not max_side or max(width, height) <= max_side or width <= 0 or height <= 0:
        return width, height, 1.0, 1.0
    scale = max_side / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    return new_w, new_h, new_w / width, new_h / height


def _finite(value: Any, replaced: list[int]) -> float:
    number = float(value) if value is not None else math.nan
    if math.isfinite(number):
        return number
    replaced[0] += 1
    return 0.0


def _annotation(row: Any, sx: float, sy: float, replaced: list[int]) -> dict[str, Any]:
    """One COCO annotation scaled by (sx, sy); non-finite numbers become 0 (JSON has no inf) and are counted."""
    from metrics.geometry import parse_segmentation, scale_segmentation

    seg = parse_segmentation(row.segmentation)
    if seg is not None and (sx != 1.0 or sy != 1.0):
        seg = scale_segmentation(seg, sx, sy)
    x, y, w, h = (_finite(v, replaced) for v in (row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h))
    bbox = [x * sx, y * sy, w * sx, h * sy]
    area = _finite(row.area, replaced) * sx * sy
    return {
        "id": int(row.object_id), "image_id": int(row.image_id), "category_id": int(row.category_id),
        "bbox": bbox, "area": area, "iscrowd": int(row.iscrowd), "segmentation": seg if seg is not None else [],
    }  # fmt: skip


def _safe_target(folder: Path, file_name: str) -> Path | None:
    target = (folder / file_name).resolve()
    return target if target.is_relative_to(folder.resolve()) else None


def _write_image(row: Any, target: Path, new_w: int, new_h: int) -> None:
    """Write the image as the annotations see it, resized to (new_w, new_h); copy when nothing changes."""
    from PIL import Image, ImageOps

    source = Path(row.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    needs_rotation = bool(row.orientation_applied) and (row.exif_orientation or 1) != 1
    if (new_w, new_h) == (int(row.width), int(row.height)) and not needs_rotation:
        shutil.copyfile(source, target)
        return
    with Image.open(source) as img:
        fmt = img.format
        if needs_rotation:
            img = ImageOps.exif_transpose(img)
        img = img.resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        ext = target.suffix.lower()
        save_format = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(ext, fmt or "PNG")
        if save_format == "JPEG":
            img = img.convert("RGB")
            img.save(target, format="JPEG", quality=JPEG_QUALITY)
        else:
            img.save(target, format=save_format)


def _scaled_decisions(accepted: pd.DataFrame, factors: dict[int, tuple[float, float]]) -> pd.DataFrame:
    """Accepted boxes moved into the exported frame of each image (``--max-side`` scales it)."""
    accepted = accepted.copy()
    scale = accepted["image_id"].map(lambda i: factors.get(int(i), (1.0, 1.0)))
    for column, axis in (("bbox_x", 0), ("bbox_w", 0), ("bbox_y", 1), ("bbox_h", 1)):
        accepted[column] = accepted[column].astype(float) * scale.map(lambda f, a=axis: f[a]).astype(float)
    return accepted


def export_coco(
    project: str | Path,
    out: str | Path,
    dataset: str | None = None,
    where: str | None = None,
    max_side: int | None = None,
    with_metrics: bool = False,
    image_ids: Iterable[int] | None = None,
    object_ids: Iterable[Any] | None = None,
    apply_fixes: bool = False,
) -> dict[str, Any]:
    """Write one dataset (or the images/objects selected by ``where`` / ids) as COCO JSON; return counts.

    ``where`` is the expression described in :mod:`store.filters`; an image is exported when one of
    its rows matches, an object when its row matches. ``image_ids`` / ``object_ids`` restrict further;
    ``object_ids`` are ids or (image_id, object_id) pairs (ids may repeat on different images).
    Non-finite numbers (TACO has boxes of ``inf``) cannot be written as JSON: they become 0 and are counted.
    ``apply_fixes``: the label-error fixes the user accepted are applied (store.label_decisions), in the
    exported frame (scaled with ``max_side``); ids are kept and added boxes get new ids.
    """
    reader = project_reader(project)
    dataset = _choose_dataset(reader, dataset)
    if max_side is not None and (isinstance(max_side, bool) or int(max_side) < MIN_MAX_SIDE):
        raise InputError("--max-side", f"expected a number of pixels ≥ {MIN_MAX_SIDE}, got {max_side!r}")
    out = Path(out).expanduser()
    if out.exists() and out.is_dir():
        raise InputError(str(out), "is a folder; give a .json file path", field="--out")
    images, objects = _selection(reader, dataset, where, image_ids, object_ids)
    categories = reader.df(
        f"SELECT category_id, name, supercategory FROM categories WHERE dataset = {sql_literal(dataset)} ORDER BY category_id"
    )
    image_metrics = _metric_dicts(reader, dataset, images[["image_id"]]) if with_metrics else {}
    object_metrics = (
        _metric_dicts(reader, dataset, objects[["image_id", "object_id"]]) if with_metrics else {}
    )

    images_dir = out.with_name(f"{out.stem}_images") if max_side else None
    staging = out.with_name(f".{out.stem}_images.tmp-{os.getpid()}") if images_dir else None
    factors: dict[int, tuple[float, float]] = {}
    image_records, written, without_file = [], 0, 0
    try:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        for row in images.itertuples(index=False):
            new_w, new_h, sx, sy = _scale_factors(int(row.width), int(row.height), max_side)
            factors[int(row.image_id)] = (sx, sy)
            record: dict[str, Any] = {
                "id": int(row.image_id), "file_name": row.file_name, "width": new_w, "height": new_h,
                "cocolens_content_hash": row.content_hash or "",
            }  # fmt: skip
            if with_metrics:
                record["cocolens_metrics"] = image_metrics.get((int(row.image_id),), {})
            image_records.append(record)
            if staging is None:
                continue
            target = _safe_target(staging, row.file_name)
            if row.status != "ok" or target is None or not Path(row.path).is_file():
                without_file += 1
                continue
            _write_image(row, target, new_w, new_h)
            written += 1
        annotations, replaced = [], [0]
        for row in objects.itertuples(index=False):
            sx, sy = factors[int(row.image_id)]
            ann = _annotation(row, sx, sy, replaced)
            if with_metrics:
                ann["cocolens_metrics"] = object_metrics.get((int(row.image_id), int(row.object_id)), {})
            annotations.append(ann)
        fixes_applied = None
        if apply_fixes:
            from store.label_decisions import apply_fixes as apply_label_fixes
            from store.label_decisions import decisions

            accepted = _scaled_decisions(decisions(reader.project.root, dataset), factors)
            wrapper = {"images": image_records, "annotations": annotations}
            fixes_applied = apply_label_fixes(wrapper, accepted)
            annotations = wrapper["annotations"]
        meta = reader.project.dataset_meta(dataset)
        info = dict(meta.get("info") or {})
        info["cocolens_export"] = {
            "dataset": dataset, "where": where, "max_side": max_side, "with_metrics": with_metrics,
            "source_annotations": meta.get("annotations_file"), "fixes_applied": fixes_applied,
        }  # fmt: skip
        coco = {
            "info": info,
            "images": image_records,
            "annotations": annotations,
            "categories": [
                {"id": int(c.category_id), "name": c.name, "supercategory": c.supercategory or ""}
                for c in categories.itertuples(index=False)
            ],
        }
        if staging is not None and images_dir is not None:
            replace_dir_atomic(staging, images_dir)
        write_bytes_atomic(out, json.dumps(coco, allow_nan=False).encode())
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return {
        "out": str(out), "dataset": dataset, "images": len(image_records), "objects": len(annotations),
        "categories": len(categories), "images_dir": str(images_dir) if images_dir else None,
        "images_written": written, "images_without_file": without_file, "non_finite_values_zeroed": replaced[0],
        **({"fixes_applied": fixes_applied} if apply_fixes else {}),
    }  # fmt: skip
