"""Validate a parsed COCO ``annotations`` list over whole columns when every record is plain.

The per-record validator (``store.coco_reader._Validator.annotation``) costs ~10 µs a record in
Python: 2 s of a 200,000-box import. Nearly every real file is plain: dict records with int ids
that exist, four finite int/float box values, ``iscrowd`` 0/1, a finite ``area`` ≥ 0 or none, and
polygons of finite numbers in even counts (or RLEs, checked one by one). Such a list is checked
here with a handful of set/numpy passes and its columns appended in one go.

The contract: :func:`append_plain_annotations` either appends exactly what the per-record path
would have appended (same columns, same segmentation text, same warnings counters) and returns
True, or appends nothing and returns False, and the caller runs the per-record path, which raises
the very one-line error for the first bad record. Anything unusual (a bool, a float id, an int
beyond 2^53, a missing key, a duplicate, a non-finite value, a flat polygon) returns False.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

_EXACT = 2**53  # ints beyond this convert to float differently enough to need the exact path
_NUMBERS = {int, float}


def _ints(values: list[Any]) -> np.ndarray | None:
    """int64 array of plain ints (no bools), None when any value is not one or is out of range."""
    if set(map(type, values)) != {int}:
        return None
    try:
        return np.fromiter(values, dtype=np.int64, count=len(values))
    except OverflowError:
        return None


def _finite_numbers(values: list[Any]) -> np.ndarray | None:
    """float64 of plain finite ints/floats (ints within 2^53), None otherwise."""
    kinds = set(map(type, values))
    if not kinds <= _NUMBERS:
        return None
    try:
        array = np.array(values, dtype=np.float64) if values else np.zeros(0)
    except OverflowError:  # an int beyond the float range
        return None
    if not np.isfinite(array).all() or (int in kinds and (np.abs(array) >= _EXACT).any()):
        return None
    return array


def _polygon_texts(segs: list[list]) -> list[str] | None:
    """The reader's JSON text for each plain polygon list (``json.dumps(seg, separators=(",", ":"))``).

    One ``json.dumps`` of them all, cut at the element boundaries: each element is ``[[…]]`` with
    only numbers and ``],[`` inside, so ``]],[[`` occurs exactly between two elements. None when
    the pieces do not come out one per element.
    """
    if not segs:
        return []
    inner = json.dumps(segs, separators=(",", ":"))[1:-1]
    pieces = inner.split("]],[[")
    if len(pieces) != len(segs):
        return None
    last = len(pieces) - 1
    return [("[[" if k else "") + piece + ("]]" if k < last else "") for k, piece in enumerate(pieces)]


def append_plain_annotations(validator: Any, annotations: list[Any], check_segmentation: Any) -> bool:
    """Validate and append every annotation at once; False (nothing appended) when not plain.

    ``check_segmentation(where, seg, width, height)`` is the per-record RLE check, used for dict
    segmentations only after everything else passed, in file order (so its error is the first).
    """
    n = len(annotations)
    if not n or set(map(type, annotations)) != {dict}:
        return False
    try:
        ids = _ints([r["id"] for r in annotations])
        image_ids = _ints([r["image_id"] for r in annotations])
        categories = _ints([r["category_id"] for r in annotations])
        bboxes = [r["bbox"] for r in annotations]
    except KeyError:
        return False
    if ids is None or image_ids is None or categories is None or (ids < 0).any():
        return False
    if set(map(type, bboxes)) != {list} or set(map(len, bboxes)) != {4}:
        return False
    boxes = _finite_numbers([v for box in bboxes for v in box])
    if boxes is None:
        return False
    boxes = boxes.reshape(n, 4)
    if (boxes[:, 2] < 0).any() or (boxes[:, 3] < 0).any():
        return False
    known_images = np.fromiter(validator.sizes, dtype=np.int64, count=len(validator.sizes))
    known_categories = np.fromiter(validator.seen_cat, dtype=np.int64, count=len(validator.seen_cat))
    if not np.isin(image_ids, known_images).all() or not np.isin(categories, known_categories).all():
        return False
    pairs = np.stack([image_ids, ids], axis=1)
    if len(np.unique(pairs, axis=0)) != n or validator.seen_ann or validator.ids_seen:
        return False
    crowd = [r.get("iscrowd", 0) for r in annotations]
    if set(map(type, crowd)) != {int} or not set(crowd) <= {0, 1}:
        return False
    areas = [r.get("area") for r in annotations]
    given = [a for a in areas if a is not None]
    given_values = _finite_numbers(given)
    if given_values is None or (given_values < 0).any():
        return False
    texts: list[str] = [""] * n
    kinds: list[str] = ["none"] * n
    rle_rows: list[int] = []
    polygon_rows: list[int] = []
    polygons: list[list] = []
    values: list[Any] = []
    for i, rec in enumerate(annotations):
        seg = rec.get("segmentation")
        if seg is None or seg == [] or seg == {}:
            continue
        if type(seg) is list:
            if not all(type(ring) is list and not len(ring) % 2 for ring in seg):
                return False
            size = len(values)
            for ring in seg:
                values.extend(ring)
            if len(values) > size:  # all rings empty: no segmentation, as the per-record path says
                polygon_rows.append(i)
                polygons.append(seg)
        elif type(seg) is dict:
            rle_rows.append(i)
        else:
            return False
    if _finite_numbers(values) is None:
        return False
    polygon_texts = _polygon_texts(polygons)
    if polygon_texts is None:
        return False
    for i, text in zip(polygon_rows, polygon_texts, strict=True):
        texts[i], kinds[i] = text, "polygon"
    for i in rle_rows:  # everything else is valid: the first RLE error is the file's first error
        rec = annotations[i]
        width, height = validator.sizes[int(image_ids[i])]
        texts[i], kinds[i] = check_segmentation(
            f"annotations[{i}] (id={int(ids[i])})", rec["segmentation"], width, height
        )
    area = np.empty(n)
    missing = np.array([a is None for a in areas], dtype=bool)
    area[~missing] = given_values
    area[missing] = boxes[missing, 2] * boxes[missing, 3]
    validator.seen_ann.update(zip(image_ids.tolist(), ids.tolist(), strict=True))
    validator.reused_ids += n - len(np.unique(ids))  # records whose id an earlier record had
    validator.ids_seen.update(ids.tolist())
    ints, floats = validator.obj_ints, validator.obj_floats
    ints["object_id"].frombytes(ids.tobytes())
    ints["image_id"].frombytes(image_ids.tobytes())
    ints["category_id"].frombytes(categories.tobytes())
    ints["iscrowd"].frombytes(np.asarray(crowd, dtype=np.int64).tobytes())
    for k, key in enumerate(("bbox_x", "bbox_y", "bbox_w", "bbox_h")):
        floats[key].frombytes(np.ascontiguousarray(boxes[:, k]).tobytes())
    floats["area"].frombytes(area.tobytes())
    validator.segmentations.extend(texts)
    validator.seg_types.extend(kinds)
    return True
