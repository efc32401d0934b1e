"""The 12 COCO stats must equal pycocotools and faster-coco-eval to 1e-9 on real data."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.evaluation import STAT_NAMES, confusion_matrix
from metrics.matching import match, objects_from_coco, predictions_from_results
from tests.metrics.coco_reference import faster_coco_eval_stats, ours, pycocotools_eval, stats_array
from tests.metrics.generated_predictions import (
    generate_predictions,
    load_coco,
    renumber_ids,
    with_crowd_regions,
)

CASES = [
    ("fruits_nuts", "bbox", False),
    ("fruits_nuts", "segm", False),
    ("fruits_nuts", "bbox", True),
    ("fruits_nuts", "segm", True),
    ("blood_cells", "bbox", False),
    ("blood_cells", "bbox", True),
]


def _dataset(name: str, crowd: bool) -> dict:
    gt = load_coco(name)
    if name == "blood_cells":
        gt = renumber_ids(gt)  # compare on ids from 1; the id-0 case has its own test
    return with_crowd_regions(gt) if crowd else gt


@pytest.mark.parametrize(("name", "iou_type", "crowd"), CASES)
def test_stats_equal_pycocotools_and_faster_coco_eval(name: str, iou_type: str, crowd: bool) -> None:
    gt = _dataset(name, crowd)
    results = generate_predictions(gt, seed=3, with_segm=iou_type == "segm")
    reference = pycocotools_eval(gt, results, iou_type)
    _, evaluation = ours(gt, results, iou_type)
    mine = stats_array(evaluation)
    np.testing.assert_allclose(mine, reference.stats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(mine, faster_coco_eval_stats(gt, results, iou_type), rtol=0, atol=1e-9)
    # The generated mistakes keep AP well inside (0, 1): a comparison of trivial values proves nothing.
    assert 0.1 < evaluation.stats["AP50"] < 0.9
    np.testing.assert_allclose(evaluation.precision, reference.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(evaluation.recall, reference.eval["recall"], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("name", "iou_type"), [("fruits_nuts", "segm"), ("blood_cells", "bbox")])
def test_per_detection_matches_equal_pycocotools_eval_imgs(name: str, iou_type: str) -> None:
    """Every evalImgs entry (dt/gt matches and ignore flags, all areas and thresholds) agrees."""
    gt = _dataset(name, crowd=True)
    results = generate_predictions(gt, seed=5, with_segm=iou_type == "segm")
    reference = pycocotools_eval(gt, results, iou_type)
    result, _ = ours(gt, results, iou_type)
    object_ids = result.gt["object_id"].to_numpy()
    pred_ids = result.predictions["prediction_id"].to_numpy()
    row_of_pred = {int(p): i for i, p in enumerate(pred_ids)}
    row_of_gt = {int(g): i for i, g in enumerate(object_ids)}
    n_areas = len(result.area_labels)
    n_images = len(reference.params.imgIds)
    checked = 0
    for k, _cat in enumerate(reference.params.catIds):
        for a in range(n_areas):
            for i in range(n_images):
                entry = reference.evalImgs[k * n_areas * n_images + a * n_images + i]
                if entry is None:
                    continue
                rows = [row_of_pred[d] for d in entry["dtIds"]]
                gt_rows = [row_of_gt[g] for g in entry["gtIds"]]
                mine = np.where(
                    result.pred_match[a][:, rows] >= 0, object_ids[result.pred_match[a][:, rows]], 0
                )
                np.testing.assert_array_equal(mine, entry["dtMatches"])
                np.testing.assert_array_equal(result.pred_ignored[a][:, rows], entry["dtIgnore"])
                mine_gt = np.where(
                    result.gt_match[a][:, gt_rows] >= 0, pred_ids[result.gt_match[a][:, gt_rows]], 0
                )
                np.testing.assert_array_equal(mine_gt, entry["gtMatches"])
                np.testing.assert_array_equal(result.gt_ignored[a][gt_rows], entry["gtIgnore"])
                checked += len(rows)
    assert checked > len(results)  # every detection checked in several area ranges


def test_annotation_id_zero_counts_as_found() -> None:
    """pycocotools reads a matched id 0 as 'unmatched'; we track rows, so id 0 is ordinary."""
    full = load_coco("blood_cells")
    assert min(a["id"] for a in full["annotations"]) == 0
    # The image holding id 0 and 29 others keep pycocotools' three runs short.
    zero_image = next(a["image_id"] for a in full["annotations"] if a["id"] == 0)
    keep = {zero_image} | {im["id"] for im in full["images"][:29]}
    original = {
        **full,
        "images": [im for im in full["images"] if im["id"] in keep],
        "annotations": [a for a in full["annotations"] if a["image_id"] in keep],
    }
    renumbered = renumber_ids(original)
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in original["annotations"]
    ]
    assert pycocotools_eval(renumbered, perfect, "bbox").stats[8] == 1.0
    quirk = pycocotools_eval(original, perfect, "bbox").stats
    assert quirk[8] < 1.0  # pycocotools misses the found object with id 0
    result, evaluation = ours(original, perfect, "bbox")
    assert evaluation.stats["AR100"] == 1.0
    assert evaluation.stats["AP"] == 1.0
    zero_row = int(np.flatnonzero(result.gt["object_id"].to_numpy() == 0)[0])
    assert (result.gt_match[0, :, zero_row] >= 0).all()

    results = generate_predictions(original, seed=3)
    _, on_original = ours(original, results, "bbox")
    reference = pycocotools_eval(renumbered, results, "bbox").stats
    np.testing.assert_allclose(stats_array(on_original), reference, rtol=0, atol=1e-9)


def test_per_class_and_pr_curve_agree_with_stats() -> None:
    gt = _dataset("fruits_nuts", crowd=False)
    results = generate_predictions(gt, seed=3)
    _, evaluation = ours(gt, results, "bbox")
    table = evaluation.per_class({1: "date", 2: "fig", 3: "hazelnut"})
    assert table["category"].tolist() == ["date", "fig", "hazelnut"]
    assert table["AP"].mean() == pytest.approx(evaluation.stats["AP"], abs=1e-12)
    assert table["AP50"].mean() == pytest.approx(evaluation.stats["AP50"], abs=1e-12)
    assert (table["tp_50"] + table["fn_50"] == table["objects"]).all()
    overall = evaluation.pr_curve(0.5)
    assert len(overall) == 101
    assert overall["precision"].mean() == pytest.approx(evaluation.stats["AP50"], abs=1e-12)
    per_class = evaluation.pr_curve(0.75, category_id=2)
    assert per_class["precision"].mean() == pytest.approx(table.loc[1, "AP75"], abs=1e-12)
    assert per_class["precision"].is_monotonic_decreasing


def test_confusion_matrix_rows_and_columns_add_up() -> None:
    gt = _dataset("blood_cells", crowd=True)
    results = generate_predictions(gt, seed=3)
    result, _ = ours(gt, results, "bbox")
    matrix = confusion_matrix(result, 0.5, category_names={0: "RBC-WBC", 1: "rbc", 2: "wbc"})
    t = result.threshold_index(0.5)
    g_cat = result.gt["category_id"].to_numpy()
    kept = ~result.gt_ignored[0]
    for cat, name in [(1, "rbc"), (2, "wbc")]:
        assert matrix.loc[name].sum() == np.count_nonzero(kept & (g_cat == cat))
    counted = result.pred_evaluated & ~result.pred_ignored[0, t]
    p_cat = result.predictions["category_id"].to_numpy()
    assert matrix["rbc"].sum() == np.count_nonzero(counted & (p_cat == 1))
    assert matrix.loc["rbc", "rbc"] == np.count_nonzero(result.tp()[:, t] & (p_cat == 1))
    assert matrix.loc["rbc", "wbc"] > 0 and matrix.loc["wbc", "rbc"] > 0  # generated wrong classes
    assert matrix.loc["background", "background"] == 0


def test_confusion_matrix_hand_made() -> None:
    import pandas as pd

    gt = pd.DataFrame(
        {
            "image_id": [1, 1, 1],
            "object_id": [10, 11, 12],
            "category_id": [1, 2, 1],
            "bbox_x": [0.0, 100.0, 300.0],
            "bbox_y": [0.0, 0.0, 0.0],
            "bbox_w": [50.0, 50.0, 50.0],
            "bbox_h": [50.0, 50.0, 50.0],
            "area": [2500.0] * 3,
            "iscrowd": [0, 0, 0],
        }
    )
    preds = pd.DataFrame(
        {
            "prediction_id": [1, 2, 3, 4],
            "image_id": [1, 1, 1, 1],
            "category_id": [1, 1, 2, 1],
            "score": [0.9, 0.8, 0.7, 0.2],
            "bbox_x": [0.0, 100.0, 600.0, 2.0],
            "bbox_y": [0.0, 0.0, 0.0, 0.0],
            "bbox_w": [50.0, 50.0, 50.0, 50.0],
            "bbox_h": [50.0, 50.0, 50.0, 50.0],
        }
    )
    result = match(gt, preds, "bbox")
    matrix = confusion_matrix(result, 0.5, category_names={1: "a", 2: "b"})
    expected = pd.DataFrame(
        [[1, 0, 1], [1, 0, 0], [1, 1, 0]], index=["a", "b", "background"], columns=["a", "b", "background"]
    )
    np.testing.assert_array_equal(matrix.to_numpy(), expected.to_numpy())
    # A score threshold drops the duplicate (0.2) from the background row.
    assert confusion_matrix(result, 0.5, score_threshold=0.5).iloc[2, 0] == 0


def test_objects_and_predictions_frames() -> None:
    gt = _dataset("fruits_nuts", crowd=False)
    results = generate_predictions(gt, seed=3)
    result, _ = ours(gt, results, "bbox")
    preds = result.predictions_frame()
    objects = result.objects_frame()
    assert {"tp_50", "matched_object_id_50", "tp_75", "best_iou"} <= set(preds.columns)
    assert preds["tp_50"].sum() == (objects["matched_prediction_id_50"] >= 0).sum()
    assert (preds.loc[preds["tp_50"], "best_iou"] >= 0.5).all()
    matched = preds[preds["tp_50"]]
    back = objects.set_index("object_id").loc[matched["matched_object_id_50"], "matched_prediction_id_50"]
    np.testing.assert_array_equal(back.to_numpy(), matched["prediction_id"].to_numpy())
    assert preds["tp_75"].sum() < preds["tp_50"].sum()
    tp = preds["tp_50"].to_numpy()
    assert (preds.loc[tp, "matched_iou_50"] >= 0.5).all() and (preds.loc[~tp, "matched_iou_50"] == 0).all()
    assert (preds["matched_iou_50"] <= preds["best_iou"] + 1e-12).all()


def test_predictions_from_results_segm_only_uses_mask_area() -> None:
    gt = load_coco("fruits_nuts")
    image = gt["images"][0]
    square = [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]]
    frame = predictions_from_results(
        [{"image_id": image["id"], "category_id": 1, "segmentation": square, "score": 0.5}], gt
    )
    assert frame.loc[0, "area"] == pytest.approx(400, abs=25)
    assert frame.loc[0, "bbox_w"] == pytest.approx(20, abs=1)
    assert objects_from_coco(gt)["object_id"].is_unique


def test_stat_names_key_the_stats_in_pycocotools_order_and_each_is_explained() -> None:
    """The names are checked against pycocotools' positions in test_stats_equal_pycocotools_and_faster_coco_eval
    (coco_reference reads the stats by STAT_NAMES); here: the stats carry exactly these keys, in this
    order, every one (and no other) is explained to the user, and a perfect detection scores 1 where
    pycocotools does (AP, AP50, AP75, the small-area AP and every recall; medium/large have no object)."""
    from metrics.evaluation import accumulate
    from store.model_queries import STAT_MEANINGS

    gt, preds = _one_box_tables()
    stats = accumulate(match(gt, preds)).stats
    assert tuple(stats) == STAT_NAMES and len(STAT_NAMES) == 12
    assert set(STAT_MEANINGS) == set(STAT_NAMES)
    perfect = {name for name, value in stats.items() if value == pytest.approx(1.0)}
    assert perfect == {"AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs"}
    assert stats["APm"] == stats["APl"] == stats["ARm"] == stats["ARl"] == -1.0


def _one_box_tables():
    import pandas as pd

    box = {"bbox_x": [0.0], "bbox_y": [0.0], "bbox_w": [10.0], "bbox_h": [10.0]}
    gt = pd.DataFrame(
        {"image_id": [1], "object_id": [5], "category_id": [1], **box, "area": [100.0], "iscrowd": [0]}
    )
    preds = pd.DataFrame({"prediction_id": [1], "image_id": [1], "category_id": [1], "score": [0.5], **box})
    return gt, preds


def test_empty_tables_give_pycocotools_answers() -> None:
    from metrics.evaluation import accumulate

    gt, preds = _one_box_tables()
    no_preds = match(gt, preds.iloc[:0])
    assert accumulate(no_preds).stats["AR100"] == 0.0  # a labelled class with no detections
    assert confusion_matrix(no_preds).to_numpy().tolist() == [[0, 1], [0, 0]]
    assert no_preds.objects_frame()["missed_50"].tolist() == [True]
    no_labels = match(gt.iloc[:0], preds)
    assert accumulate(no_labels).stats["AP"] == -1.0  # no ground truth: undefined, as pycocotools
    assert confusion_matrix(no_labels).to_numpy().tolist() == [[0, 0], [1, 0]]
    assert no_labels.predictions_frame()["matched_object_id_50"].tolist() == [-1]


def test_custom_iou_thresholds() -> None:
    from metrics.evaluation import accumulate

    gt, preds = _one_box_tables()
    preds["bbox_x"] = 4.0  # IoU 60 / 140 = 0.43
    result = match(gt, preds, iou_thresholds=[0.3, 0.5])
    evaluation = accumulate(result)
    assert evaluation.pr_curve(0.3)["precision"].mean() == pytest.approx(1.0)
    assert evaluation.stats["AP50"] == 0.0 and evaluation.stats["AP75"] == -1.0
    assert result.predictions_frame([0.3])["tp_30"].tolist() == [True]
    with pytest.raises(ValueError, match="not among"):
        result.threshold_index(0.75)
