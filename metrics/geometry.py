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
# pycocotools keeps runs as uint32: a frame of more pixels cannot be one RLE (a 10×10 square at
# (60000, 60000) on a 100000² record measured 295,927,206 px²). Such frames get no mask; areas come
# from rasterising the object's own window (:func:`segmentation_area`).
RLE_MAX_PIXELS = 2**32 - 1
# Polygon coordinates are upsampled ×5 into C ints inside pycocotools; with the ±side clip margin
# below, sides up to 1e8 stay far from 2^31.
RLE_MAX_SIDE = 10**8
# pycocotools' merge allocates height×width counts (8 GB for 45000², a segfault when it fails):
# above this many pixels masks are merged on their runs instead.
_MERGE_IN_C_MAX_PIXELS = 2**24
# Coordinates are clamped here before clipping (beyond it a polygon is absurd and flagged anyway).
_COORD_CLAMP = 1e12
# pycocotools traces every edge at ×5 into int arrays (~16 bytes a point): a 200,000-vertex zigzag
# across an 800 px frame needed ~6e8 points and segfaulted. 2e7 points (a 4,000,000 px outline, ~300×
# the border of an 8 MP frame) bound it at ~320 MB; longer outlines get no mask (flagged).
MAX_TRACED_POINTS = 20_000_000


def rle_frame_ok(height: Any, width: Any) -> bool:
    """True when a height×width frame can hold a pycocotools RLE (positive, ≤ 2^32−1 pixels)."""
    try:
        height, width = int(height), int(width)
    except (TypeError, ValueError, OverflowError):
        return False
    return 0 < height <= RLE_MAX_SIDE and 0 < width <= RLE_MAX_SIDE and height * width <= RLE_MAX_PIXELS


def rle_string_counts(counts: str | bytes) -> np.ndarray | None:
    """Runs of a compressed RLE string (pycocotools' ``rleFrString``) as int64, None when malformed.

    Malformed: a character outside the alphabet ('0'…'o'), a number cut short at the end, a number
    longer than 7 characters (beyond 32 bits). Negative runs are returned as they decode; the caller
    checks them and the total (pycocotools would wrap them to ~4e9 and decode for ever).
    """
    try:
        data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    except (UnicodeEncodeError, TypeError):
        return None
    c = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0 or (c < 0).any() or (c > 63).any():
        return None
    more = (c & 0x20) != 0
    if more[-1]:
        return None
    ends = np.flatnonzero(~more)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > 7:
        return None
    group = np.repeat(np.arange(len(ends)), lengths)
    k = np.arange(len(c)) - starts[group]
    values = np.zeros(len(ends), dtype=np.int64)
    np.add.at(values, group, (c & 0x1F) << (5 * k))
    negative = (c[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * lengths[negative])
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # run i > 2 is stored as the difference to run i − 2
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def rle_counts_problem(counts: Any, height: int, width: int) -> str:
    """Why RLE counts (list or compressed string) cannot describe a height×width mask; '' when they can."""
    total = int(height) * int(width)
    if isinstance(counts, str | bytes):
        runs = rle_string_counts(counts)
        if runs is None:
            return "compressed RLE counts are malformed (characters outside the RLE alphabet, or cut short)"
        if (runs < 0).any():
            return "compressed RLE counts decode to a negative run"
        runs_total = int(runs.sum())
    elif isinstance(counts, list):
        runs_total = sum(int(v) for v in counts)
    else:
        return f"expected a list or a string, got {type(counts).__name__}"
    if runs_total != total:
        return f"RLE counts sum to {runs_total}, not height×width {total}"
    return ""


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


def _clip_ring(coords: list[float], x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """Sutherland–Hodgman: the part of a ring inside the box [x0, x1]×[y0, y1] (flat list)."""
    pts = [(coords[i], coords[i + 1]) for i in range(0, len(coords), 2)]
    for axis, bound, keep_below in ((0, x0, False), (0, x1, True), (1, y0, False), (1, y1, True)):
        if not pts:
            break

        def inside(p: tuple[float, float], axis=axis, bound=bound, keep_below=keep_below) -> bool:
            return p[axis] <= bound if keep_below else p[axis] >= bound

        out: list[tuple[float, float]] = []
        prev = pts[-1]
        for cur in pts:
            if inside(cur) != inside(prev):
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cross = [prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])]
                cross[axis] = bound
                out.append((cross[0], cross[1]))
            if inside(cur):
                out.append(cur)
            prev = cur
        pts = out
    return [v for p in pts for v in p]


