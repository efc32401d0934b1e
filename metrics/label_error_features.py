"""Continuous evidence that a label is wrong, one column per signal, for a learned combination.

Three families, each optional (a column is NaN where its evidence cannot be computed — the
gradient-boosted classifier that combines them treats NaN as "unknown", not as zero):

* **geometry** (always): size and shape against the label's own class, closeness to the border,
  overlap with the other labels (duplicates);
* **embeddings** (crop vectors given): the share of the k nearest neighbours with the same class
  (Encord Active's annotation quality), out-of-fold class probabilities (cleanlab's
  self-confidence), similarity to the nearest same- and other-class crop and to each class centroid;
* **model** (predictions given): the best same-class prediction's IoU and score, how strongly a
  confident prediction of another class covers the label, whether any prediction is near at all,
  and whether the label's best prediction belongs to another label.

Missing labels are scored per *prediction* (a candidate box): its score, how well the labels
account for it (IoU with each, one-to-one assignment), its size against the class.

Thresholded rules leave most location errors unscored (a box at IoU 0.45 with a confident
prediction is as suspicious as one at 0.55 is not); these continuous columns let the classifier
find the line on the user's own data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrics.label_error_planting import BOX
from metrics.label_quality import DEFAULT_K, DEFAULT_SPLITS
from metrics.matching import compute_pairs
from metrics.prediction_label_errors import (
    CONFIDENT_SCORE,
    OVERLAP_MIN_IOU,
    SAME_OBJECT_IOU,
    assign_one_to_one,
)

EPS = 1e-9
# Embeddings are reduced to this many principal components for the out-of-fold class probabilities:
# the classifier runs once per corrupted copy, and 64 components kept the swap AUROC (see BENCHMARKS).
CV_DIMS = 64


def _max_per(owner: np.ndarray, value: np.ndarray, n: int, fill: float = 0.0) -> np.ndarray:
    out = np.full(n, -np.inf)
    if owner.size:
        np.maximum.at(out, owner, value)
    out[~np.isfinite(out)] = fill
    return out


def _argmax_per(owner: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    """Index (into the pair arrays) of each owner's highest value; -1 where it has none."""
    which = np.full(n, -1, np.int64)
    if owner.size:
        order = np.lexsort((value, owner))
        last = order[np.r_[owner[order][1:] != owner[order][:-1], True]]
        which[owner[last]] = last
    return which


