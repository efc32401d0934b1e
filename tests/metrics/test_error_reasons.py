"""Every false positive and false negative gets the reason its geometry implies."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrics.error_reasons import (
    FN_REASONS,
    FP_REASONS,
    false_negative_reasons,
    false_positive_reasons,
    reason_counts,
)
from metrics.matching import match
from tests.metrics.coco_reference import ours
from tests.metrics.generated_predictions import generate_predictions, load_coco, renumber_ids


def _boxes(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for name in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"):
        frame[name] = frame[name].astype(float)
    return frame


def hand_made():
    gt = _boxes(
        [
            (1, 10, 1, 0, 0, 100, 100, 0),
            (1, 11, 2, 200, 0, 100, 100, 0),
            (1, 12, 1, 400, 0, 100, 100, 0),
            (1, 13, 2, 600, 0, 100, 100, 0),
            (1, 14, 1, 800, 0, 100, 100, 0),
            (1, 15, 1, 0, 300, 300, 300, 1),
        ],
        ["image_id", "object_id", "category_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "iscrowd"],
    )
    gt["area"] = gt["bbox_w"] * gt["bbox_h"]
    preds = _boxes(
        [
            (1, 1, 1, 0.9, 0, 0, 100, 100),
            (2, 1, 1, 0.8, 2, 0, 100, 100),
            (3, 1, 1, 0.7, 200, 0, 100, 100),
            (4, 1, 2, 0.6, 1000, 1000, 50, 50),
            (5, 1, 1, 0.5, 450, 0, 100, 100),
            (6, 1, 1, 0.4, 600, 0, 100, 100),
            (7, 1, 2, 0.35, 860, 0, 100, 100),
            (8, 1, 1, 0.3, 50, 350, 50, 50),
        ],
        ["prediction_id", "image_id", "category_id", "score", "bbox_x", "bbox_y", "bbox_w", "bbox_h"],
    )
    return match(gt, preds, "bbox")


def test_false_positive_reasons_hand_made() -> None:
    fp = false_positive_reasons(hand_made(), 0.5).set_index("prediction_id")
    assert fp["outcome"].tolist() == ["tp", "fp", "fp", "fp", "fp", "fp", "fp", "ignored"]
    assert fp["reason"].tolist() == [
        "",
        "duplicate",
        "class_confusion",
        "background",
        "localisation",
        "class_confusion",
        "class_and_localisation",
        "",
    ]
    assert fp.loc[2, "duplicate_of_prediction_id"] == 1 and fp.loc[2, "related_object_id"] == 10
    assert fp.loc[3, "related_object_id"] == 11 and fp.loc[3, "related_category_id"] == 2
    assert fp.loc[5, "related_object_id"] == 12
    assert abs(fp.loc[5, "related_iou"] - 5000 / 15000) < 1e-12
    assert fp.loc[7, "related_object_id"] == 14 and abs(fp.loc[7, "related_iou"] - 0.25) < 1e-12
    assert fp.loc[4, "related_object_id"] == -1


def test_false_negative_reasons_hand_made() -> None:
    fn = false_negative_reasons(hand_made(), 0.5).set_index("object_id")
    assert fn["outcome"].tolist() == ["found", "missed", "missed", "missed", "missed", "ignored"]
    assert fn["reason"].tolist() == ["", "misclassified", "mislocalised", "misclassified", "missed", ""]
    assert fn.loc[11, "related_prediction_id"] == 3 and fn.loc[11, "related_category_id"] == 1
    assert fn.loc[12, "related_prediction_id"] == 5
    assert fn.loc[14, "related_prediction_id"] == -1


def test_score_threshold_and_stricter_iou_change_outcomes() -> None:
    result = hand_made()
    strict = false_positive_reasons(result, 0.95).set_index("prediction_id")
    assert strict.loc[2, "reason"] == "duplicate"  # IoU 0.96 with the taken object
    high = false_negative_reasons(result, 0.5, score_threshold=0.95).set_index("object_id")
    assert high.loc[10, "outcome"] == "missed" and high.loc[10, "reason"] == "missed"
    shifted = false_positive_reasons(result, 0.5, score_threshold=0.65)
    assert (shifted["outcome"] == "not_evaluated").sum() == 5


def test_every_error_on_real_data_has_a_reason() -> None:
    gt = renumber_ids(load_coco("blood_cells"))
    result, _ = ours(gt, generate_predictions(gt, seed=3), "bbox")
    fp = false_positive_reasons(result, 0.5)
    fn = false_negative_reasons(result, 0.5)
    t = result.threshold_index(0.5)
    assert (fp["outcome"] == "fp").sum() == result.fp()[:, t].sum()
    assert (fp.loc[fp["outcome"] == "fp", "reason"] != "").all()
    assert (fn.loc[fn["outcome"] == "missed", "reason"] != "").all()
    counts_fp, counts_fn = reason_counts(fp), reason_counts(fn)
    assert counts_fp.index.tolist() == list(FP_REASONS) and counts_fn.index.tolist() == list(FN_REASONS)
    assert counts_fp.sum() == (fp["outcome"] == "fp").sum()
    assert (counts_fp > 0).all()  # the generator plants every kind of mistake
    assert counts_fn["misclassified"] > 0 and counts_fn["missed"] > 0
    # Duplicates point at a prediction that did match the object they overlap.
    dup = fp[fp["reason"] == "duplicate"]
    taker = fp.set_index("prediction_id").loc[dup["duplicate_of_prediction_id"]]
    assert (taker["outcome"] == "tp").all()
    assert (np.asarray(dup["related_iou"]) >= 0.5).all()
