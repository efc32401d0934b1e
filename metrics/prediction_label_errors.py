"""Likely label errors found by a model's confident predictions (in the spirit of ObjectLab).

Three kinds of evidence, each scored in [0, 1] (higher = more likely a label error):

* ``overlooked`` — a confident prediction that no label accounts for: no label overlaps it with
  IoU >= 0.5, and pairing labels one-to-one with the confident predictions that touch them
  (IoU >= 0.1, highest IoU first) leaves it alone (in dense scenes a missing object still
  overlaps its neighbours a little, but they pair with their own prediction first; a badly
  located label still pairs with its prediction). Score = prediction score. The candidate has no object id: the fix is to add a label.
* ``swapped`` — a label overlapped (IoU >= 0.5) by a confident prediction of another category
  while no confident prediction of its own category overlaps it that well. Score = the best such
  prediction's score; ``suggested_category_id`` is its category.
* ``badly_located`` — a label whose closest confident same-category prediction has IoU in
  [0.1, 0.5) and none reaches 0.5. Score = prediction score × (1 − IoU): the looser, the likelier.

Crowd regions are never candidates themselves, but count as labels (a prediction inside a crowd
region is not "overlooked"). ``object_scores`` gives every label its worst score (0 = no evidence).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrics.error_reasons import best_per
from metrics.matching import IouType, Pairs, compute_pairs

# A prediction is "confident" from this score on: lower ones are too noisy to accuse a label.
CONFIDENT_SCORE = 0.5
# IoU at which a prediction and a label are taken to be the same object (COCO's AP50 criterion).
SAME_OBJECT_IOU = 0.5
# Below this IoU two boxes do not overlap (TIDE's background threshold).
OVERLAP_MIN_IOU = 0.1
KINDS = ("overlooked", "swapped", "badly_located")


def _best_per(owner: np.ndarray, value: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Highest ``value`` per owner row (0 if none) and the index of the pair holding it (-1)."""
    return best_per(owner, np.arange(owner.size), value, n)


def assign_one_to_one(labels: np.ndarray, preds: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Prediction rows greedily paired with a label, pairs taken by descending IoU."""
    taken_labels: set[int] = set()
    taken_preds: set[int] = set()
    for i in np.argsort(-iou, kind="stable").tolist():
        label, pred = int(labels[i]), int(preds[i])
        if label not in taken_labels and pred not in taken_preds:
            taken_labels.add(label)
            taken_preds.add(pred)
    return np.fromiter(taken_preds, np.int64, len(taken_preds))


def _at(values: np.ndarray, index: np.ndarray, fill: float | int) -> np.ndarray:
    return (
        np.where(index >= 0, values[np.maximum(index, 0)], fill)
        if values.size
        else np.full(index.shape, fill)
    )


def find_label_errors(
    gt: pd.DataFrame,
    predictions: pd.DataFrame,
    iou_type: IouType = "bbox",
    *,
    pairs: Pairs | None = None,
    confident_score: float = CONFIDENT_SCORE,
) -> pd.DataFrame:
    """Candidates, best first: ``kind, score, image_id, object_id (-1 for overlooked), prediction_id,
    category_id (the label's, or the prediction's when overlooked), suggested_category_id, iou``.

    ``gt`` / ``predictions`` use the tables of :mod:`metrics.matching` (row index ignored);
    pass ``pairs=result.pairs`` from a :class:`~metrics.matching.MatchResult` to skip the IoUs.
    """
    gt = gt.reset_index(drop=True)
    predictions = predictions.reset_index(drop=True)
    if pairs is None:
        pairs = compute_pairs(gt, predictions, iou_type)
    n_gt, n_pred = len(gt), len(predictions)
    score = predictions["score"].to_numpy(float)
    p_cat = predictions["category_id"].to_numpy()
    crowd = gt["iscrowd"].to_numpy().astype(bool)

    confident = score[pairs.pred] >= confident_score
    p, g, iou, same = (
        pairs.pred[confident],
        pairs.gt[confident],
        pairs.iou[confident],
        pairs.same_class[confident],
    )

    # Each label accounts for one confident prediction: assigned one-to-one, highest IoU first, so
    # a label's own prediction is not taken by a neighbour; crowd regions account for any number.
    touching = iou >= OVERLAP_MIN_IOU
    accounted = np.zeros(n_pred, bool)
    accounted[p[touching & crowd[g]]] = True
    regular = np.flatnonzero(touching & ~crowd[g])
    accounted[assign_one_to_one(g[regular], p[regular], iou[regular])] = True
    # Per prediction: best IoU with any label.
    best_any, _ = _best_per(p, iou, n_pred)
    overlooked = (score >= confident_score) & ~accounted & (best_any < SAME_OBJECT_IOU)

    own = np.flatnonzero(same)
    own_iou, own_pair = _best_per(g[own], iou[own], n_gt)
    own_pred = _at(p[own], own_pair, -1)
    strong = np.flatnonzero(~same & (iou >= SAME_OBJECT_IOU))
    swap_score, swap_pair = _best_per(g[strong], score[p[strong]], n_gt)
    swap_pred = _at(p[strong], swap_pair, -1)
    swap_iou = _at(iou[strong], swap_pair, 0.0)
    labelled = ~crowd
    swapped = labelled & (swap_pred >= 0) & (own_iou < SAME_OBJECT_IOU)
    badly = labelled & ~swapped & (own_iou >= OVERLAP_MIN_IOU) & (own_iou < SAME_OBJECT_IOU)
    badly_score = (
        np.where(badly, score[np.maximum(own_pred, 0)] * (1 - own_iou), 0.0) if n_pred else own_iou * 0
    )

    frames = []
    rows = np.flatnonzero(overlooked)
    frames.append(
        pd.DataFrame(
            {
                "kind": "overlooked",
                "score": score[rows],
                "image_id": predictions["image_id"].to_numpy()[rows],
                "object_id": -1,
                "prediction_id": predictions["prediction_id"].to_numpy()[rows],
                "category_id": p_cat[rows],
                "suggested_category_id": p_cat[rows],
                "iou": best_any[rows],
            }
        )
    )
    for kind, mask, value, pred_rows, iou_values in (
        ("swapped", swapped, swap_score, swap_pred, swap_iou),
        ("badly_located", badly, badly_score, own_pred, own_iou),
    ):
        rows = np.flatnonzero(mask)
        chosen = pred_rows[rows]
        frames.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "score": value[rows],
                    "image_id": gt["image_id"].to_numpy()[rows],
                    "object_id": gt["object_id"].to_numpy()[rows],
                    "prediction_id": predictions["prediction_id"].to_numpy()[chosen],
                    "category_id": gt["category_id"].to_numpy()[rows],
                    "suggested_category_id": p_cat[chosen],
                    "iou": iou_values[rows],
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["score", "kind"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return out


def object_scores(candidates: pd.DataFrame, gt: pd.DataFrame) -> np.ndarray:
    """Per label (rows of ``gt``): its highest candidate score, 0 when nothing accuses it."""
    per_object = candidates[candidates["object_id"] >= 0].groupby(["image_id", "object_id"])["score"].max()
    keys = pd.MultiIndex.from_arrays([gt["image_id"].to_numpy(), gt["object_id"].to_numpy()])
    return per_object.reindex(keys).fillna(0.0).to_numpy()
