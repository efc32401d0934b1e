"""Label metrics: per object (area, shape, position, duplicates, invalid geometry) and per image
(object count, union density, class count), all computed from the annotation tables alone.

Every function takes one dataset's ``objects`` and ``images`` DataFrames (docs/ARCHITECTURE.md)
and returns one float per row, in row order, NaN where it cannot be computed. The annotated
``width``/``height`` of the image record define the frame, so these metrics work even when the
image files are missing (TACO is distributed without them).

Masks are pycocotools RLEs at the annotated image size (never dense 8 MP arrays); they are built
once per (objects, images) pair and shared by all metrics of one pass (see :func:`object_geometry`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metrics import geometry, polygon_batch
from metrics.registry import image_table_metric, object_metric

BORDER_TOLERANCE_PX = 1.0  # points this far outside the frame are rounding, not errors
BBOX_SEG_MIN_IOU = 0.9  # bbox vs segmentation extents below this IoU: the two disagree

_BBOX = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]


@dataclass(frozen=True)
class ObjectGeometry:
    """Per-object geometry shared by the metrics of one pass (row order of ``objects``)."""

    boxes: np.ndarray  # (n, 4) xywh float64
    img_h: np.ndarray  # annotated image height per object, NaN when the image record is unknown
    img_w: np.ndarray
    segs: list[Any]  # parsed segmentation (None when there is none)
    rles: list[dict | None]  # segmentation as RLE (None when no usable segmentation)
    mask_area: np.ndarray  # pixels of the segmentation mask, NaN when there is no mask
    in_frame: np.ndarray  # True where the RLE has exactly the annotated image size
    clean: np.ndarray  # clean polygon segmentations (metrics.polygon_batch.clean_rings)
    seg_lo: np.ndarray  # (n, 2) lowest x, y of a clean polygon's points, NaN otherwise
    seg_hi: np.ndarray  # (n, 2) highest x, y

    @property
    def mask_in_frame(self) -> np.ndarray:
        """True where the segmentation RLE has exactly the annotated image size."""
        return self.in_frame

    def frame_rles(self, rows: np.ndarray, in_frame: np.ndarray, height: int, width: int) -> list[dict]:
        """Masks of ``rows`` in a height×width frame: the segmentation when it fits, else the box."""
        rles = [self.rles[i] for i in rows if in_frame[i]]
        box_rows = [i for i in rows if not in_frame[i]]
        boxes = self.boxes[box_rows]
        boxes = boxes[np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)]
        if len(boxes):
            rles += geometry.bboxes_to_rles(boxes, height, width)
        return rles


_cache: dict[str, Any] = {"key": None, "value": None}


def _fingerprint(objects: pd.DataFrame, images: pd.DataFrame) -> tuple:
    """Order-sensitive digest of the columns the geometry depends on (a reordered or edited table misses)."""

    def digest(frame: pd.DataFrame, columns: list[str]) -> str:
        present = [c for c in columns if c in frame.columns]
        rows = (
            pd.util.hash_pandas_object(frame[present], index=False).to_numpy() if len(frame) else np.zeros(0)
        )
        return hashlib.blake2b(rows.tobytes(), digest_size=16).hexdigest()

    return (
        len(objects),
        digest(objects, ["image_id", *_BBOX, "segmentation"]),
        len(images),
        digest(images, ["image_id", "width", "height"]),
    )


def image_sizes(objects: pd.DataFrame, images: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Annotated (height, width) of each object's image, NaN when the image record is absent."""
    sizes = images.drop_duplicates("image_id").set_index("image_id")
    ids = objects["image_id"]
    height = ids.map(sizes["height"]).to_numpy(dtype=np.float64, na_value=np.nan)
    width = ids.map(sizes["width"]).to_numpy(dtype=np.float64, na_value=np.nan)
    return height, width


