"""Geometry of COCO annotations: segmentations as pycocotools RLE, masks, polygons, IoU.

Everything goes through run-length encoding (RLE) so an 8 MP image never needs a dense mask:
pycocotools rasterises polygons straight to RLE, and area, union (merge) and IoU work on the runs.
Used by the label metrics, the importers/exporters, the models and prediction matching.

Formats (as in COCO):

* polygons: ``[[x1, y1, x2, y2, ...], ...]`` (one flat list per ring), in pixel coordinates;
* uncompressed RLE: ``{"size": [h, w], "counts": [int, ...]}`` (column-major runs, 0s first);
* compressed RLE: ``{"size": [h, w], "counts": "string"}`` (pycocotools' LEB128-like text).

In memory a pycocotools RLE is ``{"size": [h, w], "counts": bytes}``; :func:`rle_to_json` turns it
into the JSON-able compressed form.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

Rle = dict[str, Any]

# pycocotools 2.0.11 ``area`` stores the list length in a uint8 and overflows beyond 255 objects.
_AREA_CHUNK = 255


def parse_segmentation(text: str | None) -> Any:
    """JSON text of a segmentation → Python object (list of rings or RLE dict); None when empty/invalid."""
    if text is None or not isinstance(text, str) or not text.strip():
        return None
    try:
        seg = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    if isinstance(seg, list) and len(seg) == 0:
        return None  # COCO detection files write `segmentation: []` for box-only objects
    return seg


def seg_type_of(seg: Any) -> str:
    """'polygon', 'rle' (uncompressed counts list), 'rle_compressed' (counts string) or 'none'."""
    if isinstance(seg, dict) and "counts" in seg:
        return "rle_compressed" if isinstance(seg["counts"], str | bytes) else "rle"
    if isinstance(seg, list) and seg:
        return "polygon"
    return "none"


def polygon_rings(seg: Any) -> list[list[float]]:
    """Rings usable for rasterising: numeric, even-length (odd tail dropped), at least 3 points.

    pycocotools reads a 4-number ring as a box and fails on odd lengths, so bad rings are filtered
    here; :mod:`metrics.objects` reports them through ``invalid_geometry``.
    """
    if not isinstance(seg, list):
        return []
    if seg and all(isinstance(v, int | float) for v in seg):
        seg = [seg]  # a single flat ring, seen in hand-written files
    rings = []
    for ring in seg:
        if not isinstance(ring, list):
            continue
        try:
            coords = [float(v) for v in ring]
        except (TypeError, ValueError):
            continue
        coords = coords[: len(coords) // 2 * 2]
        if len(coords) >= 6 and all(np.isfinite(coords)):
            rings.append(coords)
    return rings


def polygon_to_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> Rle | None:
    """Rasterise polygon rings (union of all rings) to one RLE of the given image size."""
    return _rings_to_rle(polygon_rings(list(polygons)), height, width)


def _rings_to_rle(rings: list[list[float]], height: int, width: int) -> Rle | None:
    if not rings:
        return None
    parts = mask_utils.frPyObjects(rings, int(height), int(width))
    return parts[0] if len(parts) == 1 else mask_utils.merge(parts)


def rle_from_dict(seg: dict) -> Rle | None:
    """COCO RLE dict (uncompressed counts list or compressed string) → pycocotools RLE."""
    try:
        height, width = (int(v) for v in seg["size"])
        counts = seg["counts"]
    except (KeyError, TypeError, ValueError):
        return None
    if isinstance(counts, str):
        return {"size": [height, width], "counts": counts.encode("ascii")}
    if isinstance(counts, bytes):
        return {"size": [height, width], "counts": counts}
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != height * width:
            return None  # runs that do not fill the frame cannot be decoded
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return None


def segmentation_to_rle(seg: Any, height: int | None, width: int | None) -> Rle | None:
    """Any COCO segmentation → pycocotools RLE, or None when there is none / it is unusable.

    Polygons are rasterised at (height, width); when the image size is unknown they are rasterised
    on a canvas just large enough to hold them. RLEs keep their own size (a size that disagrees
    with the image is reported by ``invalid_geometry``, not silently resized).
    """
    if isinstance(seg, str):
        seg = parse_segmentation(seg)
    if isinstance(seg, dict):
        return rle_from_dict(seg)
    rings = polygon_rings(seg)
    if not rings:
        return None
    if not height or not width or height <= 0 or width <= 0:
        coords = np.concatenate([np.asarray(r) for r in rings])
        width = int(np.ceil(max(coords[0::2].max(), 1.0))) + 1
        height = int(np.ceil(max(coords[1::2].max(), 1.0))) + 1
    return _rings_to_rle(rings, int(height), int(width))


def bbox_to_rle(bbox: Sequence[float], height: int, width: int) -> Rle:
    """COCO xywh box → RLE (pycocotools rounds the corners to whole pixels and clips to the image)."""
    return mask_utils.frPyObjects(np.asarray([bbox], dtype=np.float64), int(height), int(width))[0]


def bboxes_to_rles(boxes: np.ndarray, height: int, width: int) -> list[Rle]:
    """Many xywh boxes of one image → RLEs in one pycocotools call."""
    boxes = np.ascontiguousarray(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    return list(mask_utils.frPyObjects(boxes, int(height), int(width))) if len(boxes) else []


def object_rle(seg: Any, bbox: Sequence[float], height: int | None, width: int | None) -> Rle | None:
    """An object's mask as RLE: its segmentation, else its box (None when neither is usable)."""
    rle = segmentation_to_rle(seg, height, width)
    if rle is not None:
        return rle
    if height and width and height > 0 and width > 0 and bbox[2] > 0 and bbox[3] > 0:
        return bbox_to_rle(bbox, height, width)
    return None