def _clipped_rings(rings: list[list[float]], height: int, width: int) -> list[list[float]]:
    """Rings cut to the frame plus a margin of one frame side on every side.

    pycocotools traces every edge pixel by pixel (×5 upsampled) before cropping to the frame: a
    coordinate of 1e9 meant billions of points and a segfault. What lies inside the frame is
    unchanged (the cut runs a whole frame side outside it); rings within the margin are untouched.
    """
    x0, y0, x1, y1 = -float(width), -float(height), 2.0 * width, 2.0 * height
    out = []
    for ring in rings:
        xs, ys = ring[0::2], ring[1::2]
        if min(xs) >= x0 and max(xs) <= x1 and min(ys) >= y0 and max(ys) <= y1:
            out.append(ring)
            continue
        clamped = [min(max(v, -_COORD_CLAMP), _COORD_CLAMP) for v in ring]
        clipped = _clip_ring(clamped, x0, y0, x1, y1)
        if len(clipped) >= 6:
            out.append(clipped)
    return out


def traced_points(rings: list[list[float]]) -> float:
    """Points pycocotools traces for these rings (×5 upsampled edges, one per step along the longer axis)."""
    total = 0.0
    for ring in rings:
        xy = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
        step = np.abs(np.diff(np.vstack([xy, xy[:1]]), axis=0)).max(axis=1)
        total += 5.0 * float(step.sum()) + len(xy)
    return total


def polygon_too_long(seg: Any, height: int, width: int) -> bool:
    """True when a polygon's outline, cut to the frame, is beyond what is rasterised (no mask)."""
    if isinstance(seg, list) and rle_frame_ok(height, width):
        vertices = sum(len(r) for r in seg if isinstance(r, list)) // 2 or len(seg) // 2
        if vertices * 5 * 3 * max(int(height), int(width)) <= MAX_TRACED_POINTS:
            return False  # every edge fits the clip box (3 frame sides): too short to matter, no maths
    rings = polygon_rings(seg)
    if not rings or not rle_frame_ok(height, width):
        return False
    return traced_points(_clipped_rings(rings, int(height), int(width))) > MAX_TRACED_POINTS


def _rings_to_rle(rings: list[list[float]], height: int, width: int) -> Rle | None:
    if not rings or not rle_frame_ok(height, width):
        return None
    rings = _clipped_rings(rings, int(height), int(width))
    if not rings:
        return mask_to_rle_empty(int(height), int(width))
    if traced_points(rings) > MAX_TRACED_POINTS:
        return None
    parts = mask_utils.frPyObjects(rings, int(height), int(width))
    return parts[0] if len(parts) == 1 else rle_union(parts)


def mask_to_rle_empty(height: int, width: int) -> Rle:
    """The RLE of an all-zero height×width mask."""
    return mask_utils.frPyObjects({"size": [height, width], "counts": [height * width]}, height, width)


def segmentation_area(seg: Any, height: int, width: int) -> float | None:
    """Mask area (float64 pixels) of a segmentation on any frame, also one too large for an RLE.

    On a frame that holds an RLE this is the RLE's area. On a larger one a polygon is rasterised
    in its own window (the rings' extent clipped to the frame, shifted by whole pixels, which
    pycocotools rasterises identically); None when there is no usable mask or the window itself is
    too large.
    """
    if isinstance(seg, str):
        seg = parse_segmentation(seg)
    if rle_frame_ok(height, width):
        rle = segmentation_to_rle(seg, height, width)
        return None if rle is None else float(rle_area([rle])[0])
    rings = polygon_rings(seg)
    if not rings:
        return None
    xs = np.concatenate([np.asarray(r[0::2]) for r in rings])
    ys = np.concatenate([np.asarray(r[1::2]) for r in rings])
    left = int(np.floor(max(min(xs.min(), float(width)), 0.0)))
    top = int(np.floor(max(min(ys.min(), float(height)), 0.0)))
    right = int(np.ceil(min(max(xs.max(), 0.0), float(width))))
    bottom = int(np.ceil(min(max(ys.max(), 0.0), float(height))))
    win_w, win_h = max(right - left, 0) + 2, max(bottom - top, 0) + 2
    win_w, win_h = min(win_w, int(width) - left), min(win_h, int(height) - top)
    if win_w <= 0 or win_h <= 0:
        return 0.0
    if not rle_frame_ok(win_h, win_w):
        return None
    shifted = [[v - (left if i % 2 == 0 else top) for i, v in enumerate(r)] for r in rings]
    rle = _rings_to_rle(shifted, win_h, win_w)
    return None if rle is None else float(rle_area([rle])[0])


