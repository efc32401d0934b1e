"""Why each false positive / false negative happened, at one IoU threshold (TIDE-like).

Read off the COCO matches (area range "all") and the IoU pairs of a
:class:`~metrics.matching.MatchResult`; crowd regions never explain an error.

False positive (first rule that holds wins):

* ``duplicate`` — its best same-category object has IoU >= t but was already taken by a
  higher-scored prediction (``duplicate_of_prediction_id``);
* ``class_confusion`` — an object of another category has IoU >= t (the best one is named);
* ``localisation`` — right category, best IoU in [0.1, t);
* ``class_and_localisation`` — only an object of another category overlaps, IoU in [0.1, t)
  (TIDE's "both");
* ``background`` — no object overlaps with IoU >= 0.1: a hallucination or a missing label.

False negative (first rule that holds wins):

* ``misclassified`` — a prediction of another category has IoU >= t;
* ``mislocalised`` — a same-category prediction overlaps with IoU >= 0.1 but did not match it
  (too loose, or it matched a neighbour);
* ``missed`` — nothing of its category came near.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrics.matching import MatchResult, Pairs

# Below this IoU two boxes are "not overlapping" (TIDE's background threshold).
OVERLAP_MIN_IOU = 0.1
FP_REASONS = ("duplicate", "class_confusion", "localisation", "class_and_localisation", "background")
FN_REASONS = ("misclassified", "mislocalised", "missed")
# Each reason's rule in one line, for the pages' legends (same order as the reasons).
FP_MEANINGS = {
    "duplicate": "a second prediction on a label another prediction already matched",
    "class_confusion": "overlaps a label of another class well enough (IoU ≥ threshold)",
    "localisation": f"right class, but the box is too loose ({OVERLAP_MIN_IOU:g} ≤ IoU < threshold)",
    "class_and_localisation": "wrong class and too loose",
    "background": f"overlaps no label (IoU < {OVERLAP_MIN_IOU:g}): a hallucination, or a label missing from the data",
}
FN_MEANINGS = {
    "misclassified": "a prediction of another class covers it (IoU ≥ threshold)",
    "mislocalised": "a prediction of its class overlaps, but not enough (or it went to a neighbour)",
    "missed": "no prediction of its class came near",
}


def best_per(owner: np.ndarray, other: np.ndarray, iou: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``n`` owner rows, the highest ``iou`` among the pairs it owns and that pair's
    ``other`` (0 and -1 when it owns none). ``owner`` / ``other`` / ``iou`` are parallel pair arrays."""
    best = np.zeros(n)
    partner = np.full(n, -1, np.int64)
    if owner.size:
        order = np.lexsort((iou, owner))
        last = order[np.r_[owner[order][1:] != owner[order][:-1], True]]
        best[owner[last]] = iou[last]
        partner[owner[last]] = other[last]
    return best, partner


