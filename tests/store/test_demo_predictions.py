"""Demo models: realistic quality, and the crowd labellers' skipped shapes found as overlooked labels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from store.demo_predictions import DEMO_MODELS, add_demo_model, check_replay, replay_scenes
from tests.pages.demo_project import demo_project


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_demo_project_has_models_of_realistic_quality() -> None:
    root = demo_project()
    stats = {}
    for model in DEMO_MODELS:
        meta = json.loads((root / "models" / model.name / "model.json").read_text())
        assert meta["dataset"] == model.dataset and meta["iou_types"] == ["bbox", "segm"]
        stats[model.name] = json.loads((root / "models" / model.name / "eval.json").read_text())["bbox"][
            "stats"
        ]
        assert 0.3 < stats[model.name]["AP"] < 0.95, (model.name, stats[model.name]["AP"])
    assert (
        stats["demo_model_small"]["AP"] < stats["demo_model"]["AP"] - 0.1
    )  # the weaker model is visibly weaker
    # the same model scores lower against the careless crowd labels than against the reviewed ones
    assert stats["demo_model_crowd"]["AP50"] < stats["demo_model"]["AP50"]


def test_planted_overlooked_shapes_rank_first_among_label_errors() -> None:
    root = demo_project()
    planted = [s for s in replay_scenes("demo_crowd") if not s.labelled]
    assert 3 <= len(planted) <= 12  # "a few"
    errors = pd.read_parquet(root / "models" / "demo_model_crowd" / "label_errors.parquet")
    errors = errors[errors["iou_type"] == "bbox"].sort_values("score", ascending=False, kind="stable")
    predictions = pd.read_parquet(root / "models" / "demo_model_crowd" / "predictions.parquet").set_index(
        "prediction_id"
    )
    overlooked = errors[errors["kind"] == "overlooked"].reset_index(drop=True)
    ranks = []
    for shape in planted:
        x0, y0 = shape.polygon.min(axis=0)
        x1, y1 = shape.polygon.max(axis=0)
        truth = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
        found = [
            rank
            for rank, row in overlooked.iterrows()
            if row["image_id"] == shape.image_id
            and _iou(
                truth, tuple(predictions.loc[row["prediction_id"], ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]])
            )
            > 0.8
        ]
        assert found, f"planted shape in image {shape.image_id} is not an overlooked candidate"
        ranks.append(found[0])
    assert sorted(ranks) == list(range(len(planted)))  # they are the top overlooked candidates
    top = errors.head(len(planted) + 5)
    assert (top["kind"] == "overlooked").sum() >= len(planted)  # and near the top of all candidates
    assert set(errors["kind"]) == {"overlooked", "swapped", "badly_located"}


def test_rebuilding_adds_nothing_and_a_changed_generator_is_caught() -> None:
    root = demo_project()
    assert add_demo_model(root) == []
    objects = pd.read_parquet(root / "datasets" / "demo_crowd" / "objects.parquet", columns=["image_id"])
    shapes = replay_scenes("demo_crowd")
    check_replay(shapes, objects)
    with pytest.raises(RuntimeError, match="no longer replay"):
        check_replay(shapes, objects[objects["image_id"] != int(np.median(objects["image_id"]))])
