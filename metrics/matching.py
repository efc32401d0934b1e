"""Match predictions to ground truth exactly as pycocotools' ``COCOeval.evaluateImg`` does.

Why re-implement: the app needs per-prediction and per-object answers (which object did this
prediction find, at which IoU thresholds, which prediction found this object), pycocotools only
keeps them inside opaque per-image dicts, and its Python loops take minutes on 100k predictions.
Here all images and categories are matched at once with numpy: the greedy matching loop runs
over the *score rank* within an (image, category) group (at most ``max_dets`` steps), each step
deciding every group, IoU threshold and area range together.

Rules reproduced from pycocotools (2.0.x), so the 12 summary stats agree to 1e-9:

* detections of one (image, category) are sorted by descending score with a stable sort (ties
  keep input order) and only the first ``max_dets`` (100) take part;
* ground truths are ordered non-ignored first (ignored = ``iscrowd`` or area outside the range),
  keeping input order otherwise;
* each detection, in score order, takes the available ground truth of its category with the
  highest IoU >= t (ties go to the later ground truth in that order); a non-ignored one is
  preferred over an ignored one; a crowd ground truth stays available for any number of
  detections, and IoU with a crowd region is intersection / detection area;
* a detection matched to an ignored ground truth is ignored; an unmatched detection whose area is
  outside the area range is ignored.

One deliberate difference: pycocotools records a match by annotation *id* and reads id 0 as
"unmatched", so an object with id 0 that is found still counts as missed (and its detection as a
false positive). Matches here are tracked by row index, so id 0 is an ordinary id.

Input tables (row order matters only for tie-breaking; keep the COCO file order):

* ground truth: ``image_id, object_id, category_id, bbox_x, bbox_y, bbox_w, bbox_h, area,
  iscrowd`` and, for ``iou_type="segm"``, ``rle`` (a pycocotools RLE dict);
* predictions: ``prediction_id, image_id, category_id, score, bbox_x, bbox_y, bbox_w, bbox_h``,
  optional ``area`` (default ``bbox_w * bbox_h``, which is what pycocotools' ``loadRes`` uses
  whenever a result has a box) and, for ``"segm"``, ``rle``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

IouType = Literal["bbox", "segm"]

# pycocotools' defaults, built the same way so float values are bit-identical.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
AREA_RANGES = np.array([[0, 1e5**2], [0, 32**2], [32**2, 96**2], [96**2, 1e5**2]], dtype=float)
AREA_LABELS = ("all", "small", "medium", "large")
MAX_DETS = 100
# pycocotools compares IoU with min(t, 1 - 1e-10) so that t = 1 still matches a perfect box.
_IOU_CAP = 1 - 1e-10
# Pairs are kept for reasons and label errors when they overlap at all (IoU > 0).
_PAIR_CHUNK = 4_000_000

GT_COLUMNS = (
    "image_id",
    "object_id",
    "category_id",
    "bbox_x",
    "bbox_y",
    "bbox_w",
    "bbox_h",
    "area",
    "iscrowd",
)
PRED_COLUMNS = ("prediction_id", "image_id", "category_id", "score", "bbox_x", "bbox_y", "bbox_w", "bbox_h")


@dataclass
class Pairs:
    """Every (prediction, ground truth) pair on the same image with IoU > 0, any category.

    ``iou`` is the COCO IoU (intersection / detection area for a crowd ground truth).
    """

    pred: np.ndarray  # row index into the predictions table
    gt: np.ndarray  # row index into the ground-truth table
    iou: np.ndarray
    same_class: np.ndarray  # bool


@dataclass
class MatchResult:
    """Matches per area range (axis 0, see ``area_labels``), IoU threshold (axis 1) and row.

    Row indices refer to ``gt`` / ``predictions`` (copies of the inputs with a fresh 0..n-1 index).
    """

    iou_type: str
    iou_thresholds: np.ndarray
    area_ranges: np.ndarray
    area_labels: tuple[str, ...]
    max_dets: int
    gt: pd.DataFrame
    predictions: pd.DataFrame
    image_ids: np.ndarray  # sorted images taking part
    category_ids: np.ndarray  # sorted categories taking part
    pred_rank: np.ndarray  # (P,) score rank within (image, category), 0 = highest
    pred_evaluated: np.ndarray  # (P,) bool: taking part (rank < max_dets, known image & category)
    pred_area: np.ndarray  # (P,) area used for the area ranges
    pred_match: np.ndarray  # (A, T, P) matched gt row or -1
    pred_ignored: np.ndarray  # (A, T, P) bool
    gt_match: np.ndarray  # (A, T, G) matched prediction row or -1 (crowd: the last one)
    gt_ignored: np.ndarray  # (A, G) bool
    gt_evaluated: np.ndarray  # (G,) bool: known image & category
    pairs: Pairs
    best_iou: np.ndarray  # (P,) best IoU with a ground truth of the same category (0 if none)
    best_iou_gt: np.ndarray  # (P,) that ground truth's row or -1
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def threshold_index(self, iou_threshold: float) -> int:
        """Index of an IoU threshold on the grid (tolerant to float spelling, e.g. 0.75)."""
        hits = np.flatnonzero(np.isclose(self.iou_thresholds, iou_threshold, rtol=0, atol=1e-9))
        if hits.size == 0:
            raise ValueError(
                f"IoU threshold {iou_threshold} not among {self.iou_thresholds.round(4).tolist()}; "
                "pass it in iou_thresholds= when matching"
            )
        return int(hits[0])

    def tp(self, area: str = "all") -> np.ndarray:
        """(P, T) bool: true positive (matched, not ignored)."""
        a = self.area_labels.index(area)
        return ((self.pred_match[a] >= 0) & ~self.pred_ignored[a]).T

    def fp(self, area: str = "all") -> np.ndarray:
        """(P, T) bool: false positive (taking part, unmatched, not ignored)."""
        a = self.area_labels.index(area)
        return ((self.pred_match[a] < 0) & ~self.pred_ignored[a] & self.pred_evaluated[None, :]).T

    def pair_iou(self, pred_rows: np.ndarray, gt_rows: np.ndarray) -> np.ndarray:
        """IoU of (prediction row, gt row) pairs; 0 where they do not overlap or the gt row is -1."""
        n_gt = max(len(self.gt), 1)
        keys = self.pairs.pred * n_gt + self.pairs.gt
        order = np.argsort(keys, kind="stable")
        wanted = np.asarray(pred_rows, np.int64) * n_gt + np.asarray(gt_rows, np.int64)
        at = np.minimum(np.searchsorted(keys[order], wanted), max(len(keys) - 1, 0))
        found = (
            (np.asarray(gt_rows) >= 0) & (keys[order][at] == wanted)
            if len(keys)
            else np.zeros(len(wanted), bool)
        )
        return np.where(found, self.pairs.iou[order][at] if len(keys) else 0.0, 0.0)

    def predictions_frame(self, iou_thresholds: Sequence[float] = (0.5, 0.75)) -> pd.DataFrame:
        """One row per prediction: ``tp_50``, ``matched_object_id_50``, ``matched_iou_50`` (IoU × TP,
        the graded outcome for precision drivers) … per threshold, best IoU, rank.

        ``matched_object_id`` is -1 when unmatched; ``ignored`` means it does not count (matched a
        crowd region); ``evaluated`` is False beyond ``max_dets`` per image and category.
        """
        out = self.predictions[["prediction_id", "image_id", "category_id", "score"]].copy()
        out["evaluated"] = self.pred_evaluated
        out["rank"] = self.pred_rank
        object_ids = self.gt["object_id"].to_numpy()
        best = self.best_iou_gt
        out["best_iou"] = self.best_iou
        out["best_iou_object_id"] = _lookup(object_ids, best)
        for thr in iou_thresholds:
            t = self.threshold_index(thr)
            tag = _tag(self.iou_thresholds[t])
            match = self.pred_match[0, t]
            tp = (match >= 0) & ~self.pred_ignored[0, t]
            out[f"tp_{tag}"] = tp
            out[f"ignored_{tag}"] = self.pred_ignored[0, t]
            out[f"matched_object_id_{tag}"] = _lookup(object_ids, match)
            out[f"matched_iou_{tag}"] = np.where(tp, self.pair_iou(np.arange(len(match)), match), 0.0)
        return out

    def objects_frame(self, iou_thresholds: Sequence[float] = (0.5, 0.75)) -> pd.DataFrame:
        """One row per ground truth: ``matched_prediction_id_50`` (-1 if missed), ``missed_50`` …"""
        out = self.gt[["image_id", "object_id", "category_id"]].copy()
        out["ignored"] = self.gt_ignored[0]
        pred_ids = self.predictions["prediction_id"].to_numpy()
        for thr in iou_thresholds:
            t = self.threshold_index(thr)
            tag = _tag(self.iou_thresholds[t])
            match = self.gt_match[0, t]
            out[f"matched_prediction_id_{tag}"] = _lookup(pred_ids, match)
            out[f"missed_{tag}"] = (match < 0) & ~self.gt_ignored[0] & self.gt_evaluated
        return out


def _lookup(ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``ids[rows]`` with -1 where ``rows`` is -1 (also when ``ids`` is empty)."""
    return np.r_[ids, -1].astype(np.int64)[rows]


