"""The learned label-error ranking on a generated scene set: planting, features, scores, kinds, fixes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from metrics.label_error_planting import BOX, PLANT_RATES, SHIFT_IOU, box_iou, plant_errors
from metrics.label_errors import evidence_text, find_label_issues

SIZE = 200
CLASS_SIDE = {1: 20.0, 2: 45.0}  # two classes of clearly different sizes, as in blood cells
DIM = 16


def _scene(seed: int = 0, n_images: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    for image_id in range(n_images):
        for slot in range(6):
            category = 1 if slot < 4 else 2
            side = CLASS_SIDE[category] * rng.uniform(0.85, 1.15)
            col, row = slot % 3, slot // 3
            x = col * 65 + rng.uniform(2, 60 - side * 0.9)
            y = row * 100 + rng.uniform(2, 95 - side)
            rows.append((image_id, len(rows) + 1, category, x, y, side, side, 0))
    labels = pd.DataFrame(rows, columns=["image_id", "object_id", "category_id", *BOX, "iscrowd"])
    images = pd.DataFrame({"image_id": np.arange(n_images), "width": SIZE, "height": SIZE})
    return labels, images


def _detector(clean: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Jittered copies of the clean boxes, scores following IoU; 10 % missed."""
    rng = np.random.default_rng(seed)
    keep = clean[rng.random(len(clean)) > 0.1].reset_index(drop=True)
    boxes = keep[BOX].to_numpy(float)
    noise = rng.normal(0, 0.08, boxes.shape) * np.c_[boxes[:, 2:], boxes[:, 2:]]
    moved = boxes + noise
    iou = box_iou(boxes, moved)
    score = 1 / (1 + np.exp(-(12 * (iou - 0.4) + rng.normal(0, 0.5, len(iou)))))
    out = keep[["image_id", "category_id"]].copy()
    out[BOX] = moved
    out["score"] = np.clip(score, 0.01, 0.999)
    out["prediction_id"] = np.arange(len(out))
    return out


