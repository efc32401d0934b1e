"""COCO average precision / recall from a :class:`~metrics.matching.MatchResult`.

``accumulate`` follows ``COCOeval.accumulate`` step by step (101 recall points, precision made
monotone from the right, ``searchsorted`` on recall, dets ordered by score with a stable sort
over images in id order) so the 12 summary stats equal pycocotools' to 1e-9. On top of that:
per-class AP/AR, precision-recall curves, and a confusion matrix.

Confusion matrix (rows = ground-truth category, columns = predicted category, each plus
``"background"``), at one IoU threshold ``t`` and counting predictions with score >=
``score_threshold`` (among the ``max_dets`` best per image and category, crowd matches left out):

1. every COCO match at ``t`` adds 1 to (category, category);
2. the unmatched predictions then take, in score order, the unmatched ground truth of *another*
   category with the highest IoU >= ``t`` (each ground truth at most once): 1 to (gt, predicted);
3. a prediction still unmatched adds 1 to (background, predicted); a ground truth still unmatched
   adds 1 to (category, background).

So a row sums to the number of (non-crowd) ground truths of that category and a column to the
number of counted predictions of that category. Per-prediction reasons
(:mod:`metrics.error_reasons`) are not one-to-one, so their counts can differ slightly.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.matching import IouType, MatchResult, match

REC_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS_LIST = (1, 10, 100)
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# (ap?, iou threshold, area, max dets) per stat, as COCOeval.summarize's _summarizeDets.
_STAT_SPECS = (
    (True, None, "all", 100),
    (True, 0.5, "all", 100),
    (True, 0.75, "all", 100),
    (True, None, "small", 100),
    (True, None, "medium", 100),
    (True, None, "large", 100),
    (False, None, "all", 1),
    (False, None, "all", 10),
    (False, None, "all", 100),
    (False, None, "small", 100),
    (False, None, "medium", 100),
    (False, None, "large", 100),
)


@dataclass
class Evaluation:
    """Accumulated arrays with COCOeval's layout: precision (T, R, K, A, M), recall (T, K, A, M).

    -1 marks a (category, area) without ground truth, as in pycocotools.
    """

    match: MatchResult
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    rec_thresholds: np.ndarray
    max_dets: tuple[int, ...]

    @property
    def stats(self) -> dict[str, float]:
        """The 12 COCO summary stats, named ``AP, AP50, …, ARl``."""
        return {name: self._summarize(*spec) for name, spec in zip(STAT_NAMES, _STAT_SPECS, strict=True)}

    def _summarize(
        self, ap: bool, iou: float | None, area: str, max_det: int, k: slice | int = slice(None)
    ) -> float:
        thresholds = self.match.iou_thresholds
        a = self.match.area_labels.index(area)
        m = self.max_dets.index(max_det)
        values = self.precision[:, :, k, a, m] if ap else self.recall[:, k, a, m]
        if iou is not None:
            hits = np.where(np.isclose(thresholds, iou, rtol=0, atol=1e-12))[0]
            if hits.size == 0:
                return -1.0
            values = values[hits]
        kept = values[values > -1]
        return float(np.mean(kept)) if kept.size else -1.0

    def per_class(self, category_names: Mapping[int, str] | None = None) -> pd.DataFrame:
        """AP, AP50, AP75, AR100 per category (-1 when it has no ground truth), with counts at IoU 0.5."""
        result = self.match
        names = category_names or {}
        rows = []
        g_cat = result.gt["category_id"].to_numpy()
        p_cat = result.predictions["category_id"].to_numpy()
        kept_gt = result.gt_evaluated & ~result.gt_ignored[0]
        has_50 = bool(np.isclose(result.iou_thresholds, 0.5).any())
        if has_50:
            t50 = result.threshold_index(0.5)
            tp50 = result.tp()[:, t50]
            fp50 = result.fp()[:, t50]
        for k, cat in enumerate(result.category_ids):
            row = {
                "category_id": int(cat),
                "category": names.get(int(cat), str(cat)),
                "AP": self._summarize(True, None, "all", 100, k),
                "AP50": self._summarize(True, 0.5, "all", 100, k),
                "AP75": self._summarize(True, 0.75, "all", 100, k),
                "AR100": self._summarize(False, None, "all", 100, k),
                "objects": int(np.count_nonzero(kept_gt & (g_cat == cat))),
                "predictions": int(np.count_nonzero(result.pred_evaluated & (p_cat == cat))),
            }
            if has_50:
                row["tp_50"] = int(np.count_nonzero(tp50 & (p_cat == cat)))
                row["fp_50"] = int(np.count_nonzero(fp50 & (p_cat == cat)))
                row["fn_50"] = row["objects"] - row["tp_50"]
            rows.append(row)
        return pd.DataFrame(rows)

    def pr_curve(
        self, iou_threshold: float = 0.5, category_id: int | None = None, area: str = "all"
    ) -> pd.DataFrame:
        """Interpolated precision at the 101 recall points (COCO's curve; AP is its mean).

        ``category_id=None`` averages the categories that have ground truth, which is how the
        overall AP is defined. ``score`` is the score at which the recall point is reached.
        """
        t = self.match.threshold_index(iou_threshold)
        a = self.match.area_labels.index(area)
        m = len(self.max_dets) - 1
        precision = self.precision[t, :, :, a, m]
        scores = self.scores[t, :, :, a, m]
        if category_id is None:
            valid = (precision > -1).all(axis=0)
            prec = (
                precision[:, valid].mean(axis=1) if valid.any() else np.full(len(self.rec_thresholds), np.nan)
            )
            score = np.full(len(self.rec_thresholds), np.nan)
        else:
            k = int(np.flatnonzero(self.match.category_ids == category_id)[0])
            prec, score = precision[:, k], scores[:, k]
        reached = prec > 0
        return pd.DataFrame(
            {"recall": self.rec_thresholds, "precision": prec, "score": score, "reached": reached}
        )


def evaluate(
    gt: pd.DataFrame, predictions: pd.DataFrame, iou_type: IouType = "bbox", **match_kwargs
) -> Evaluation:
    """Match then accumulate: the one call for the 12 stats (``evaluate(...).stats``)."""
    return accumulate(match(gt, predictions, iou_type, **match_kwargs))


def accumulate(result: MatchResult, max_dets: Sequence[int] = MAX_DETS_LIST) -> Evaluation:
    """``COCOeval.accumulate`` on a match result (max dets must not exceed the match's cap)."""
    max_dets = tuple(sorted(max_dets))
    if max_dets[-1] > result.max_dets:
        raise ValueError(f"max_dets {max_dets} exceed the {result.max_dets} used when matching")
    rec = REC_THRESHOLDS
    n_t, n_r, n_k = len(result.iou_thresholds), len(rec), len(result.category_ids)
    n_a, n_m = len(result.area_ranges), len(max_dets)
    precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
    recall = -np.ones((n_t, n_k, n_a, n_m))
    scores = -np.ones((n_t, n_r, n_k, n_a, n_m))

    preds = result.predictions
    p_cat = preds["category_id"].to_numpy()
    p_img = preds["image_id"].to_numpy()
    p_score = preds["score"].to_numpy(float)
    ev = np.flatnonzero(result.pred_evaluated)
    # pycocotools concatenates images in id order, each already in score order, then sorts by
    # score with a stable sort: ties go by image id, then input order.
    order = ev[np.lexsort((ev, p_img[ev], -p_score[ev], p_cat[ev]))]
    cat_sorted = p_cat[order]
    g_cat = result.gt["category_id"].to_numpy()
    kept_gt = result.gt_evaluated[None, :] & ~result.gt_ignored  # (A, G)
    # Reordered once: each category is then a contiguous slice (views, no copies).
    tp_all = ((result.pred_match >= 0) & ~result.pred_ignored)[:, :, order]  # (A, T, n)
    fp_all = ((result.pred_match < 0) & ~result.pred_ignored)[:, :, order]
    rank_sorted = result.pred_rank[order]
    score_sorted = p_score[order]
    for k, cat in enumerate(result.category_ids):
        lo, hi = np.searchsorted(cat_sorted, [cat, cat + 1]) if cat_sorted.size else (0, 0)
        ranks = rank_sorted[lo:hi]
        det_scores = score_sorted[lo:hi]
        for a in range(n_a):
            npig = int(np.count_nonzero(kept_gt[a] & (g_cat == cat)))
            if npig == 0:
                continue
            tps_k = tp_all[a, :, lo:hi]
            fps_k = fp_all[a, :, lo:hi]
            for m, max_det in enumerate(max_dets):
                if max_det >= result.max_dets:
                    tps, fps, kept_scores = tps_k, fps_k, det_scores
                else:
                    keep = ranks < max_det
                    tps, fps, kept_scores = tps_k[:, keep], fps_k[:, keep], det_scores[keep]
                tp_sum = np.cumsum(tps, axis=1, dtype=float)
                fp_sum = np.cumsum(fps, axis=1, dtype=float)
                nd = tp_sum.shape[1]
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1] if nd else 0.0
                if nd == 0:
                    precision[:, :, k, a, m] = 0.0
                    scores[:, :, k, a, m] = 0.0
                    continue
                envelope = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                for t in range(n_t):
                    inds = np.searchsorted(rc[t], rec, side="left")
                    inside = inds < nd
                    q = np.zeros(n_r)
                    ss = np.zeros(n_r)
                    q[inside] = envelope[t, inds[inside]]
                    ss[inside] = kept_scores[inds[inside]]
                    precision[t, :, k, a, m] = q
                    scores[t, :, k, a, m] = ss
    return Evaluation(result, precision, recall, scores, rec, max_dets)


def confusion_matrix(
    result: MatchResult,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
    category_names: Mapping[int, str] | None = None,
    max_classes: int | None = None,
) -> pd.DataFrame:
    """Counts[ground-truth category, predicted category] with background; see the module docstring.

    With ``max_classes``, only that many categories (most labels + predictions first) keep their
    own row and column; the rest are summed into "other classes" (10,000 classes made 10⁸ cells).
    """
    t = result.threshold_index(iou_threshold)
    names = category_names or {}
    cats = [int(c) for c in result.category_ids]
    other: list[str] = []
    if max_classes is not None and len(cats) > max_classes:
        frequency = pd.concat(
            [result.gt["category_id"], result.predictions["category_id"]], ignore_index=True
        ).value_counts(sort=False)
        ranked = sorted(cats, key=lambda c: -int(frequency.get(c, 0)))  # stable: file order on ties
        top = set(ranked[:max_classes])
        cats = [c for c in cats if c in top]
        other = ["other classes"]
    labels = [names.get(c, str(c)) for c in cats] + other + ["background"]
    index_of: dict[int, int] = {c: i for i, c in enumerate(cats)}
    if other:
        index_of = collections.defaultdict(lambda: len(cats), index_of)
    bg = len(cats) + len(other)
    counts = np.zeros((bg + 1, bg + 1), np.int64)

    p_cat = result.predictions["category_id"].to_numpy()
    p_score = result.predictions["score"].to_numpy(float)
    g_cat = result.gt["category_id"].to_numpy()
    pred_match = result.pred_match[0, t]
    counted = result.pred_evaluated & (p_score >= score_threshold) & ~result.pred_ignored[0, t]
    tp = counted & (pred_match >= 0)
    gt_found = np.zeros(len(g_cat), bool)
    gt_found[pred_match[tp]] = True
    p_idx = np.array([index_of[c] for c in p_cat[tp]], np.int64)
    np.add.at(counts, (p_idx, p_idx), 1)

    fp = counted & (pred_match < 0)
    fn = result.gt_evaluated & ~result.gt_ignored[0] & ~gt_found
    pairs = result.pairs
    cross = ~pairs.same_class & (pairs.iou >= min(result.iou_thresholds[t], 1 - 1e-10))
    cross &= fp[pairs.pred] & fn[pairs.gt]
    cp, cg, ciou = pairs.pred[cross], pairs.gt[cross], pairs.iou[cross]
    order = np.lexsort((cg, -ciou, cp, -p_score[cp]))
    used_pred: set[int] = set()
    used_gt: set[int] = set()
    for pi, gi in zip(cp[order].tolist(), cg[order].tolist(), strict=True):
        if pi in used_pred or gi in used_gt:
            continue
        used_pred.add(pi)
        used_gt.add(gi)
        counts[index_of[int(g_cat[gi])], index_of[int(p_cat[pi])]] += 1
    for pi in np.flatnonzero(fp):
        if int(pi) not in used_pred:
            counts[bg, index_of[int(p_cat[pi])]] += 1
    for gi in np.flatnonzero(fn):
        if int(gi) not in used_gt:
            counts[index_of[int(g_cat[gi])], bg] += 1
    frame = pd.DataFrame(counts, index=labels, columns=labels)
    frame.index.name = "ground_truth"
    frame.columns.name = "predicted"
    return frame