def rle_area(rles: Sequence[Rle]) -> np.ndarray:
    """Mask areas in pixels (float64), chunked around the pycocotools uint8 list-length overflow."""
    rles = list(rles)
    if not rles:
        return np.zeros(0, dtype=np.float64)
    out = [
        np.asarray(mask_utils.area(rles[i : i + _AREA_CHUNK]), dtype=np.float64)
        for i in range(0, len(rles), _AREA_CHUNK)
    ]
    return np.concatenate(out)


def rle_bbox(rle: Rle) -> np.ndarray:
    """Tight xywh box of an RLE mask (zeros for an empty mask)."""
    return np.asarray(mask_utils.toBbox(rle), dtype=np.float64)


def rle_union(rles: Sequence[Rle]) -> Rle | None:
    """Union of same-size RLE masks (None for an empty list)."""
    rles = list(rles)
    if not rles:
        return None
    return rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=False)


def rle_to_mask(rle: Rle) -> np.ndarray:
    """Decode one RLE to a dense (h, w) bool mask. Dense: use for one object, not a whole dataset."""
    if isinstance(rle.get("counts"), list | str):
        rle = rle_from_dict(rle)
    return mask_utils.decode(rle).astype(bool)


def mask_to_rle(mask: np.ndarray) -> Rle:
    """Dense (h, w) mask → pycocotools RLE (bytes counts)."""
    return mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))


def rle_to_json(rle: Rle) -> dict:
    """pycocotools RLE → JSON-able compressed COCO RLE ``{"size": [h, w], "counts": str}``."""
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts}


