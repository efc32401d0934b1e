"""One ranked answer to "which labels are wrong?": ``label_issue`` per label, ``missing_label`` per image.

How the evidence is combined — learned on the user's own data, not hand-weighted:

1. compute continuous evidence for every real label (:mod:`metrics.label_error_features`:
   geometry always, embedding neighbours and out-of-fold class probabilities when crop vectors
   exist, the model's predictions when a model was imported or trained);
2. plant synthetic errors of each kind into copies of the labels
   (:mod:`metrics.label_error_planting`), compute the same evidence on the copies;
3. fit a gradient-boosted classifier (clean / class / location / spurious / duplicate) on the copies
   and score the real labels **out of fold**: images are split into folds, and a label is scored by
   a model that never saw its image, so real errors that sat in the copies as "clean" cannot be
   memorised;
4. ``label_issue`` = 1 − P(clean), ``label_issue_kind`` = the likeliest error kind, and a suggested
   fix from the evidence (relabel to the class a confident prediction or the classifier prefers,
   replace the box by the predicted one, delete).

Missing labels work the same way per prediction: labels are dropped from the copies, and a
classifier learns which unaccounted predictions are overlooked objects; ``missing_label`` is an
image's highest candidate probability.

Why it generalises: the classifier learns the *scale* of each signal on this dataset (how
confident this model is on correct labels, how tightly this dataset's classes cluster, what size
its objects are), which fixed thresholds cannot. Where it cannot: errors unlike the planted kinds
(a box around two objects, a consistently wrong class convention) are scored only as far as they
move the same evidence; without predictions, location errors rest on crop embeddings alone and
missing labels are not scored at all; with few labels (< ~100) the copies carry few examples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from metrics.label_error_features import (
    candidate_features,
    embedding_features,
    geometry_features,
    model_features,
)
from metrics.label_error_planting import BOX, KINDS, LABEL_COLUMNS, PLANT_RATES, box_iou, plant_errors
from metrics.registry import describe_score

EmbedBoxes = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (image_ids, xywh boxes) -> vectors

FOLDS = 5  # out-of-fold splits over images
SUSPICIOUS = 0.5  # first-round score from which a label's copies stop counting as clean examples
REDUCED_DIMS = 64  # principal components of the crop embeddings the evidence is computed on
MIN_PLANTED_PER_KIND = 60  # copies until the rarest kind has this many (small datasets)
MAX_COPIES = 8
# Crops embedded for planted boxes in one pass (all copies): bounds the CNN time. The store keeps them,
# so only the first pass after new embeddings pays (~40 s on 2 CPU cores for blood_cells).
MAX_EMBEDDED_PLANTS = 1600
CANDIDATE_MIN = 0.05  # candidates below this missing-label probability are not kept
DROP_MATCH_IOU = 0.5  # a prediction overlapping a dropped label this much is that overlooked object
ERROR_KINDS = KINDS[1:]
FIXES = {"class": "relabel", "location": "replace_box", "spurious": "delete", "duplicate": "delete"}

LABEL_ISSUE = describe_score(
    "label_issue",
    "object",
    "label_quality",
    "lower_better",
    "How likely the label is wrong (1 − P(clean)) from a classifier trained on errors planted into "
    "copies of this dataset: combines crop-embedding neighbours, out-of-fold class probability, the "
    "model's predictions and geometry. 0 = looks right, 1 = almost surely wrong; see its kind and fix.",
)
MISSING_LABEL = describe_score(
    "missing_label",
    "image",
    "label_quality",
    "lower_better",
    "How likely the image has an object nobody labelled: the highest probability among the model's "
    "predictions that no label accounts for (learned from labels dropped from copies of this "
    "dataset). Needs a model's predictions; 0 = nothing missing, 1 = almost surely missing one.",
)


@dataclass
class LabelErrorResult:
    """Scores for the real labels (rows aligned with the input labels) and missing-label candidates."""

    objects: pd.DataFrame
    candidates: pd.DataFrame
    images: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def reduced_embeddings(
    vectors: np.ndarray, seed: int
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Vectors projected on their top principal components (unit rows), and the same projection for new ones.

    Fitted once on the real labels and reused for every corrupted copy: the neighbour search and the
    out-of-fold classifier then run on ``REDUCED_DIMS`` columns instead of 1280 (about 20× less work)
    and the copies live in exactly the real labels' space. Unsupervised, so no label leaks.
    """
    from metrics.knn import normalise_rows

    finite = np.isfinite(vectors).all(axis=1)
    if finite.sum() <= REDUCED_DIMS or vectors.shape[1] <= REDUCED_DIMS:
        return vectors, lambda x: np.asarray(x, dtype=np.float32)
    sample = vectors[finite]
    mean = sample.mean(axis=0)
    _, _, vt = np.linalg.svd(
        sample[np.random.default_rng(seed).permutation(len(sample))[:20_000]] - mean, full_matrices=False
    )
    basis = vt[:REDUCED_DIMS].T.astype(np.float32)

    def project(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        out = np.full((len(x), REDUCED_DIMS), np.nan, dtype=np.float32)
        ok = np.isfinite(x).all(axis=1)
        out[ok] = normalise_rows((x[ok] - mean) @ basis)
        return out

    return project(vectors), project


def copies_needed(n_labels: int) -> int:
    """Corrupted copies: enough for ``MIN_PLANTED_PER_KIND`` of the rarest kind, or to fill the crop
    budget with new boxes, whichever needs more (at most ``MAX_COPIES``)."""
    n = max(n_labels, 1)
    rarest = min(PLANT_RATES.values()) * n
    fresh = sum(PLANT_RATES[k] for k in ("location", "spurious", "duplicate")) * n
    wanted = max(math.ceil(MIN_PLANTED_PER_KIND / rarest), math.ceil(MAX_EMBEDDED_PLANTS / fresh))
    return int(min(MAX_COPIES, max(1, wanted)))


def _features(
    labels: pd.DataFrame,
    images: pd.DataFrame,
    vectors: np.ndarray | None,
    predictions: pd.DataFrame | None,
    seed: int,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame | None]:
    parts = [geometry_features(labels, images)]
    suggested = labels["category_id"].to_numpy().copy()
    fixes = None
    if vectors is not None:
        emb, suggested = embedding_features(vectors, labels, seed=seed)
        parts.append(emb)
    if predictions is not None:
        model, fixes = model_features(labels, predictions)
        parts.append(model)
    return pd.concat(parts, axis=1), suggested, fixes


def _planted_vectors(
    planted: pd.DataFrame,
    vectors: np.ndarray,
    embed: EmbedBoxes | None,
    rng: np.random.Generator,
    budget: int,
    reduce: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors for a corrupted copy, and which rows to keep (moved/new boxes beyond the crop budget go)."""
    source = planted["source_row"].to_numpy()
    kind = planted["planted"].to_numpy()
    out = np.full((len(planted), vectors.shape[1]), np.nan, dtype=np.float32)
    reuse = (source >= 0) & np.isin(kind, ["clean", "class"])
    out[reuse] = vectors[source[reuse]]
    keep = np.ones(len(planted), bool)
    # New boxes get their own crops: a duplicate reusing its source's vector exactly would teach the
    # classifier that duplicates have a twin at similarity 1.0, which real double clicks do not.
    fresh = np.flatnonzero(np.isin(kind, ["location", "spurious", "duplicate"]))
    if embed is None:
        keep[fresh] = False
        return out, keep
    if fresh.size > budget:
        chosen = np.sort(rng.choice(fresh, budget, replace=False))
        keep[np.setdiff1d(fresh, chosen)] = False
        fresh = chosen
    if fresh.size:
        out[fresh] = reduce(embed(planted["image_id"].to_numpy()[fresh], planted[BOX].to_numpy(float)[fresh]))
    return out, keep


def _classifier(seed: int, binary: bool = False):
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Leaves of at least 30 rows and a firmer L2: on small datasets (fruits_nuts, 18 images) a fold
    # model otherwise learned corners that hid a swap it had every evidence for (see BENCHMARKS).
    return HistGradientBoostingClassifier(
        max_iter=60,
        learning_rate=0.15,
        max_leaf_nodes=15,
        min_samples_leaf=30,
        l2_regularization=5.0,
        early_stopping=False,
        random_state=seed,
    )


def _image_folds(image_ids: np.ndarray, seed: int) -> dict[int, int]:
    unique = np.unique(image_ids)
    order = np.random.default_rng(seed).permutation(unique.size)
    folds = min(FOLDS, max(2, unique.size))
    return {int(unique[i]): int(rank % folds) for rank, i in enumerate(order)}


def _out_of_fold(
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    train_images: np.ndarray,
    real_x: pd.DataFrame,
    real_images: np.ndarray,
    classes: list[int],
    fold_of: dict[int, int],
    seed: int,
    binary: bool = False,
) -> np.ndarray:
    """Probabilities (rows × classes) for the real rows, each from a model that never saw its image."""
    out = np.zeros((len(real_x), len(classes)))
    out[:, 0] = 1.0
    train_fold = np.array([fold_of.get(int(i), -1) for i in train_images])
    real_fold = np.array([fold_of.get(int(i), -1) for i in real_images])
    for fold in sorted(set(fold_of.values())):
        rows = np.flatnonzero(real_fold == fold)
        if not rows.size:
            continue
        train = train_fold != fold
        present = np.unique(train_y[train])
        if present.size < 2:
            continue
        with threadpool_limits(1):  # OpenMP threads cost 5-10x on small fits on a busy 2-core machine
            model = _classifier(seed + fold, binary).fit(train_x[train], train_y[train])
        column = [classes.index(c) for c in model.classes_]
        out[rows] = 0.0
        with threadpool_limits(1):
            out[np.ix_(rows, column)] = model.predict_proba(real_x.iloc[rows])
    return out


def _candidates_target(predictions: pd.DataFrame, dropped: pd.DataFrame) -> np.ndarray:
    """1 for predictions that overlap a dropped label (IoU ≥ ``DROP_MATCH_IOU``): overlooked objects."""
    target = np.zeros(len(predictions), np.int64)
    if not len(dropped):
        return target
    merged = (
        predictions[["image_id", *BOX]]
        .reset_index()
        .merge(dropped[["image_id", *BOX]], on="image_id", suffixes=("", "_d"))
    )
    if len(merged):
        iou = box_iou(merged[BOX].to_numpy(float), merged[[f"{b}_d" for b in BOX]].to_numpy(float))
        target[merged["index"].to_numpy()[iou >= DROP_MATCH_IOU]] = 1
    return target


def find_label_issues(
    labels: pd.DataFrame,
    images: pd.DataFrame,
    *,
    vectors: np.ndarray | None = None,
    embed: EmbedBoxes | None = None,
    predictions: pd.DataFrame | None = None,
    seed: int = 0,
) -> LabelErrorResult:
    """Score every label and every image of one dataset.

    ``labels``: image_id, object_id, category_id, bbox_x/y/w/h, iscrowd (one row per label);
    ``images``: image_id, width, height; ``vectors``: crop embeddings aligned with ``labels`` (NaN
    rows where an image could not be read) or None; ``embed``: embeds new boxes (needed to plant
    location/spurious errors when ``vectors`` is given); ``predictions``: prediction_id, image_id,
    category_id, score, bbox_x/y/w/h, or None. Deterministic for a given ``seed``.
    """
    started = time.perf_counter()
    labels = labels[LABEL_COLUMNS].reset_index(drop=True)
    images = images[["image_id", "width", "height"]].reset_index(drop=True)
    if predictions is not None:
        predictions = predictions.reset_index(drop=True)
    reduce: Callable[[np.ndarray], np.ndarray] = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
    if vectors is not None:
        vectors, reduce = reduced_embeddings(np.asarray(vectors, dtype=np.float32), seed)
    rng = np.random.default_rng(seed)
    real_x, suggested_class, fixes = _features(labels, images, vectors, predictions, seed)
    copies = copies_needed(len(labels))
    train_x, train_y, train_images, train_source = [], [], [], []
    cand_x, cand_y, cand_images = [], [], []
    planted_counts = dict.fromkeys([*ERROR_KINDS, "drop"], 0)
    for copy in range(copies):
        planted = plant_errors(labels, images, seed=seed * 1000 + copy + 1)
        frame = planted.labels
        keep = np.ones(len(frame), bool)
        copy_vectors = None
        if vectors is not None:
            copy_vectors, keep = _planted_vectors(
                frame, vectors, embed, rng, MAX_EMBEDDED_PLANTS // copies, reduce
            )
        x, _, _ = _features(frame, images, copy_vectors, predictions, seed)
        kinds = frame["planted"].to_numpy()
        train_x.append(x[keep])
        train_y.append(np.array([KINDS.index(k) for k in kinds[keep]]))
        train_images.append(frame["image_id"].to_numpy()[keep])
        train_source.append(frame["source_row"].to_numpy()[keep])
        for kind in ERROR_KINDS:
            planted_counts[kind] += int((kinds[keep] == kind).sum())
        planted_counts["drop"] += len(planted.dropped)
        if predictions is not None and len(predictions):
            cand_x.append(candidate_features(frame, predictions, images))
            cand_y.append(_candidates_target(predictions, planted.dropped))
            cand_images.append(predictions["image_id"].to_numpy())
    fold_of = _image_folds(
        np.concatenate([images["image_id"].to_numpy(), labels["image_id"].to_numpy()]), seed
    )
    probs = np.zeros((len(labels), len(KINDS)))
    probs[:, 0] = 1.0
    if len(labels):
        all_x, all_y = pd.concat(train_x, ignore_index=True), np.concatenate(train_y)
        all_images, all_source = np.concatenate(train_images), np.concatenate(train_source)
        # Is it wrong? Out of fold, one binary model per fold (a tree per boosting round, not one per kind).
        wrong = _out_of_fold(
            all_x, (all_y > 0).astype(np.int64), all_images, real_x,
            labels["image_id"].to_numpy(), [0, 1], fold_of, seed, binary=True,
        )[:, 1]  # fmt: skip
        # The copies carry the dataset's own errors as "clean" rows, as many as the planted ones: a
        # second round leaves out copies of the labels the first round found suspicious.
        suspicious = np.flatnonzero(wrong >= SUSPICIOUS)
        kept = ~((all_y == 0) & np.isin(all_source, suspicious))
        if suspicious.size and kept.sum() < len(kept):
            wrong = _out_of_fold(
                all_x[kept], (all_y[kept] > 0).astype(np.int64), all_images[kept], real_x,
                labels["image_id"].to_numpy(), [0, 1], fold_of, seed, binary=True,
            )[:, 1]  # fmt: skip
        # Which kind, if wrong? One model on the planted errors only: real labels never train it.
        probs = np.zeros((len(labels), len(KINDS)))
        probs[:, 0] = 1.0 - wrong
        errors = all_y > 0
        if np.unique(all_y[errors]).size >= 2:
            with threadpool_limits(1):
                kind_model = _classifier(seed).set_params(
                    class_weight="balanced"
                )  # kinds planted at unequal rates
                kind_model.fit(all_x[errors], all_y[errors])
                given = kind_model.predict_proba(real_x)
            probs[:, kind_model.classes_] = given * wrong[:, None]
        elif errors.any():
            probs[:, int(all_y[errors][0])] = wrong
    objects = _object_table(labels, probs, real_x, suggested_class, fixes, predictions)
    candidates, image_scores = _missing_labels(
        labels, images, predictions, cand_x, cand_y, cand_images, fold_of, seed
    )
    info = {
        "copies": copies,
        "planted": planted_counts,
        "evidence": [
            name
            for name, present in (
                ("geometry", True),
                ("embeddings", vectors is not None),
                ("predictions", predictions is not None),
            )
            if present
        ],
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return LabelErrorResult(objects=objects, candidates=candidates, images=image_scores, info=info)


def _object_table(
    labels: pd.DataFrame,
    probs: np.ndarray,
    features: pd.DataFrame,
    suggested_class: np.ndarray,
    fixes: pd.DataFrame | None,
    predictions: pd.DataFrame | None,
) -> pd.DataFrame:
    issue = np.clip(1.0 - probs[:, 0], 0.0, 1.0)
    kind_index = probs[:, 1:].argmax(axis=1) + 1 if len(probs) else np.zeros(0, np.int64)
    kind = np.array(KINDS, dtype=object)[kind_index] if len(probs) else np.array([], dtype=object)
    out = labels[["image_id", "object_id", "category_id", *BOX]].copy()
    out["label_issue"] = issue
    out["label_issue_kind"] = kind
    for i, name in enumerate(KINDS[1:], start=1):
        out[f"p_{name}"] = probs[:, i]
    suggested_category = np.where(kind == "class", suggested_class, out["category_id"].to_numpy())
    box = np.full((len(out), 4), np.nan)
    if fixes is not None and predictions is not None and len(predictions):
        pred_cat = predictions["category_id"].to_numpy()
        pred_box = predictions[BOX].to_numpy(float)
        class_pred = fixes["class_prediction"].to_numpy()
        from_model = (kind == "class") & (class_pred >= 0)
        suggested_category = np.where(from_model, pred_cat[np.maximum(class_pred, 0)], suggested_category)
        box_pred = fixes["box_prediction"].to_numpy()
        moved = (kind == "location") & (box_pred >= 0)
        box[moved] = pred_box[box_pred[moved]]
    fix = np.array([FIXES.get(k, "") for k in kind], dtype=object)
    fix[(kind == "location") & ~np.isfinite(box[:, 0])] = "review"
    fix[(kind == "class") & (suggested_category == out["category_id"].to_numpy())] = "review"
    out["suggested_category_id"] = suggested_category.astype(np.int64) if len(out) else np.zeros(0, np.int64)
    for i, name in enumerate(["suggested_x", "suggested_y", "suggested_w", "suggested_h"]):
        out[name] = box[:, i]
    out["fix"] = fix
    for column in EVIDENCE_COLUMNS:
        out[column] = features[column].to_numpy() if column in features.columns else np.nan
    return out


# Feature columns kept beside each finding so the app can say why (see evidence_text).
EVIDENCE_COLUMNS = (
    "e_knn_same_share",
    "e_p_given",
    "e_p_other",
    "m_same_iou",
    "m_same_iou_score",
    "m_other_strong_score",
    "m_any_near_score",
    "g_dup_iou",
    "g_log_area_vs_class",
)


def _missing_labels(
    labels: pd.DataFrame,
    images: pd.DataFrame,
    predictions: pd.DataFrame | None,
    cand_x: list[pd.DataFrame],
    cand_y: list[np.ndarray],
    cand_images: list[np.ndarray],
    fold_of: dict[int, int],
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = ["image_id", "prediction_id", "category_id", *BOX, "score", "missing_probability"]
    if predictions is None:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        return empty, pd.DataFrame({"image_id": images["image_id"].to_numpy(), "missing_label": np.nan})
    probability = np.zeros(len(predictions))
    if len(predictions) and cand_x:
        real = candidate_features(labels, predictions, images)
        probs = _out_of_fold(
            pd.concat(cand_x, ignore_index=True),
            np.concatenate(cand_y),
            np.concatenate(cand_images),
            real,
            predictions["image_id"].to_numpy(),
            [0, 1],
            fold_of,
            seed,
            binary=True,
        )
        probability = probs[:, 1]
    table = predictions[["image_id", "prediction_id", "category_id", *BOX, "score"]].copy()
    table["missing_probability"] = probability
    per_image = table.groupby("image_id")["missing_probability"].max()
    image_scores = pd.DataFrame(
        {
            "image_id": images["image_id"].to_numpy(),
            "missing_label": per_image.reindex(images["image_id"]).fillna(0.0).to_numpy(),
        }
    )
    candidates = table[table["missing_probability"] >= CANDIDATE_MIN]
    candidates = candidates.sort_values("missing_probability", ascending=False, kind="stable")
    return candidates.reset_index(drop=True), image_scores


def evidence_text(row: Any, class_names: dict[int, str] | None = None) -> str:
    """One line saying why a label was flagged, from the evidence columns of its finding."""
    names = class_names or {}
    parts = []

    def has(name: str) -> bool:
        value = getattr(row, name, None)
        return value is not None and not (isinstance(value, float) and math.isnan(value))

    if has("m_same_iou") and row.m_same_iou > 0:
        parts.append(
            f"best same-class prediction IoU {row.m_same_iou:.2f} (score {row.m_same_iou_score:.2f})"
        )
    elif has("m_same_iou"):
        parts.append("no prediction of its class overlaps it")
    if has("m_other_strong_score") and row.m_other_strong_score > 0:
        other = ""
        if getattr(row, "label_issue_kind", "") == "class":
            name = getattr(row, "suggested_category", None) or names.get(int(row.suggested_category_id))
            other = f" ({name})" if name else ""
        parts.append(f"a prediction of another class{other} covers it (score {row.m_other_strong_score:.2f})")
    if has("e_knn_same_share"):
        parts.append(f"{row.e_knn_same_share * 10:.0f}/10 look-alikes share its class")
    if has("e_p_given"):
        parts.append(f"P(its class) {row.e_p_given:.2f}")
    if has("g_dup_iou") and row.g_dup_iou >= 0.5:
        parts.append(f"overlaps a same-class label at IoU {row.g_dup_iou:.2f}")
    if has("g_log_area_vs_class") and abs(row.g_log_area_vs_class) > 1.0:
        parts.append(f"{math.exp(row.g_log_area_vs_class):.1f}× its class's typical area")
    return "; ".join(parts)