class _Pictures:
    """Crop 'embeddings': a class direction when the box covers an object, background otherwise."""

    def __init__(self, clean: pd.DataFrame, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.clean = clean
        self.centres = {c: rng.normal(size=DIM) * 3 for c in CLASS_SIDE}
        self.rng = rng

    def __call__(self, image_ids: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        out = self.rng.normal(size=(len(boxes), DIM))
        for i, (image_id, box) in enumerate(zip(image_ids, boxes, strict=True)):
            objects = self.clean[self.clean["image_id"] == image_id]
            if not len(objects):
                continue
            overlap = box_iou(np.repeat(box[None], len(objects), 0), objects[BOX].to_numpy(float))
            best = int(overlap.argmax())
            out[i] += self.centres[int(objects["category_id"].iloc[best])] * overlap[best]
        return out.astype(np.float32)


@pytest.fixture(scope="module")
def planted_scene():
    clean, images = _scene()
    truth = plant_errors(clean, images, seed=99)
    labels = truth.labels
    pictures = _Pictures(clean)
    vectors = pictures(labels["image_id"].to_numpy(), labels[BOX].to_numpy(float))
    predictions = _detector(clean, seed=1)
    result = find_label_issues(
        labels.drop(columns=["planted", "source_row"]),
        images,
        vectors=vectors,
        embed=pictures,
        predictions=predictions,
        seed=0,
    )
    return truth, result


def test_planting_keeps_the_input_and_plants_each_kind_as_asked():
    labels, images = _scene()
    before = labels.copy()
    planted = plant_errors(labels, images, seed=3)
    pd.testing.assert_frame_equal(labels, before)  # the user's table is never touched
    counts = planted.labels["planted"].value_counts()
    n = len(labels)
    for kind in ("class", "location", "duplicate", "spurious"):
        assert counts[kind] == round(PLANT_RATES[kind] * n), kind
    assert len(planted.dropped) == round(PLANT_RATES["drop"] * n)
    moved = planted.labels[planted.labels["planted"] == "location"]
    original = labels.iloc[moved["source_row"].to_numpy()]
    iou = box_iou(moved[BOX].to_numpy(float), original[BOX].to_numpy(float))
    assert iou.min() >= SHIFT_IOU[0] - 0.02 and iou.max() <= SHIFT_IOU[1] + 0.02
    swapped = planted.labels[planted.labels["planted"] == "class"]
    assert (
        swapped["category_id"].to_numpy() != labels.iloc[swapped["source_row"]]["category_id"].to_numpy()
    ).all()
    assert planted.labels["object_id"].is_unique
    again = plant_errors(labels, images, seed=3)
    pd.testing.assert_frame_equal(planted.labels, again.labels)


def _auroc(truth, result, kind: str) -> float:
    kinds = truth.labels.set_index("object_id")["planted"]
    objects = result.objects.set_index("object_id")
    planted = kinds.reindex(objects.index).to_numpy()
    chosen = (planted == kind) if kind != "any" else (planted != "clean")
    keep = chosen | (planted == "clean")
    return roc_auc_score(chosen[keep], objects["label_issue"].to_numpy()[keep])


@pytest.mark.parametrize(
    ("kind", "floor"),
    [("class", 0.97), ("location", 0.9), ("spurious", 0.95), ("duplicate", 0.95), ("any", 0.93)],
)
def test_each_planted_kind_ranks_above_clean_labels(planted_scene, kind, floor):
    truth, result = planted_scene
    assert _auroc(truth, result, kind) >= floor


def test_scores_are_bounded_and_kinds_and_fixes_follow_the_evidence(planted_scene):
    truth, result = planted_scene
    objects = result.objects
    assert objects["label_issue"].between(0, 1).all()
    assert set(objects["label_issue_kind"]) <= {"class", "location", "spurious", "duplicate"}
    planted = truth.labels.set_index("object_id")["planted"].reindex(objects["object_id"]).to_numpy()
    top = objects["label_issue"].to_numpy() >= 0.5
    # a box on nothing and a badly placed one share most evidence (no prediction fits either)
    for kind, share in (("class", 0.7), ("location", 0.7), ("spurious", 0.5)):
        hits = top & (planted == kind)
        assert (objects["label_issue_kind"].to_numpy()[hits] == kind).mean() >= share, kind
    relabel = objects[(objects["fix"] == "relabel")]
    assert (relabel["suggested_category_id"] != relabel["category_id"]).all()
    moved = objects[objects["fix"] == "replace_box"]
    assert moved[["suggested_x", "suggested_w"]].notna().all().all()
    assert set(objects.loc[objects["label_issue_kind"] == "spurious", "fix"]) <= {"delete"}
    row = objects.sort_values("label_issue").iloc[-1]
    assert evidence_text(row)


def test_missing_labels_rank_images_with_a_dropped_object_first(planted_scene):
    truth, result = planted_scene
    dropped_images = set(truth.dropped["image_id"])
    images = result.images
    target = images["image_id"].isin(dropped_images).to_numpy()
    assert roc_auc_score(target, images["missing_label"]) >= 0.85
    best = result.candidates.iloc[0]
    same_image = truth.dropped[truth.dropped["image_id"] == best["image_id"]]
    assert len(same_image)  # the top candidate sits where a label was dropped
    iou = box_iou(
        same_image[BOX].to_numpy(float), np.repeat(best[BOX].to_numpy(float)[None], len(same_image), 0)
    )
    assert iou.max() >= 0.5


def test_without_predictions_or_embeddings_geometry_still_scores():
    clean, images = _scene(seed=2)
    truth = plant_errors(clean, images, seed=5)
    result = find_label_issues(truth.labels.drop(columns=["planted", "source_row"]), images, seed=0)
    assert result.info["evidence"] == ["geometry"]
    assert result.images["missing_label"].isna().all()  # nothing proposes a box without a model
    assert _auroc(truth, result, "duplicate") >= 0.9


def test_same_seed_same_scores():
    clean, images = _scene(seed=4, n_images=30)
    labels = plant_errors(clean, images, seed=1).labels.drop(columns=["planted", "source_row"])
    predictions = _detector(clean, seed=2)
    first = find_label_issues(labels, images, predictions=predictions, seed=7)
    second = find_label_issues(labels, images, predictions=predictions, seed=7)
    np.testing.assert_array_equal(first.objects["label_issue"], second.objects["label_issue"])