def rle_from_dict(seg: dict) -> Rle | None:
    """COCO RLE dict (uncompressed counts list or compressed string) → pycocotools RLE.

    None when the size is not a usable frame or the runs do not fill it exactly (pycocotools would
    read past them, or spin on a negative run): validated before anything is decoded.
    """
    try:
        height, width = (int(v) for v in seg["size"])
        counts = seg["counts"]
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if not rle_frame_ok(height, width):
        return None
    if isinstance(counts, list):
        try:
            if rle_counts_problem(counts, height, width):
                return None
        except (TypeError, ValueError, OverflowError):
            return None
        if any(int(c) < 0 for c in counts):
            return None
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(counts, str | bytes):
        if rle_counts_problem(counts, height, width):
            return None
        return {
            "size": [height, width],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
        }
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
        width = float(np.ceil(max(coords[0::2].max(), 1.0))) + 1
        height = float(np.ceil(max(coords[1::2].max(), 1.0))) + 1
        if not (width <= RLE_MAX_SIDE and height <= RLE_MAX_SIDE):
            return None  # no image size and coordinates beyond any real frame: no mask
    return _rings_to_rle(rings, int(height), int(width))


def _clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """xywh boxes cut to the frame plus one frame side of margin (the in-frame part is unchanged)."""
    b = np.nan_to_num(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), nan=0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        x0 = np.clip(b[:, 0], -width, 2.0 * width)
        y0 = np.clip(b[:, 1], -height, 2.0 * height)
        x1 = np.clip(np.nan_to_num(b[:, 0] + b[:, 2], nan=0.0), -width, 2.0 * width)
        y1 = np.clip(np.nan_to_num(b[:, 1] + b[:, 3], nan=0.0), -height, 2.0 * height)
    return np.ascontiguousarray(np.stack([x0, y0, np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)], axis=1))


def bbox_to_rle(bbox: Sequence[float], height: int, width: int) -> Rle | None:
    """COCO xywh box → RLE (pycocotools rounds the corners to whole pixels and clips to the image).

    None on a frame too large for an RLE (:data:`RLE_MAX_PIXELS`).
    """
    if not rle_frame_ok(height, width):
        return None
    boxes = _clip_boxes(np.asarray([bbox], dtype=np.float64), int(height), int(width))
    return mask_utils.frPyObjects(boxes, int(height), int(width))[0]


