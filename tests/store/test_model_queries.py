"""SQL behind the model pages, checked against what the predictions import stored."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from store import model_queries as mq
from store.queries import ProjectReader
from tests.pages.demo_project import demo_project

MODEL = "demo_model_crowd"


@pytest.fixture(scope="module")
def reader() -> ProjectReader:
    return ProjectReader(demo_project())


def _eval(reader: ProjectReader) -> dict:
    return json.loads((reader.project.model_dir(MODEL) / "eval.json").read_text())["bbox"]


def test_class_outcomes_at_50_equal_the_evaluation(reader: ProjectReader) -> None:
    outcomes = mq.class_outcomes(reader, MODEL, "bbox", "50").set_index("category_id")
    for row in _eval(reader)["per_class"]:
        got = outcomes.loc[row["category_id"]]
        assert (got["tp"], got["fp"], got["fn"]) == (row["tp_50"], row["fp_50"], row["fn_50"])


def test_stricter_thresholds_trade_tp_for_fp_and_fn(reader: ProjectReader) -> None:
    labels = reader.scalar(
        "SELECT count(*) FROM gt_matches WHERE model = ? AND iou_type = 'bbox' AND NOT ignored", [MODEL]
    )
    counted = reader.scalar(
        "SELECT count(*) FROM prediction_matches WHERE model = ? AND iou_type = 'bbox' AND evaluated", [MODEL]
    )
    previous = None
    for tag in mq.THRESHOLD_TAGS:
        total = mq.class_outcomes(reader, MODEL, "bbox", tag)[["tp", "fp", "fn"]].sum()
        assert total["tp"] + total["fn"] == labels and total["tp"] + total["fp"] == counted
        fp_reasons = mq.reason_counts(reader, MODEL, "bbox", tag, "fp")
        fn_reasons = mq.reason_counts(reader, MODEL, "bbox", tag, "fn")
        assert fp_reasons["count"].sum() == total["fp"] and fn_reasons["count"].sum() == total["fn"]
        assert list(fp_reasons["reason"]) == list(mq.FP_REASONS)
        if previous is not None:
            assert total["tp"] <= previous["tp"]
        previous = total
    assert previous["tp"] < mq.class_outcomes(reader, MODEL, "bbox", "50")["tp"].sum()


def test_threshold_tag_is_checked_before_it_reaches_sql(reader: ProjectReader) -> None:
    with pytest.raises(ValueError):
        mq.class_outcomes(reader, MODEL, "bbox", "50 FROM images; --")


def test_prediction_frame_takes_object_metrics_from_the_matched_or_related_label(
    reader: ProjectReader,
) -> None:
    frame = mq.prediction_frame(reader, MODEL, "bbox", "50")
    matches = reader.df(
        "SELECT prediction_id, tp_50, reason_50, matched_object_id_50, related_object_id_50 FROM prediction_matches"
        " WHERE model = ? AND iou_type = 'bbox' AND evaluated",
        [MODEL],
    ).set_index("prediction_id")
    assert len(frame) == len(matches) and frame["tp"].sum() == matches["tp_50"].sum()
    areas = reader.df(
        "SELECT image_id, object_id, value FROM metric_values WHERE dataset = 'demo_crowd' AND metric = 'object_area'"
    ).set_index(["image_id", "object_id"])["value"]
    tp = frame[frame["tp"] == 1].iloc[0]
    assert tp["object_id"] == matches.loc[tp["prediction_id"], "matched_object_id_50"]
    assert tp["object:object_area"] == areas.loc[(tp["image_id"], tp["object_id"])]
    confusion = frame[frame["prediction_id"].map(matches["reason_50"]) == "class_confusion"].iloc[0]
    assert confusion["object_id"] == matches.loc[confusion["prediction_id"], "related_object_id_50"]
    background = frame[frame["prediction_id"].map(matches["reason_50"]) == "background"]
    assert len(background) and background["object:object_area"].isna().all()
    assert background["image:brightness"].notna().all()  # image metrics always come from the image
    assert ((frame["iou_tp"] > 0.5) == (frame["tp"] == 1)).all()


def test_object_frame_counts_misses(reader: ProjectReader) -> None:
    frame = mq.object_frame(reader, MODEL, "bbox", "75")
    fn = mq.class_outcomes(reader, MODEL, "bbox", "75")["fn"].sum()
    assert frame["missed"].sum() == fn and frame["object:object_area"].notna().all()


def test_gallery_pages_filters_and_sorts(reader: ProjectReader) -> None:
    totals = mq.class_outcomes(reader, MODEL, "bbox", "50").sum()
    for outcome, key in (("tp", "tp"), ("fp", "fp"), ("fn", "fn")):
        _, total = mq.gallery(reader, MODEL, "bbox", "50", outcome, limit=1)
        assert total == totals[key]
    first, total = mq.gallery(
        reader, MODEL, "bbox", "50", "tp", sort="object_area", descending=True, limit=10
    )
    second, _ = mq.gallery(
        reader, MODEL, "bbox", "50", "tp", sort="object_area", descending=True, limit=10, offset=10
    )
    values = pd.concat([first, second])["sort_value"].tolist()
    assert (
        values == sorted(values, reverse=True)
        and len(set(first["prediction_id"]) & set(second["prediction_id"])) == 0
    )
    confusions, n = mq.gallery(reader, MODEL, "bbox", "50", "fp", reasons=["class_confusion"], limit=100)
    assert n == len(confusions) > 0 and set(confusions["reason"]) == {"class_confusion"}
    assert (confusions["related_category"] != confusions["category"]).all() and (
        confusions["iou"] >= 0.5
    ).all()
    circles, n = mq.gallery(reader, MODEL, "bbox", "50", "fn", categories=[1], sort="brightness", limit=100)
    assert set(circles["category_id"]) == {1} and set(circles["reason"]) <= set(mq.FN_REASONS)
    assert circles["o_w"].notna().all()  # the missed label's box, for drawing
    empty, n = mq.gallery(reader, MODEL, "bbox", "50", "fp", categories=[99], limit=5)
    assert empty.empty and n == 0


def test_label_errors_best_first_with_boxes(reader: ProjectReader) -> None:
    errors, total = mq.label_errors(reader, MODEL, "bbox", limit=500)
    assert total == len(errors) > 0 and errors["score"].is_monotonic_decreasing
    overlooked, n = mq.label_errors(reader, MODEL, "bbox", ["overlooked"], limit=500)
    assert set(overlooked["kind"]) == {"overlooked"} and overlooked["object_id"].isna().all()
    assert overlooked["p_w"].notna().all() and n < total
    swapped, _ = mq.label_errors(reader, MODEL, "bbox", ["swapped"], limit=500)
    assert (swapped["suggested_category"] != swapped["category"]).all() and swapped["o_w"].notna().all()