def mask_to_uncompressed_rle(mask: np.ndarray) -> dict:
    """Dense mask → COCO uncompressed RLE (counts list, column-major, starting with a 0-run)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    height, width = np.asarray(mask).shape[:2]
    if flat.size == 0:
        return {"size": [int(height), int(width)], "counts": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return {"size": [int(height), int(width)], "counts": [int(r) for r in runs]}


def mask_to_polygons(mask: np.ndarray, min_area: float = 1.0) -> list[list[float]]:
    """Outer contours of a dense mask as COCO polygon rings (for exports and model predictions).

    Holes are not represented (COCO polygons cannot express them); rings with fewer than 3 points or
    an enclosed area below ``min_area`` are dropped.
    """
    import cv2  # heavy import kept local: metrics.geometry is imported by light modules too

    mask_u8 = np.ascontiguousarray(np.asarray(mask, dtype=np.uint8))
    contours, _ = cv2.findContours(mask_u8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for contour in contours:
        if len(contour) < 3 or cv2.contourArea(contour) < min_area:
            continue
        rings.append([float(v) for v in contour.reshape(-1)])
    return rings


def scale_segmentation(seg: Any, sx: float, sy: float) -> Any:
    """Scale a COCO segmentation by (sx, sy), e.g. for an export with images downscaled.

    Polygons are scaled coordinate by coordinate. RLEs are decoded, resized with nearest-neighbour
    to ``round(h*sy) × round(w*sx)`` and re-encoded in the same form they came in (counts list or
    string). Returns the segmentation unchanged when it is empty.
    """
    if isinstance(seg, str):
        seg = parse_segmentation(seg)
    if seg is None:
        return []
    if isinstance(seg, dict):
        import cv2

        mask = rle_to_mask(seg).astype(np.uint8)
        height, width = mask.shape
        new_h, new_w = max(1, round(height * sy)), max(1, round(width * sx))
        resized = cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        if isinstance(seg["counts"], list):
            return mask_to_uncompressed_rle(resized)
        return rle_to_json(mask_to_rle(resized))
    out = []
    for ring in seg if seg and isinstance(seg[0], list) else [seg]:
        coords = np.asarray(ring, dtype=np.float64)
        coords[0::2] *= sx
        coords[1::2] *= sy
        out.append(coords.tolist())
    return out


def box_iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xywh boxes, (len(a), len(b)); 0 where the union is empty."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # inf/NaN boxes give IoU 0
        ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
        bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
        iw = np.minimum(ax2[:, None], bx2[None, :]) - np.maximum(a[:, 0][:, None], b[:, 0][None, :])
        ih = np.minimum(ay2[:, None], by2[None, :]) - np.maximum(a[:, 1][:, None], b[:, 1][None, :])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        area_a = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
        area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
        union = area_a[:, None] + area_b[None, :] - inter
        iou = np.where(union > 0, inter / union, 0.0)
    return np.nan_to_num(iou, nan=0.0)


def box_union_area(boxes: np.ndarray, height: float, width: float) -> float:
    """Exact area covered by the union of xywh boxes clipped to the frame (overlaps counted once).

    Coordinate compression: the box edges cut the frame into at most (2n)² cells, each either
    covered or not, so n boxes cost O(n³) worst case on tiny arrays instead of a dense mask.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    b = b[np.isfinite(b).all(axis=1)]
    x0, y0 = np.clip(b[:, 0], 0, width), np.clip(b[:, 1], 0, height)
    x1, y1 = np.clip(b[:, 0] + b[:, 2], 0, width), np.clip(b[:, 1] + b[:, 3], 0, height)
    keep = (x1 > x0) & (y1 > y0)
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    if not len(x0):
        return 0.0
    xs, ys = np.unique(np.concatenate([x0, x1])), np.unique(np.concatenate([y0, y1]))
    covered = np.zeros((len(ys) - 1, len(xs) - 1), dtype=bool)
    for i0, i1, j0, j1 in zip(
        np.searchsorted(xs, x0),
        np.searchsorted(xs, x1),
        np.searchsorted(ys, y0),
        np.searchsorted(ys, y1),
        strict=True,
    ):
        covered[j0:j1, i0:i1] = True
    return float(np.diff(ys) @ (covered @ np.diff(xs)))


def box_iou_pairs(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Row-by-row IoU of two equally long lists of xywh boxes (0 where undefined)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
        ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        union = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
        union = union + np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None) - inter
        iou = np.where(union > 0, inter / union, 0.0)
    return np.nan_to_num(iou, nan=0.0)


def box_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """IoU of two xywh boxes."""
    return float(box_iou_pairs(np.asarray(box_a), np.asarray(box_b))[0])


def mask_iou_matrix(
    rles_a: Sequence[Rle], rles_b: Sequence[Rle], crowd_b: Sequence[bool] | None = None
) -> np.ndarray:
    """Pairwise IoU of same-size RLE masks, (len(a), len(b)).

    With ``crowd_b`` true for a column, that IoU is COCO's crowd overlap: intersection / area of a.
    """
    rles_a, rles_b = list(rles_a), list(rles_b)
    if not rles_a or not rles_b:
        return np.zeros((len(rles_a), len(rles_b)), dtype=np.float64)
    crowd = [int(bool(c)) for c in (crowd_b if crowd_b is not None else [0] * len(rles_b))]
    return np.asarray(mask_utils.iou(rles_a, rles_b, crowd), dtype=np.float64).reshape(
        len(rles_a), len(rles_b)
    )