def _tag(threshold: float) -> str:
    return f"{int(round(threshold * 100)):d}"


# The column suffix of each threshold ('50' … '95'): tp_50, reason_75 … in the stored match tables.
THRESHOLD_TAGS: list[str] = [_tag(t) for t in IOU_THRESHOLDS]


# --------------------------------------------------------------------------- inputs


def to_rle(segmentation: Any, height: int, width: int) -> dict:
    """pycocotools RLE of a COCO segmentation (polygons, uncompressed or compressed RLE)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        return mask_utils.merge(rles)
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def _box_polygon(bbox: Sequence[float]) -> list[list[float]]:
    x1, y1, w, h = bbox
    x2, y2 = x1 + w, y1 + h
    return [[x1, y1, x1, y2, x2, y2, x2, y1]]


def objects_from_coco(coco: dict, with_rle: bool = False) -> pd.DataFrame:
    """Ground-truth table from a COCO dict (file order kept); ``rle`` column if ``with_rle``."""
    sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
    anns = coco["annotations"]
    boxes = np.array([a["bbox"] for a in anns], dtype=float).reshape(-1, 4)
    frame = pd.DataFrame(
        {
            "image_id": np.array([a["image_id"] for a in anns], dtype=np.int64),
            "object_id": np.array([a["id"] for a in anns], dtype=np.int64),
            "category_id": np.array([a["category_id"] for a in anns], dtype=np.int64),
            "bbox_x": boxes[:, 0],
            "bbox_y": boxes[:, 1],
            "bbox_w": boxes[:, 2],
            "bbox_h": boxes[:, 3],
            "area": np.array([a["area"] for a in anns], dtype=float),
            "iscrowd": np.array([int(a.get("iscrowd", 0)) for a in anns], dtype=np.int64),
        }
    )
    if with_rle:
        frame["rle"] = [to_rle(a["segmentation"], *sizes[a["image_id"]]) for a in anns]
    return frame


def predictions_from_results(
    results: list[dict], coco: dict | None = None, with_rle: bool = False
) -> pd.DataFrame:
    """Prediction table from a COCO results list, ids 1..n as pycocotools' ``loadRes`` gives them.

    Area follows ``loadRes``: box area when the result has a box, else the mask area.
    """
    from pycocotools import mask as mask_utils

    sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]} if coco else {}
    rles: list[dict] = []
    boxes, areas = [], []
    for r in results:
        rle = None
        if with_rle or "bbox" not in r:
            h, w = sizes[r["image_id"]]
            seg = r.get("segmentation") or _box_polygon(r["bbox"])
            rle = to_rle(seg, h, w)
        if "bbox" in r and len(r["bbox"]):
            boxes.append(r["bbox"])
            areas.append(r["bbox"][2] * r["bbox"][3])
        else:
            boxes.append(mask_utils.toBbox(rle).tolist())
            areas.append(float(mask_utils.area(rle)))
        rles.append(rle)
    box_array = np.array(boxes, dtype=float).reshape(-1, 4)
    frame = pd.DataFrame(
        {
            "prediction_id": np.arange(1, len(results) + 1, dtype=np.int64),
            "image_id": np.array([r["image_id"] for r in results], dtype=np.int64),
            "category_id": np.array([r["category_id"] for r in results], dtype=np.int64),
            "score": np.array([r["score"] for r in results], dtype=float),
            "bbox_x": box_array[:, 0],
            "bbox_y": box_array[:, 1],
            "bbox_w": box_array[:, 2],
            "bbox_h": box_array[:, 3],
            "area": np.array(areas, dtype=float),
        }
    )
    if with_rle:
        frame["rle"] = rles
    return frame


# --------------------------------------------------------------------------- IoU


def crowd_iou_pairs(dt_boxes: np.ndarray, gt_boxes: np.ndarray, gt_crowd: np.ndarray) -> np.ndarray:
    """IoU of aligned (detection, ground truth) xywh box pairs, the same float operations as
    pycocotools' C ``bbIou`` so the values are bit-identical."""
    dx, dy, dw, dh = dt_boxes.T
    gx, gy, gw, gh = gt_boxes.T
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(gt_crowd, da, da + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    return (
        np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if sorted_keys.size else sorted_keys
    )


def compute_pairs(gt: pd.DataFrame, predictions: pd.DataFrame, iou_type: IouType = "bbox") -> Pairs:
    """All same-image (prediction, ground truth) pairs with IoU > 0, any category."""
    p_img = predictions["image_id"].to_numpy()
    g_img = gt["image_id"].to_numpy()
    if iou_type == "segm":
        return _segm_pairs(gt, predictions, p_img, g_img)
    g_order = np.argsort(g_img, kind="stable")
    g_sorted = g_img[g_order]
    start = np.searchsorted(g_sorted, p_img, side="left")
    count = np.searchsorted(g_sorted, p_img, side="right") - start
    p_box = predictions[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(dtype=float)
    g_box = gt[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(dtype=float)
    g_crowd = gt["iscrowd"].to_numpy().astype(bool)
    out_p, out_g, out_iou = [], [], []
    # Chunk the predictions so the dense per-image pair list stays a few million rows.
    cum = np.cumsum(count)
    total = int(cum[-1]) if cum.size else 0
    cuts = np.searchsorted(cum, np.arange(1, total // _PAIR_CHUNK + 1) * _PAIR_CHUNK, side="right")
    bounds = np.unique(np.r_[0, cuts, len(p_img)])
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        c = count[lo:hi]
        pi = np.repeat(np.arange(lo, hi), c)
        offset = np.arange(pi.size) - np.repeat(np.cumsum(c) - c, c)
        gi = g_order[start[lo:hi].repeat(c) + offset]
        iou = crowd_iou_pairs(p_box[pi], g_box[gi], g_crowd[gi])
        keep = iou > 0
        out_p.append(pi[keep])
        out_g.append(gi[keep])
        out_iou.append(iou[keep])
    pred_rows = np.concatenate(out_p) if out_p else np.zeros(0, np.int64)
    gt_rows = np.concatenate(out_g) if out_g else np.zeros(0, np.int64)
    ious = np.concatenate(out_iou) if out_iou else np.zeros(0)
    return _make_pairs(gt, predictions, pred_rows, gt_rows, ious)


def _segm_pairs(gt: pd.DataFrame, predictions: pd.DataFrame, p_img: np.ndarray, g_img: np.ndarray) -> Pairs:
    from pycocotools import mask as mask_utils

    g_rle = gt["rle"].tolist()
    p_rle = predictions["rle"].tolist()
    g_crowd = gt["iscrowd"].to_numpy().astype(np.uint8)
    g_by_img = pd.Series(np.arange(len(g_img))).groupby(g_img).indices
    p_by_img = pd.Series(np.arange(len(p_img))).groupby(p_img).indices
    out_p, out_g, out_iou = [], [], []
    for image_id, p_rows in p_by_img.items():
        g_rows = g_by_img.get(image_id)
        if g_rows is None:
            continue
        iou = np.asarray(
            mask_utils.iou([p_rle[i] for i in p_rows], [g_rle[j] for j in g_rows], g_crowd[g_rows].tolist())
        ).reshape(len(p_rows), len(g_rows))
        di, gj = np.nonzero(iou > 0)
        out_p.append(p_rows[di])
        out_g.append(g_rows[gj])
        out_iou.append(iou[di, gj])
    pred_rows = np.concatenate(out_p) if out_p else np.zeros(0, np.int64)
    gt_rows = np.concatenate(out_g) if out_g else np.zeros(0, np.int64)
    ious = np.concatenate(out_iou) if out_iou else np.zeros(0)
    return _make_pairs(gt, predictions, pred_rows, gt_rows, ious)


def _make_pairs(
    gt: pd.DataFrame, predictions: pd.DataFrame, p: np.ndarray, g: np.ndarray, iou: np.ndarray
) -> Pairs:
    p = p.astype(np.int64)
    g = g.astype(np.int64)
    same = predictions["category_id"].to_numpy()[p] == gt["category_id"].to_numpy()[g]
    return Pairs(pred=p, gt=g, iou=iou.astype(float), same_class=same)


# --------------------------------------------------------------------------- matching


def _check_columns(frame: pd.DataFrame, needed: Iterable[str], what: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} table lacks columns {missing}")


def match(
    gt: pd.DataFrame,
    predictions: pd.DataFrame,
    iou_type: IouType = "bbox",
    *,
    iou_thresholds: Sequence[float] | np.ndarray | None = None,
    area_ranges: np.ndarray | None = None,
    area_labels: Sequence[str] = AREA_LABELS,
    max_dets: int = MAX_DETS,
    image_ids: Iterable[int] | None = None,
    category_ids: Iterable[int] | None = None,
) -> MatchResult:
    """Match ``predictions`` to ``gt`` like ``COCOeval.evaluate`` (see the module docstring).

    ``image_ids`` / ``category_ids`` default to all ids seen in either table; pass the dataset's
    image ids so images without labels count (predictions on them are false positives).
    """
    _check_columns(gt, GT_COLUMNS, "ground-truth")
    _check_columns(predictions, PRED_COLUMNS, "predictions")
    if iou_type == "segm":
        _check_columns(gt, ["rle"], "ground-truth")
        _check_columns(predictions, ["rle"], "predictions")
    elif iou_type != "bbox":
        raise ValueError(f"iou_type must be 'bbox' or 'segm', not {iou_type!r}")
    gt = gt.reset_index(drop=True)
    predictions = predictions.reset_index(drop=True)
    thresholds = IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, dtype=float)
    ranges = AREA_RANGES if area_ranges is None else np.asarray(area_ranges, dtype=float)
    labels = tuple(area_labels)

    g_img = gt["image_id"].to_numpy(np.int64)
    g_cat = gt["category_id"].to_numpy(np.int64)
    p_img = predictions["image_id"].to_numpy(np.int64)
    p_cat = predictions["category_id"].to_numpy(np.int64)
    scores = predictions["score"].to_numpy(float)
    imgs = (
        np.unique(np.r_[g_img, p_img])
        if image_ids is None
        else np.unique(np.asarray(list(image_ids), np.int64))
    )
    cats = (
        np.unique(np.r_[g_cat, p_cat])
        if category_ids is None
        else np.unique(np.asarray(list(category_ids), np.int64))
    )
    gt_eval = np.isin(g_img, imgs) & np.isin(g_cat, cats)
    p_known = np.isin(p_img, imgs) & np.isin(p_cat, cats)

    # Score rank within (image, category): stable sort on -score keeps input order for ties.
    n_p = len(predictions)
    order = np.lexsort((np.arange(n_p), -scores, p_cat, p_img))
    group_key = np.stack([p_img[order], p_cat[order]], axis=1)
    new_group = np.r_[True, np.any(group_key[1:] != group_key[:-1], axis=1)] if n_p else np.zeros(0, bool)
    group_start = (
        np.maximum.accumulate(np.where(new_group, np.arange(n_p), 0)) if n_p else np.zeros(0, np.int64)
    )
    rank = np.empty(n_p, np.int64)
    rank[order] = np.arange(n_p) - group_start
    p_eval = p_known & (rank < max_dets)

    pred_area = (
        predictions["area"].to_numpy(float)
        if "area" in predictions.columns
        else predictions["bbox_w"].to_numpy(float) * predictions["bbox_h"].to_numpy(float)
    )
    g_area = gt["area"].to_numpy(float)
    g_crowd = gt["iscrowd"].to_numpy().astype(bool)
    # (A, G): ignored per area range, as in evaluateImg.
    gt_ignored = g_crowd[None, :] | (g_area[None, :] < ranges[:, :1]) | (g_area[None, :] > ranges[:, 1:])

    pairs = compute_pairs(gt, predictions, iou_type)
    n_a, n_t, n_g = len(ranges), len(thresholds), len(gt)
    pred_match = np.full((n_a, n_t, n_p), -1, np.int64)
    gt_match = np.full((n_a, n_t, n_g), -1, np.int64)

    effective = np.minimum(thresholds, _IOU_CAP)
    usable = pairs.same_class & p_eval[pairs.pred] & gt_eval[pairs.gt] & (pairs.iou >= effective.min())
    c_pred, c_gt, c_iou = pairs.pred[usable], pairs.gt[usable], pairs.iou[usable]
    c_rank = rank[c_pred]
    sort = np.lexsort((c_gt, c_pred, c_rank))
    c_pred, c_gt, c_iou, c_rank = c_pred[sort], c_gt[sort], c_iou[sort], c_rank[sort]
    _greedy_match(c_pred, c_gt, c_iou, c_rank, effective, gt_ignored, g_crowd, pred_match, gt_match)

    matched = pred_match >= 0
    safe = np.maximum(pred_match, 0)
    matched_ignored = (
        np.take_along_axis(np.broadcast_to(gt_ignored[:, None, :], (n_a, n_t, n_g)), safe, axis=2)
        if n_g
        else np.zeros_like(matched)
    )
    outside = (pred_area[None, :] < ranges[:, :1]) | (pred_area[None, :] > ranges[:, 1:])
    pred_ignored = np.where(matched, matched_ignored, outside[:, None, :])
    pred_ignored &= p_eval[None, None, :]

    best_iou, best_gt = _best_same_class(pairs, n_p)
    return MatchResult(
        iou_type=iou_type,
        iou_thresholds=thresholds,
        area_ranges=ranges,
        area_labels=labels,
        max_dets=max_dets,
        gt=gt,
        predictions=predictions,
        image_ids=imgs,
        category_ids=cats,
        pred_rank=rank,
        pred_evaluated=p_eval,
        pred_area=pred_area,
        pred_match=pred_match,
        pred_ignored=pred_ignored,
        gt_match=gt_match,
        gt_ignored=gt_ignored,
        gt_evaluated=gt_eval,
        pairs=pairs,
        best_iou=best_iou,
        best_iou_gt=best_gt,
    )


def _greedy_match(
    c_pred: np.ndarray,
    c_gt: np.ndarray,
    c_iou: np.ndarray,
    c_rank: np.ndarray,
    thresholds: np.ndarray,
    gt_ignored: np.ndarray,
    g_crowd: np.ndarray,
    pred_match: np.ndarray,
    gt_match: np.ndarray,
) -> None:
    """Greedy COCO matching, one score rank at a time for all groups, thresholds and areas.

    Candidates are sorted by (rank, prediction, gt row). At one rank every (image, category)
    group has at most one detection, so the decisions of one step never compete.
    """
    n_a, n_t = pred_match.shape[:2]
    taken = np.zeros((n_a, n_t, gt_ignored.shape[1]), bool)
    bounds = np.searchsorted(c_rank, np.arange(int(c_rank.max()) + 2)) if c_rank.size else []
    for r in range(len(bounds) - 1):
        lo, hi = bounds[r], bounds[r + 1]
        if hi <= lo:
            continue
        d, g, iou = c_pred[lo:hi], c_gt[lo:hi], c_iou[lo:hi]
        seg_starts = _group_starts(d)
        seg_of = np.repeat(np.arange(seg_starts.size), np.diff(np.r_[seg_starts, d.size]))
        ign = gt_ignored[:, g][:, None, :]  # (A, 1, n)
        valid = (iou[None, None, :] >= thresholds[None, :, None]) & (
            ~taken[:, :, g] | g_crowd[g][None, None, :]
        )
        valid_kept = valid & ~ign
        any_kept = np.logical_or.reduceat(valid_kept, seg_starts, axis=2)[:, :, seg_of]
        # A non-ignored gt wins over an ignored one; among the chosen kind the highest IoU wins.
        candidate = np.where(any_kept, valid_kept, valid & ign)
        key = np.where(candidate, iou[None, None, :], -1.0)
        best = np.maximum.reduceat(key, seg_starts, axis=2)[:, :, seg_of]
        position = np.where(candidate & (key == best), np.arange(d.size)[None, None, :], -1)
        chosen = np.maximum.reduceat(position, seg_starts, axis=2)  # ties: the later gt
        a_i, t_i, s_i = np.nonzero(chosen >= 0)
        pick = chosen[a_i, t_i, s_i]
        pred_match[a_i, t_i, d[pick]] = g[pick]
        gt_match[a_i, t_i, g[pick]] = d[pick]
        taken[a_i, t_i, g[pick]] = True


def _best_same_class(pairs: Pairs, n_pred: int) -> tuple[np.ndarray, np.ndarray]:
    best_iou = np.zeros(n_pred)
    best_gt = np.full(n_pred, -1, np.int64)
    p, g, iou = pairs.pred[pairs.same_class], pairs.gt[pairs.same_class], pairs.iou[pairs.same_class]
    if p.size:
        order = np.lexsort((iou, p))
        last = np.r_[p[order][1:] != p[order][:-1], True]
        rows = order[last]
        best_iou[p[rows]] = iou[rows]
        best_gt[p[rows]] = g[rows]
    return best_iou, best_gt