def object_geometry(objects: pd.DataFrame, images: pd.DataFrame) -> ObjectGeometry:
    """Parse and rasterise every object once; reused while the same tables are passed again.

    Clean polygons on known frames are rasterised in one pycocotools call per frame size
    (:mod:`metrics.polygon_batch`, the same RLEs); the rest one object at a time.
    """
    key = _fingerprint(objects, images)
    if _cache["key"] == key:
        return _cache["value"]
    img_h, img_w = image_sizes(objects, images)
    boxes = objects[_BBOX].to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 4)
    texts = objects["segmentation"].tolist() if "segmentation" in objects.columns else [""] * len(objects)
    segs = [geometry.parse_segmentation(t) for t in texts]
    rles, batched, (clean, seg_lo, seg_hi) = polygon_batch.batch_polygon_rles(segs, img_h, img_w)
    for i in np.flatnonzero(~batched).tolist():
        seg, h, w = segs[i], img_h[i], img_w[i]
        if seg is None:
            continue
        size_known = h > 0 and w > 0
        rles[i] = geometry.segmentation_to_rle(
            seg, int(h) if size_known else None, int(w) if size_known else None
        )
    mask_area = np.full(len(rles), np.nan)
    have = [i for i, r in enumerate(rles) if r is not None]
    if have:
        mask_area[have] = geometry.rle_area([rles[i] for i in have])
    for i in np.flatnonzero(~batched).tolist():
        # A frame too large for one RLE (> 2^32 pixels): the polygon's area from its own window.
        seg, h, w = segs[i], img_h[i], img_w[i]
        if rles[i] is None and isinstance(seg, list) and h > 0 and w > 0 and not geometry.rle_frame_ok(h, w):
            area = geometry.segmentation_area(seg, int(h), int(w))
            mask_area[i] = np.nan if area is None else area
    in_frame = batched.copy()
    for i in np.flatnonzero(~batched).tolist():
        r, h, w = rles[i], img_h[i], img_w[i]
        in_frame[i] = r is not None and h > 0 and w > 0 and list(r["size"]) == [int(h), int(w)]
    value = ObjectGeometry(boxes, img_h, img_w, segs, rles, mask_area, in_frame, clean, seg_lo, seg_hi)
    _cache["key"], _cache["value"] = key, value
    return value


def _box_area(boxes: np.ndarray) -> np.ndarray:
    w, h = boxes[:, 2], boxes[:, 3]
    with np.errstate(over="ignore", invalid="ignore"):  # a 1e200 box is flagged, not warned about
        return np.where((w > 0) & (h > 0), w * h, np.nan)


