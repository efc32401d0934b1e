"""Planted label errors on blood_cells must rank at the top of the label-error candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrics.matching import match, objects_from_coco
from metrics.prediction_label_errors import KINDS, find_label_errors, object_scores
from tests.metrics.generated_predictions import load_coco, renumber_ids


def planted(seed: int = 0) -> dict:
    """Predictions made from the original labels; labels then corrupted (drop / swap / shift)."""
    rng = np.random.default_rng(seed)
    original = objects_from_coco(renumber_ids(load_coco("blood_cells")))
    n = len(original)
    w, h = original["bbox_w"].to_numpy(), original["bbox_h"].to_numpy()
    found = rng.random(n) < 0.97  # the model misses a few objects
    noise = rng.normal(0, 0.03, (n, 4))
    predictions = pd.DataFrame(
        {
            "prediction_id": np.arange(1, n + 1),
            "image_id": original["image_id"],
            "category_id": original["category_id"],
            "score": rng.uniform(0.6, 1.0, n),
            "bbox_x": original["bbox_x"] + noise[:, 0] * w,
            "bbox_y": original["bbox_y"] + noise[:, 1] * h,
            "bbox_w": w * (1 + noise[:, 2]),
            "bbox_h": h * (1 + noise[:, 3]),
        }
    )[found]
    # Low-confidence noise must not accuse anything.
    noise_preds = predictions.sample(frac=0.3, random_state=seed).assign(
        prediction_id=lambda f: f["prediction_id"] + n, score=lambda f: rng.uniform(0.05, 0.45, len(f))
    )
    noise_preds["bbox_x"] += noise_preds["bbox_w"] * 0.7
    predictions = pd.concat([predictions, noise_preds], ignore_index=True)

    labels = original.copy()
    kind = rng.choice(["drop", "swap", "shift", "clean"], size=n, p=[0.1, 0.05, 0.05, 0.8])
    swap = kind == "swap"
    labels.loc[swap, "category_id"] = 3 - labels.loc[swap, "category_id"]  # rbc (1) <-> wbc (2)
    shift = kind == "shift"
    labels.loc[shift, "bbox_x"] += labels.loc[shift, "bbox_w"] * rng.choice([-0.55, 0.55], shift.sum())
    labels.loc[shift, "bbox_y"] += labels.loc[shift, "bbox_h"] * rng.uniform(-0.2, 0.2, shift.sum())
    keep = kind != "drop"
    return {
        "labels": labels[keep].reset_index(drop=True),
        "kind": kind[keep],
        "predictions": predictions,
        "dropped_prediction_ids": set(np.flatnonzero((kind == "drop") & found) + 1),
    }


def _precision_at_k(hits: np.ndarray, k: int) -> float:
    return float(np.mean(hits[:k]))


def test_planted_errors_rank_at_the_top() -> None:
    from sklearn.metrics import roc_auc_score

    case = planted()
    candidates = find_label_errors(case["labels"], case["predictions"])
    assert set(candidates["kind"]) == set(KINDS)
    assert candidates["score"].between(0, 1).all() and candidates["score"].is_monotonic_decreasing

    overlooked = candidates[candidates["kind"] == "overlooked"]
    hits = overlooked["prediction_id"].isin(case["dropped_prediction_ids"]).to_numpy()
    k = len(case["dropped_prediction_ids"])
    overlooked_precision = _precision_at_k(hits, k)
    overlooked_recall = hits.sum() / k

    scores = object_scores(candidates, case["labels"])
    corrupted = np.isin(case["kind"], ["swap", "shift"])
    auroc = roc_auc_score(corrupted, scores)
    top = np.argsort(-scores, kind="stable")[: corrupted.sum()]
    object_precision = float(np.mean(corrupted[top]))
    swapped = candidates[candidates["kind"] == "swapped"]
    swap_ids = set(case["labels"]["object_id"][case["kind"] == "swap"])
    swap_precision = float(swapped["object_id"].isin(swap_ids).mean())
    print(
        f"overlooked precision@{k}={overlooked_precision:.3f} recall={overlooked_recall:.3f}; "
        f"swap/shift AUROC={auroc:.3f} precision@{corrupted.sum()}={object_precision:.3f}; "
        f"swapped-candidate precision={swap_precision:.3f}"
    )
    assert overlooked_precision > 0.9
    assert overlooked_recall > 0.8
    assert auroc > 0.9
    assert object_precision > 0.8
    assert swap_precision > 0.9


def test_hand_made_kinds_and_crowd() -> None:
    labels = pd.DataFrame(
        {
            "image_id": [1, 1, 1, 1],
            "object_id": [1, 2, 3, 4],
            "category_id": [1, 1, 1, 1],
            "bbox_x": [0.0, 200.0, 400.0, 600.0],
            "bbox_y": [0.0] * 4,
            "bbox_w": [100.0, 100.0, 100.0, 300.0],
            "bbox_h": [100.0] * 4,
            "area": [1e4, 1e4, 1e4, 3e4],
            "iscrowd": [0, 0, 0, 1],
        }
    )
    predictions = pd.DataFrame(
        {
            "prediction_id": [1, 2, 3, 4, 5, 6],
            "image_id": [1] * 6,
            "category_id": [1, 2, 1, 1, 1, 1],
            "score": [0.9, 0.8, 0.7, 0.95, 0.6, 0.3],
            "bbox_x": [0.0, 200.0, 460.0, 2000.0, 650.0, 3000.0],
            "bbox_y": [0.0] * 6,
            "bbox_w": [100.0] * 6,
            "bbox_h": [100.0] * 6,
        }
    )
    result = match(labels, predictions)
    candidates = find_label_errors(labels, predictions, pairs=result.pairs)
    rows = {(r.kind, r.object_id, r.prediction_id) for r in candidates.itertuples()}
    # 4: confident, touches nothing -> overlooked; 6: not confident; 5: inside a crowd region.
    assert rows == {("overlooked", -1, 4), ("swapped", 2, 2), ("badly_located", 3, 3)}
    assert candidates["kind"].tolist() == ["overlooked", "swapped", "badly_located"]
    badly = candidates.iloc[2]
    assert badly["iou"] == pytest.approx(4000 / 16000)
    assert badly["score"] == pytest.approx(0.7 * (1 - 0.25))
    assert candidates.iloc[1]["suggested_category_id"] == 2
    np.testing.assert_allclose(object_scores(candidates, labels), [0.0, 0.8, 0.525, 0.0])