def _greedy_pairs(first: np.ndarray, second: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Indices of pairs chosen one-to-one, heaviest first (each ``first`` and ``second`` used once)."""
    used_first: set[int] = set()
    used_second: set[int] = set()
    chosen = []
    for i in np.argsort(-weight, kind="stable").tolist():
        a, b = int(first[i]), int(second[i])
        if a not in used_first and b not in used_second:
            used_first.add(a)
            used_second.add(b)
            chosen.append(i)
    return np.asarray(chosen, dtype=np.int64)


def _class_medians(labels: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    boxes = labels[BOX].to_numpy(float)
    frame = pd.DataFrame(
        {
            "category_id": labels["category_id"].to_numpy(),
            "area": np.maximum(boxes[:, 2] * boxes[:, 3], EPS),
            "aspect": np.maximum(boxes[:, 2], EPS) / np.maximum(boxes[:, 3], EPS),
        }
    )
    grouped = frame.groupby("category_id")
    return grouped["area"].median(), grouped["aspect"].median()


def _image_sizes(frame: pd.DataFrame, images: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    size = images.set_index("image_id")[["width", "height"]].astype(float)
    width = size["width"].reindex(frame["image_id"]).to_numpy()
    height = size["height"].reindex(frame["image_id"]).to_numpy()
    return np.maximum(np.nan_to_num(width, nan=1.0), 1.0), np.maximum(np.nan_to_num(height, nan=1.0), 1.0)


def _as_gt(labels: pd.DataFrame) -> pd.DataFrame:
    return labels[["image_id", "object_id", "category_id", *BOX, "iscrowd"]].reset_index(drop=True)


def _as_predictions(frame: pd.DataFrame, score: np.ndarray | None = None) -> pd.DataFrame:
    out = frame[["image_id", "category_id", *BOX]].reset_index(drop=True).copy()
    out["prediction_id"] = np.arange(len(out))
    out["score"] = 1.0 if score is None else score
    return out


def geometry_features(labels: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """Size/shape against the class, border distance and overlap with other labels, per label row."""
    labels = labels.reset_index(drop=True)
    n = len(labels)
    boxes = labels[BOX].to_numpy(float)
    width, height = _image_sizes(labels, images)
    area = np.maximum(boxes[:, 2] * boxes[:, 3], EPS)
    aspect = np.maximum(boxes[:, 2], EPS) / np.maximum(boxes[:, 3], EPS)
    med_area, med_aspect = _class_medians(labels)
    cat = labels["category_id"]
    border = np.minimum.reduce(
        [boxes[:, 0], boxes[:, 1], width - boxes[:, 0] - boxes[:, 2], height - boxes[:, 1] - boxes[:, 3]]
    )
    gt = _as_gt(labels)
    pairs = compute_pairs(gt, _as_predictions(labels))
    other = pairs.pred != pairs.gt
    same = other & pairs.same_class
    # Of two overlapping same-class labels, the later one is the likelier double click.
    ids = labels["object_id"].to_numpy()
    earlier = same & (ids[pairs.pred] < ids[pairs.gt])
    per_image = labels.groupby("image_id")["image_id"].transform("size").to_numpy()
    class_share = cat.map(cat.value_counts(normalize=True)).to_numpy()
    return pd.DataFrame(
        {
            "g_log_rel_area": np.log10(area / (width * height)),
            "g_log_area_vs_class": np.log(area / cat.map(med_area).to_numpy()),
            "g_log_aspect_vs_class": np.log(aspect / cat.map(med_aspect).to_numpy()),
            "g_border": np.clip(border, 0, None) / np.minimum(width, height),
            "g_dup_iou": _max_per(pairs.gt[same], pairs.iou[same], n),
            "g_dup_iou_earlier": _max_per(pairs.gt[earlier], pairs.iou[earlier], n),
            "g_max_label_iou": _max_per(pairs.gt[other], pairs.iou[other], n),
            "g_labels_in_image": np.log1p(per_image),
            "g_class_share": class_share,
        }
    )


def class_probabilities(
    vectors: np.ndarray, labels: np.ndarray, seed: int = 0, n_splits: int = DEFAULT_SPLITS
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold class probabilities (rows × classes) and the class of each column."""
    from sklearn.decomposition import PCA

    from metrics.label_quality import self_confidence

    if vectors.shape[1] > CV_DIMS and len(vectors) > CV_DIMS:  # callers usually pass reduced vectors
        vectors = PCA(n_components=CV_DIMS, svd_solver="randomized", random_state=seed).fit_transform(vectors)
    largest = int(np.unique(labels, return_counts=True)[1].max()) if len(labels) else 0
    result = self_confidence(vectors, labels, n_splits=max(2, min(n_splits, largest)), seed=seed)
    return result.probabilities, result.classes


def embedding_features(
    vectors: np.ndarray, labels: pd.DataFrame, seed: int = 0, k: int = DEFAULT_K
) -> tuple[pd.DataFrame, np.ndarray]:
    """Neighbour and classifier evidence per label row; rows whose vector is NaN get NaN.

    Returns the features and the classifier's most likely *other* class per row (the class a
    relabel fix suggests).
    """
    from metrics.knn import knn, normalise_rows

    labels = labels.reset_index(drop=True)
    n = len(labels)
    cats = labels["category_id"].to_numpy()
    columns = (
        "e_knn_same_share",
        "e_knn_mean_sim",
        "e_sim_same",
        "e_sim_other",
        "e_p_given",
        "e_p_other",
        "e_centroid_own",
        "e_centroid_other",
    )
    out = pd.DataFrame({c: np.full(n, np.nan) for c in columns})
    suggested = cats.copy()
    ok = np.flatnonzero(np.isfinite(vectors).all(axis=1)) if len(vectors) else np.zeros(0, np.int64)
    if ok.size < 3:
        return out, suggested
    x = normalise_rows(np.asarray(vectors[ok], dtype=np.float32))
    y = cats[ok]
    kk = min(k, ok.size - 1)
    idx, sims = knn(x, k=kk)
    valid = idx >= 0
    neighbour = y[np.where(valid, idx, 0)]
    same = (neighbour == y[:, None]) & valid
    sims = np.where(valid, sims, np.nan)
    out.loc[ok, "e_knn_same_share"] = same.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    out.loc[ok, "e_knn_mean_sim"] = np.nanmean(sims, axis=1)
    out.loc[ok, "e_sim_same"] = np.nanmax(np.where(same, sims, -1.0), axis=1)
    out.loc[ok, "e_sim_other"] = np.nanmax(np.where(valid & ~same, sims, -1.0), axis=1)

    classes = np.unique(y)
    centroids = normalise_rows(np.stack([x[y == c].mean(axis=0) for c in classes]).astype(np.float32))
    to_centroid = x @ centroids.T
    own = np.searchsorted(classes, y)
    out.loc[ok, "e_centroid_own"] = to_centroid[np.arange(ok.size), own]
    if len(classes) > 1:
        masked = to_centroid.copy()
        masked[np.arange(ok.size), own] = -np.inf
        out.loc[ok, "e_centroid_other"] = masked.max(axis=1)
        largest = int(np.unique(y, return_counts=True)[1].max())
        if largest >= 2:
            probs, prob_classes = class_probabilities(x, y, seed=seed)
            column = {c: i for i, c in enumerate(prob_classes.tolist())}
            given = np.array([column[c] for c in y.tolist()])
            p_given = probs[np.arange(ok.size), given]
            others = probs.copy()
            others[np.arange(ok.size), given] = -1.0
            best_other = others.argmax(axis=1)
            out.loc[ok, "e_p_given"] = p_given
            out.loc[ok, "e_p_other"] = others[np.arange(ok.size), best_other]
            suggested[ok] = prob_classes[best_other]
    return out, suggested


def model_features(labels: pd.DataFrame, predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prediction evidence per label row, and the predictions a fix would use.

    The second frame gives per label: ``class_prediction`` (row of the confident other-class
    prediction that best covers it, -1) and ``box_prediction`` (row of the same-class prediction
    that best explains a moved box: highest score among those overlapping it, -1).
    """
    labels = labels.reset_index(drop=True)
    predictions = predictions.reset_index(drop=True)
    n = len(labels)
    pairs = compute_pairs(_as_gt(labels), predictions)
    score = predictions["score"].to_numpy(float)
    s = score[pairs.pred]
    g, iou, same = pairs.gt, pairs.iou, pairs.same_class
    sg, siou, ss = g[same], iou[same], s[same]
    og, oiou, os_ = g[~same], iou[~same], s[~same]

    best_same = _argmax_per(sg, siou, n)
    same_iou = np.where(best_same >= 0, siou[np.maximum(best_same, 0)], 0.0) if sg.size else np.zeros(n)
    same_iou_score = np.where(best_same >= 0, ss[np.maximum(best_same, 0)], 0.0) if sg.size else np.zeros(n)
    near = siou >= OVERLAP_MIN_IOU
    box_pick = _argmax_per(sg[near], ss[near], n)
    box_prediction = (
        np.where(box_pick >= 0, pairs.pred[same][near][np.maximum(box_pick, 0)], -1)
        if near.any()
        else np.full(n, -1)
    )
    strong_other = os_ * (oiou >= SAME_OBJECT_IOU)
    class_pick = _argmax_per(og, strong_other, n)
    class_prediction = np.full(n, -1)
    if og.size:
        chosen = np.maximum(class_pick, 0)
        has = (class_pick >= 0) & (strong_other[chosen] >= CONFIDENT_SCORE)  # else the embedding suggests
        class_prediction = np.where(has, pairs.pred[~same][chosen], -1)

    # Does this label's best same-class prediction overlap another label even more?
    claimed = np.zeros(n)
    if sg.size:
        pred_best_label_iou = _max_per(
            pairs.pred[same], siou, len(predictions)
        )  # best IoU of each prediction with a same-class label
        chosen_pred = np.where(best_same >= 0, pairs.pred[same][np.maximum(best_same, 0)], -1)
        claimed = np.where(chosen_pred >= 0, pred_best_label_iou[np.maximum(chosen_pred, 0)] - same_iou, 0.0)
    # Labels and same-class predictions paired one-to-one, best IoU first: in a dense scene a moved
    # box still touches a neighbour's prediction, but the neighbour keeps it and the moved label is
    # left with its own object's prediction at a low IoU and a high score.
    assigned_iou = np.zeros(n)
    assigned_score = np.zeros(n)
    if near.any():
        pick = _greedy_pairs(sg[near], pairs.pred[same][near], siou[near])
        assigned_iou[sg[near][pick]] = siou[near][pick]
        assigned_score[sg[near][pick]] = ss[near][pick]
    per_image_labels = labels.groupby("image_id")["image_id"].transform("size").to_numpy()
    confident = predictions[score >= CONFIDENT_SCORE]
    conf_count = confident.groupby("image_id").size().reindex(labels["image_id"]).fillna(0).to_numpy()
    features = pd.DataFrame(
        {
            "m_same_iou": same_iou,
            "m_same_iou_score": same_iou_score,
            "m_same_support": _max_per(sg, ss * siou, n),
            "m_same_conf_iou": _max_per(sg[ss >= CONFIDENT_SCORE], siou[ss >= CONFIDENT_SCORE], n),
            "m_same_best_score_near": _max_per(sg[near], ss[near], n),
            "m_shift": _max_per(sg[near], ss[near] * (1 - siou[near]), n),
            "m_other_strong_score": _max_per(og[oiou >= SAME_OBJECT_IOU], os_[oiou >= SAME_OBJECT_IOU], n),
            "m_other_support": _max_per(og, os_ * oiou, n),
            "m_any_near_score": _max_per(g[iou >= OVERLAP_MIN_IOU], s[iou >= OVERLAP_MIN_IOU], n),
            "m_claimed": claimed,
            "m_assigned_iou": assigned_iou,
            "m_assigned_score": assigned_score,
            "m_assigned_shift": assigned_score * (1 - assigned_iou) * (assigned_iou > 0),
            "m_conf_minus_labels": conf_count - per_image_labels,
        }
    )
    fixes = pd.DataFrame({"class_prediction": class_prediction, "box_prediction": box_prediction})
    return features, fixes


def candidate_features(labels: pd.DataFrame, predictions: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """Per prediction row: how well the labels account for it (a missing label scores high)."""
    labels = labels.reset_index(drop=True)
    predictions = predictions.reset_index(drop=True)
    m = len(predictions)
    score = predictions["score"].to_numpy(float)
    pairs = compute_pairs(_as_gt(labels), predictions)
    p, g, iou, same = pairs.pred, pairs.gt, pairs.iou, pairs.same_class
    confident = score[p] >= CONFIDENT_SCORE
    touching = confident & (iou >= OVERLAP_MIN_IOU)
    accounted = np.zeros(m, bool)
    crowd = labels["iscrowd"].to_numpy().astype(bool)
    accounted[p[touching & crowd[g]]] = True
    regular = np.flatnonzero(touching & ~crowd[g])
    accounted[assign_one_to_one(g[regular], p[regular], iou[regular])] = True

    # Predictions of one object: how many stronger predictions overlap this one (NMS leftovers)?
    self_pairs = compute_pairs(
        _as_gt(_as_predictions(predictions, score).assign(iscrowd=0, object_id=0)), predictions
    )
    sp, sg_, siou = self_pairs.pred, self_pairs.gt, self_pairs.iou
    stronger = (sp != sg_) & (score[sg_] > score[sp]) & (siou >= SAME_OBJECT_IOU)
    boxes = predictions[BOX].to_numpy(float)
    width, height = _image_sizes(predictions, images)
    area = np.maximum(boxes[:, 2] * boxes[:, 3], EPS)
    med_area, _ = _class_medians(labels) if len(labels) else (pd.Series(dtype=float), None)
    class_area = predictions["category_id"].map(med_area).to_numpy(float)
    per_image_labels = labels.groupby("image_id").size().reindex(predictions["image_id"]).fillna(0).to_numpy()
    per_image_conf = (
        (predictions[score >= CONFIDENT_SCORE].groupby("image_id").size().reindex(predictions["image_id"]))
        .fillna(0)
        .to_numpy()
    )
    return pd.DataFrame(
        {
            "c_score": score,
            "c_label_iou": _max_per(p, iou, m),
            "c_same_label_iou": _max_per(p[same], iou[same], m),
            "c_other_label_iou": _max_per(p[~same], iou[~same], m),
            "c_accounted": accounted.astype(float),
            "c_stronger_overlaps": np.bincount(sp[stronger], minlength=m).astype(float),
            "c_log_rel_area": np.log10(area / (width * height)),
            "c_log_area_vs_class": np.log(area / class_area),
            "c_labels_in_image": per_image_labels,
            "c_conf_minus_labels": per_image_conf - per_image_labels,
        }
    )