def object_area_source(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    """'mask' or 'bbox' per object: which geometry ``object_area`` measured."""
    geo = object_geometry(objects, images)
    return np.where(np.isfinite(geo.mask_area), "mask", "bbox")


@object_metric(
    description="Object size in pixels: area of its segmentation mask (pycocotools rasterisation at the "
    "annotated image size, as COCO's `area`), or bbox w×h for box-only objects.",
    low=0.0,
    unit="px²",
    group="label",
)
def object_area(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    geo = object_geometry(objects, images)
    return np.where(np.isfinite(geo.mask_area), geo.mask_area, _box_area(geo.boxes))


@object_metric(
    description="Object area (mask, or bbox when box-only) as a fraction of the annotated image area; "
    "tiny objects are hard to detect.",
    low=0.0,
    high=1.0,
    unit="fraction of image",
    group="label",
)
def object_area_relative(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    geo = object_geometry(objects, images)
    image_area = np.where((geo.img_h > 0) & (geo.img_w > 0), geo.img_h * geo.img_w, np.nan)
    return np.clip(object_area(objects, images) / image_area, 0.0, 1.0)


@object_metric(
    description="Bounding-box width / height (1 = square, > 1 = wide, < 1 = tall).",
    low=0.0,
    unit="w/h",
    group="label",
)
def object_aspect_ratio(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    w = objects["bbox_w"].to_numpy(dtype=np.float64, na_value=np.nan)
    h = objects["bbox_h"].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), w / h, np.nan)


@object_metric(
    description="How close the bbox is to the image border: 1 − (bbox's smallest gap to any border) / "
    "(half the shorter image side), clipped; 1 = touches the border (likely cut off), 0 = centred.",
    low=0.0,
    high=1.0,
    direction="lower_better",
    group="label",
)
def border_closeness(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    img_h, img_w = image_sizes(objects, images)
    x, y, w, h = objects[_BBOX].to_numpy(dtype=np.float64, na_value=np.nan).T
    half_side = np.minimum(img_w, img_h) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.minimum.reduce([x, y, img_w - (x + w), img_h - (y + h)])
        score = 1.0 - np.clip(gap, 0.0, None) / half_side
    return np.where((half_side > 0) & np.isfinite(gap), np.clip(score, 0.0, 1.0), np.nan)


@object_metric(
    description="Largest IoU with another object of the same class in the same image (mask IoU when both "
    "have masks, else box IoU; 0 when alone); near 1 = probably annotated twice.",
    low=0.0,
    high=1.0,
    direction="lower_better",
    group="label",
)
def annotation_duplicate_iou(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    """Vectorised over all same-image, same-class pairs; masks are compared only where boxes overlap.

    Crowd regions legitimately cover many instances, so crowd/non-crowd pairs are not compared.
    """
    geo = object_geometry(objects, images)
    n = len(objects)
    crowd = objects["iscrowd"].to_numpy() if "iscrowd" in objects.columns else np.zeros(n)
    crowd = np.nan_to_num(np.asarray(crowd, dtype=np.float64)).astype(bool)
    keys = pd.DataFrame(
        {
            "image_id": objects["image_id"].to_numpy(),
            "category_id": objects["category_id"].to_numpy(),
            "row": np.arange(n),
        }
    )
    pairs = keys.merge(keys, on=["image_id", "category_id"], suffixes=("_a", "_b"))
    a, b = pairs["row_a"].to_numpy(), pairs["row_b"].to_numpy()
    keep = (a < b) & (crowd[a] == crowd[b])
    a, b = a[keep], b[keep]
    iou = geometry.box_iou_pairs(geo.boxes[a], geo.boxes[b])
    in_frame = geo.mask_in_frame
    both_masks = in_frame[a] & in_frame[b]
    for k in np.flatnonzero(both_masks & (iou > 0)):
        iou[k] = geometry.mask_iou_matrix([geo.rles[a[k]]], [geo.rles[b[k]]])[0, 0]
    iou[both_masks & ~(iou > 0)] = 0.0
    out = np.zeros(n, dtype=np.float64)
    np.maximum.at(out, a, iou)
    np.maximum.at(out, b, iou)
    out[~np.isfinite(geo.boxes).all(axis=1)] = np.nan
    return out


def _ring_problems(seg: Any, img_h: float, img_w: float) -> tuple[list[str], np.ndarray | None]:
    """Problems of a polygon segmentation, and the extents box (xywh) of its usable rings."""
    problems: list[str] = []
    rings = seg if seg and isinstance(seg[0], list) else [seg]
    points = []
    for ring in rings:
        coords = np.asarray(ring) if isinstance(ring, list) else np.zeros(0, dtype=object)
        if coords.ndim != 1 or coords.dtype.kind not in "iuf" or not np.isfinite(coords).all():
            problems.append("polygon with non-numeric coordinates")
            continue
        if len(ring) % 2:
            problems.append("polygon with an odd number of coordinates")
        if len(ring) < 6:
            problems.append("polygon with fewer than 3 points")
            continue
        points.append(coords[: len(ring) // 2 * 2].astype(np.float64).reshape(-1, 2))
    if not points:
        return problems, None
    pts = np.concatenate(points)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if img_w > 0 and img_h > 0:
        tol = BORDER_TOLERANCE_PX
        if lo[0] < -tol or lo[1] < -tol or hi[0] > img_w + tol or hi[1] > img_h + tol:
            problems.append("polygon points outside the image")
    return problems, np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def _rle_problems(
    seg: dict, rle: dict | None, img_h: float, img_w: float
) -> tuple[list[str], np.ndarray | None]:
    if rle is None:
        return ["RLE unreadable (bad size, or counts that do not sum to height×width)"], None
    problems = []
    size = [int(v) for v in rle["size"]]
    if img_h > 0 and img_w > 0 and size != [int(img_h), int(img_w)]:
        problems.append(f"RLE size {size[0]}x{size[1]} differs from image size {int(img_h)}x{int(img_w)}")
    try:
        box = geometry.rle_bbox(rle)
    except Exception:  # noqa: BLE001 - corrupt compressed counts surface here
        return [*problems, "RLE counts cannot be decoded"], None
    if box[2] <= 0 or box[3] <= 0:
        problems.append("empty mask")
        return problems, None
    return problems, box


def _clean_polygons(geo: ObjectGeometry) -> tuple[np.ndarray, ...]:
    """Polygon segmentations that :func:`_ring_problems` would find nothing wrong with but the border,
    measured over whole columns: (clean mask, extents xywh, points outside the image).

    Clean (:func:`metrics.polygon_batch.clean_rings`, found once per geometry): every ring a list of
    an even number (≥ 6) of finite JSON numbers (floats, ints below 2^53). Everything else is left to
    the per-ring checks, so the reasons stay exactly theirs.
    """
    clean = geo.clean.copy()
    lo, hi = geo.seg_lo, geo.seg_hi
    boxes = np.full((len(clean), 4), np.nan)
    boxes[clean] = np.stack(
        [lo[clean, 0], lo[clean, 1], hi[clean, 0] - lo[clean, 0], hi[clean, 1] - lo[clean, 1]], axis=1
    )
    h, w, tol = geo.img_h, geo.img_w, BORDER_TOLERANCE_PX
    with np.errstate(invalid="ignore"):
        outside = clean & (
            (w > 0)
            & (h > 0)
            & ((lo[:, 0] < -tol) | (lo[:, 1] < -tol) | (hi[:, 0] > w + tol) | (hi[:, 1] > h + tol))
        )
    return clean, boxes, outside


def _object_problems(
    text: Any,
    seg: Any,
    rle: dict | None,
    box: np.ndarray,
    box_ok: bool,
    outside: bool,
    img_h: float,
    img_w: float,
) -> tuple[list[str], np.ndarray | None]:
    """One object's bbox and segmentation problems and the segmentation's own box (None if unusable)."""
    problems: list[str] = []
    if not np.isfinite(box).all():
        problems.append("bbox not finite")
    elif not box_ok:
        problems.append("non-positive bbox size")
    elif outside:
        problems.append("bbox outside the image")
    seg_box = None
    if seg is None:
        if isinstance(text, str) and text.strip() and text.strip() != "[]":
            problems.append("segmentation is not valid JSON")
    elif isinstance(seg, dict):
        more, seg_box = _rle_problems(seg, rle, img_h, img_w)
        problems += more
    elif isinstance(seg, list):
        more, seg_box = _ring_problems(seg, img_h, img_w)
        problems += more
    else:
        problems.append("segmentation is neither polygons nor RLE")
    return problems, seg_box


def invalid_geometry_reasons(objects: pd.DataFrame, images: pd.DataFrame) -> list[str]:
    """Why each object's geometry is invalid ('' when valid); reasons joined by '; '.

    Checks: bbox not finite or with width/height <= 0; bbox or polygon points more than
    ``BORDER_TOLERANCE_PX`` outside the annotated image; polygon rings that are non-numeric, have an
    odd number of coordinates or fewer than 3 points; unparseable segmentation JSON; an ``area`` larger
    than the annotated image; RLE whose size
    differs from the image or whose counts cannot be decoded; empty mask; a bbox whose IoU with the
    segmentation's own box (polygon extents, or the RLE mask's tight box) is below
    ``BBOX_SEG_MIN_IOU`` (COCO tools derive the bbox from the segmentation, so they should agree).
    """
    geo = object_geometry(objects, images)
    texts = objects["segmentation"].tolist() if "segmentation" in objects.columns else [""] * len(objects)
    box_ok = np.isfinite(geo.boxes).all(axis=1) & (geo.boxes[:, 2] > 0) & (geo.boxes[:, 3] > 0)
    tol = BORDER_TOLERANCE_PX
    with np.errstate(invalid="ignore"):
        outside = box_ok & (
            (geo.boxes[:, 0] < -tol)
            | (geo.boxes[:, 1] < -tol)
            | (geo.boxes[:, 0] + geo.boxes[:, 2] > geo.img_w + tol)
            | (geo.boxes[:, 1] + geo.boxes[:, 3] > geo.img_h + tol)
        )
    # Column pass: sound boxes with clean polygons (or no segmentation) have nothing per-object to
    # check but the polygon's border; only the rest go through the per-object checks.
    clean, seg_boxes, polygon_outside = _clean_polygons(geo)
    no_segmentation = np.array(
        [
            seg is None and not (isinstance(t, str) and t.strip() and t.strip() != "[]")
            for seg, t in zip(geo.segs, texts, strict=True)
        ],
        dtype=bool,
    )
    quick = box_ok & ~outside & (clean | no_segmentation)
    problems: dict[int, list[str]] = {
        int(i): ["polygon points outside the image"] for i in np.flatnonzero(quick & polygon_outside)
    }
    for i in np.flatnonzero(~quick).tolist():
        found, seg_box = _object_problems(
            texts[i],
            geo.segs[i],
            geo.rles[i],
            geo.boxes[i],
            bool(box_ok[i]),
            bool(outside[i]),
            geo.img_h[i],
            geo.img_w[i],
        )
        seg_boxes[i] = np.nan if seg_box is None else seg_box
        if found:
            problems[i] = found
    if "area" in objects.columns:  # an area of 1e12 on an 800×600 image was stored unflagged
        area = objects["area"].to_numpy(dtype=np.float64, na_value=np.nan)
        image_area = geo.img_h * geo.img_w
        with np.errstate(invalid="ignore"):
            too_big = np.isfinite(area) & (image_area > 0) & (area > image_area * (1 + 1e-6) + 1)
        for i in np.flatnonzero(too_big).tolist():
            problems.setdefault(i, []).append(
                f"area {area[i]:.6g} larger than the image ({image_area[i]:.0f} px)"
            )
    for i in [k for k, (rle, seg) in enumerate(zip(geo.rles, geo.segs, strict=True)) if rle is None and seg]:
        # a polygon on a frame that holds masks yet without one: its outline is too long to trace
        if isinstance(geo.segs[i], list) and geometry.rle_frame_ok(geo.img_h[i], geo.img_w[i]):
            if geometry.polygon_rings(geo.segs[i]):
                problems.setdefault(i, []).append("polygon outline too long to rasterise")
    agreement = geometry.box_iou_pairs(geo.boxes, seg_boxes)
    compared = box_ok & np.isfinite(seg_boxes).all(axis=1)
    for i in np.flatnonzero(compared & (agreement < BBOX_SEG_MIN_IOU)).tolist():
        problems.setdefault(i, []).append(f"bbox disagrees with the segmentation (IoU {agreement[i]:.2f})")
    reasons = [""] * len(texts)
    for i, found in problems.items():
        reasons[i] = "; ".join(dict.fromkeys(found))
    return reasons


@object_metric(
    description="1 when the annotation's geometry is broken (degenerate polygon or box, points outside the "
    "image, RLE of the wrong size, bbox not matching the mask, area larger than the image), else 0; the "
    "reason is listed per object.",
    version=2,
    low=0.0,
    high=1.0,
    direction="lower_better",
    unit="flag",
    group="label",
)
def invalid_geometry(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    return np.array([1.0 if r else 0.0 for r in invalid_geometry_reasons(objects, images)])


def _per_image(objects: pd.DataFrame, images: pd.DataFrame, per_image: pd.Series, fill: float) -> np.ndarray:
    values = per_image.reindex(images["image_id"].to_numpy())
    return values.fillna(fill).to_numpy(dtype=np.float64) if len(values) else np.zeros(0)


@image_table_metric(
    description="Number of annotated objects in the image (crowd regions included).",
    low=0.0,
    unit="objects",
    group="label",
)
def object_count(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    return _per_image(objects, images, objects.groupby("image_id").size(), 0.0)


@image_table_metric(
    description="Distinct classes annotated in the image.",
    low=0.0,
    unit="classes",
    group="label",
)
def class_count(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    return _per_image(objects, images, objects.groupby("image_id")["category_id"].nunique(), 0.0)


@image_table_metric(
    description="Fraction of the image covered by the union of its objects (masks, or boxes for box-only "
    "objects; overlaps counted once); 0 = empty frame, 1 = fully covered.",
    low=0.0,
    high=1.0,
    unit="fraction of image",
    group="label",
)
def frame_object_density(objects: pd.DataFrame, images: pd.DataFrame) -> np.ndarray:
    geo = object_geometry(objects, images)
    heights = images["height"].to_numpy(dtype=np.float64, na_value=np.nan)
    widths = images["width"].to_numpy(dtype=np.float64, na_value=np.nan)
    known = (heights > 0) & (widths > 0)
    out = np.where(known, 0.0, np.nan)
    rows_by_image = objects.groupby("image_id", sort=False).indices
    in_frame = geo.mask_in_frame
    clipped = _clipped_boxes(geo) if images["image_id"].is_unique else None
    for k, image_id in enumerate(images["image_id"].tolist()):
        rows = rows_by_image.get(image_id)
        if rows is None or not known[k]:
            continue
        if not in_frame[rows].any():  # box-only image: exact union of boxes, no rasterising
            if clipped is None:
                area = geometry.box_union_area(geo.boxes[rows], heights[k], widths[k])
            else:
                area = _union_of_clipped(*(c[rows[clipped[4][rows]]] for c in clipped[:4]))
            out[k] = area / (heights[k] * widths[k])
            continue
        union = geometry.rle_union(geo.frame_rles(rows, in_frame, int(heights[k]), int(widths[k])))
        if union is not None:
            out[k] = float(geometry.rle_area([union])[0]) / (heights[k] * widths[k])
    return out


def _clipped_boxes(geo: ObjectGeometry) -> tuple[np.ndarray, ...]:
    """Every box clipped to its own frame, as :func:`metrics.geometry.box_union_area` clips them
    per image (elementwise, so the same numbers): (x0, y0, x1, y1, kept), kept = finite and not empty.
    """
    b, height, width = geo.boxes, geo.img_h, geo.img_w
    finite = np.isfinite(b).all(axis=1)
    with np.errstate(invalid="ignore"):
        x0, y0 = np.clip(b[:, 0], 0, width), np.clip(b[:, 1], 0, height)
        x1, y1 = np.clip(b[:, 0] + b[:, 2], 0, width), np.clip(b[:, 1] + b[:, 3], 0, height)
        kept = finite & (x1 > x0) & (y1 > y0)
    return x0, y0, x1, y1, kept


def _union_of_clipped(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> float:
    """:func:`metrics.geometry.box_union_area` on boxes already clipped and filtered: the same cells,
    the same covered mask (filled by broadcasting, not a Python loop per box), the same final product.
    """
    if not len(x0):
        return 0.0
    xs, ys = np.unique(np.concatenate([x0, x1])), np.unique(np.concatenate([y0, y1]))
    i0, i1 = np.searchsorted(xs, x0)[:, None, None], np.searchsorted(xs, x1)[:, None, None]
    j0, j1 = np.searchsorted(ys, y0)[:, None, None], np.searchsorted(ys, y1)[:, None, None]
    cols = np.arange(len(xs) - 1)[None, None, :]
    rows = np.arange(len(ys) - 1)[None, :, None]
    covered = ((rows >= j0) & (rows < j1) & (cols >= i0) & (cols < i1)).any(axis=0)
    return float(np.diff(ys) @ (covered @ np.diff(xs)))