def _own_and_other(
    pairs: Pairs, usable: np.ndarray, owner: np.ndarray, other: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Over the ``usable`` pairs: (best IoU, partner) with a partner of the owner's class, then the same
    with a partner of another class: :func:`best_per` split by ``pairs.same_class``."""
    own = usable & pairs.same_class
    rest = usable & ~pairs.same_class
    own_iou, own_partner = best_per(owner[own], other[own], pairs.iou[own], n)
    other_iou, other_partner = best_per(owner[rest], other[rest], pairs.iou[rest], n)
    return own_iou, own_partner, other_iou, other_partner


def _ids(table: pd.DataFrame, column: str, rows: np.ndarray) -> np.ndarray:
    values = table[column].to_numpy()
    return np.where(rows >= 0, values[np.maximum(rows, 0)], -1) if len(values) else np.full(rows.shape, -1)


def _threshold_and_counted(
    result: MatchResult, iou_threshold: float, score_threshold: float
) -> tuple[int, float, np.ndarray]:
    """What both reason tables start from: the IoU threshold's index in ``result``, its value (kept just
    below 1), and which predictions count (evaluated, score ≥ ``score_threshold``)."""
    t = result.threshold_index(iou_threshold)
    thr = min(float(result.iou_thresholds[t]), 1 - 1e-10)
    counted = result.pred_evaluated & (result.predictions["score"].to_numpy(float) >= score_threshold)
    return t, thr, counted


def false_positive_reasons(
    result: MatchResult, iou_threshold: float = 0.5, score_threshold: float = 0.0
) -> pd.DataFrame:
    """One row per prediction: ``outcome`` (tp / fp / ignored / not_evaluated) and, for fp, ``reason``.

    ``related_object_id`` / ``related_category_id`` / ``related_iou`` name the object behind the
    reason (for class_confusion: the object of the other category).
    """
    t, thr, counted = _threshold_and_counted(result, iou_threshold, score_threshold)
    preds, gt, pairs = result.predictions, result.gt, result.pairs
    n = len(preds)
    match = result.pred_match[0, t]
    ignored = result.pred_ignored[0, t]
    outcome = np.where(
        ~counted, "not_evaluated", np.where(ignored, "ignored", np.where(match >= 0, "tp", "fp"))
    )
    fp = outcome == "fp"

    real_gt = result.gt_evaluated & ~gt["iscrowd"].to_numpy().astype(bool)
    own_iou, own_gt, other_iou, other_gt = _own_and_other(pairs, real_gt[pairs.gt], pairs.pred, pairs.gt, n)

    duplicate = fp & (own_iou >= thr)
    confusion = fp & ~duplicate & (other_iou >= thr)
    rest = fp & ~duplicate & ~confusion
    localisation = rest & (own_iou >= OVERLAP_MIN_IOU)
    both = rest & ~localisation & (other_iou >= OVERLAP_MIN_IOU)
    reason = np.select([duplicate, confusion, localisation, both, fp], list(FP_REASONS), default="")
    use_other = confusion | both
    related_gt = np.where(use_other, other_gt, np.where(fp & (own_gt >= 0), own_gt, -1))
    related_iou = np.where(use_other, other_iou, np.where(fp, own_iou, 0.0))
    taker = (
        np.where(duplicate, result.gt_match[0, t][np.maximum(own_gt, 0)], -1) if len(gt) else np.full(n, -1)
    )

    out = preds[["prediction_id", "image_id", "category_id", "score"]].copy()
    out["outcome"] = outcome
    out["reason"] = reason
    out["related_object_id"] = _ids(gt, "object_id", related_gt)
    out["related_category_id"] = _ids(gt, "category_id", related_gt)
    out["related_iou"] = related_iou
    out["duplicate_of_prediction_id"] = _ids(preds, "prediction_id", taker)
    return out


def false_negative_reasons(
    result: MatchResult, iou_threshold: float = 0.5, score_threshold: float = 0.0
) -> pd.DataFrame:
    """One row per object: ``outcome`` (found / missed / ignored / not_evaluated) and, if missed, ``reason``.

    Only predictions with score >= ``score_threshold`` count, as found or as explanation.
    """
    t, thr, counted = _threshold_and_counted(result, iou_threshold, score_threshold)
    preds, gt, pairs = result.predictions, result.gt, result.pairs
    n = len(gt)
    match = result.gt_match[0, t]
    found = (match >= 0) & counted[np.maximum(match, 0)] if len(preds) else np.zeros(n, bool)
    ignored = result.gt_ignored[0]
    outcome = np.where(
        ~result.gt_evaluated,
        "not_evaluated",
        np.where(ignored, "ignored", np.where(found, "found", "missed")),
    )
    missed = outcome == "missed"

    own_iou, own_pred, other_iou, other_pred = _own_and_other(
        pairs, counted[pairs.pred], pairs.gt, pairs.pred, n
    )

    misclassified = missed & (other_iou >= thr)
    mislocalised = missed & ~misclassified & (own_iou >= OVERLAP_MIN_IOU)
    reason = np.select([misclassified, mislocalised, missed], list(FN_REASONS), default="")
    related = np.where(misclassified, other_pred, np.where(mislocalised, own_pred, -1))
    related_iou = np.where(misclassified, other_iou, np.where(missed, own_iou, 0.0))

    out = gt[["object_id", "image_id", "category_id"]].copy()
    out["outcome"] = outcome
    out["reason"] = reason
    out["related_prediction_id"] = _ids(preds, "prediction_id", related)
    out["related_category_id"] = _ids(preds, "category_id", related)
    out["related_iou"] = related_iou
    return out


def reason_counts(reasons: pd.DataFrame) -> pd.Series:
    """How many errors of each reason (in the documented order, zeros kept)."""
    names = FP_REASONS if "prediction_id" in reasons.columns else FN_REASONS
    return reasons["reason"].value_counts().reindex(list(names), fill_value=0)