def bboxes_to_rles(boxes: np.ndarray, height: int, width: int) -> list[Rle]:
    """Many xywh boxes of one image → RLEs in one pycocotools call ([] on a frame too large for RLE)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes) or not rle_frame_ok(height, width):
        return []
    return list(mask_utils.frPyObjects(_clip_boxes(boxes, int(height), int(width)), int(height), int(width)))


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
    """Union of same-size RLE masks (None for an empty list).

    pycocotools' merge allocates height×width counts; large frames are merged on the runs instead
    (the same canonical RLE, memory in the number of runs).
    """
    rles = list(rles)
    if not rles:
        return None
    if len(rles) == 1:
        return rles[0]
    height, width = (int(v) for v in rles[0]["size"])
    if height * width <= _MERGE_IN_C_MAX_PIXELS:
        return mask_utils.merge(rles, intersect=False)
    return _union_on_runs(rles, height, width)


def _runs_of(rle: Rle) -> np.ndarray:
    counts = rle["counts"]
    if isinstance(counts, list):
        return np.asarray(counts, dtype=np.int64)
    runs = rle_string_counts(counts)
    if runs is None:
        raise ValueError("malformed compressed RLE counts")
    return runs


def _union_on_runs(rles: Sequence[Rle], height: int, width: int) -> Rle:
    starts, ends = [], []
    for rle in rles:
        bounds = np.cumsum(_runs_of(rle))
        n_on = len(bounds) // 2
        starts.append(bounds[0::2][:n_on])
        ends.append(bounds[1::2][:n_on])
    s, e = np.concatenate(starts), np.concatenate(ends)
    keep = e > s
    s, e = s[keep], e[keep]
    total = height * width
    if not len(s):
        return mask_to_rle_empty(height, width)
    order = np.argsort(s, kind="stable")
    s, e = s[order], np.maximum.accumulate(e[order])
    new = np.concatenate([[True], s[1:] > e[:-1]])
    group_start = s[new]
    group_end = e[np.concatenate([np.flatnonzero(new)[1:] - 1, [len(e) - 1]])]
    edges = np.stack([group_start, group_end], axis=1).ravel()
    runs = np.diff(np.concatenate([[0], edges, [total]]))
    if runs[-1] == 0:
        runs = runs[:-1]  # the mask reaches the last pixel: no closing run of zeros, as pycocotools
    return mask_utils.frPyObjects({"size": [height, width], "counts": runs.tolist()}, height, width)


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

        height, width = (int(v) for v in seg["size"])
        new_h, new_w = max(1, round(height * sy)), max(1, round(width * sx))
        if height * width > _MERGE_IN_C_MAX_PIXELS:  # 45000²: a dense mask would be 2 GB
            runs = scale_runs(_runs_of(seg), height, width, new_h, new_w)
            rle = {"size": [new_h, new_w], "counts": runs.tolist()}
            if isinstance(seg["counts"], list):
                return rle
            return rle_to_json(mask_utils.frPyObjects(rle, new_h, new_w))
        mask = rle_to_mask(seg).astype(np.uint8)
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


def scale_runs(runs: np.ndarray, height: int, width: int, new_h: int, new_w: int) -> np.ndarray:
    """Nearest-neighbour resize of a column-major RLE on its runs, as ``cv2.resize(INTER_NEAREST)``.

    Output pixel (y, x) takes source (⌊y·h/new_h⌋, ⌊x·w/new_w⌋) computed as OpenCV does; memory and
    time grow with the runs and the output columns, never with height×width.
    """
    bounds = np.cumsum(np.asarray(runs, dtype=np.int64))
    n_on = len(bounds) // 2
    starts, ends = bounds[0::2][:n_on], bounds[1::2][:n_on]
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    total = new_h * new_w
    if not len(starts):
        return np.asarray([total], dtype=np.int64)
    # cut the on-intervals at column boundaries: (column, first row, end row) pieces, in order
    first, last = starts // height, (ends - 1) // height
    span = last - first + 1
    owner = np.repeat(np.arange(len(starts)), span)
    column = first[owner] + np.arange(int(span.sum())) - np.repeat(np.cumsum(span) - span, span)
    row0 = np.where(column == first[owner], starts[owner] - column * height, 0)
    row1 = np.where(column == last[owner], ends[owner] - column * height, height)
    # OpenCV resizeNN: ifx = 1 / (dst / src); source index = min(floor(dst index · ifx), src − 1)
    src_col = np.minimum(np.floor(np.arange(new_w) * (1.0 / (new_w / width))).astype(np.int64), width - 1)
    src_row = np.minimum(np.floor(np.arange(new_h) * (1.0 / (new_h / height))).astype(np.int64), height - 1)
    lo, hi = np.searchsorted(column, src_col, "left"), np.searchsorted(column, src_col, "right")
    count = hi - lo
    piece = np.repeat(lo, count) + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    out_col = np.repeat(np.arange(new_w), count)
    i0 = np.searchsorted(src_row, row0[piece], "left")
    i1 = np.searchsorted(src_row, row1[piece], "left")
    keep = i1 > i0
    s, e = out_col[keep] * new_h + i0[keep], out_col[keep] * new_h + i1[keep]
    if not len(s):
        return np.asarray([total], dtype=np.int64)
    new = np.concatenate([[True], s[1:] > e[:-1]])
    group_end = e[np.concatenate([np.flatnonzero(new)[1:] - 1, [len(e) - 1]])]
    edges = np.stack([s[new], group_end], axis=1).ravel()
    out = np.diff(np.concatenate([[0], edges, [total]]))
    return out[:-1] if out[-1] == 0 and len(out) > 1 else out


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
