"""Run pycocotools and faster-coco-eval on in-memory COCO dicts (the references we must equal)."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np

from metrics.evaluation import STAT_NAMES, Evaluation, accumulate
from metrics.matching import MatchResult, match, objects_from_coco, predictions_from_results


def pycocotools_eval(gt: dict, results: list[dict], iou_type: str):
    """A finished pycocotools COCOeval (its evalImgs and stats are what we compare with)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        dets = coco.loadRes(copy.deepcopy(results))
        evaluator = COCOeval(coco, dets, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def faster_coco_eval_stats(gt: dict, results: list[dict], iou_type: str) -> np.ndarray:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(copy.deepcopy(gt))
        dets = coco.loadRes(copy.deepcopy(results))
        evaluator = COCOeval_faster(coco, dets, iou_type, print_function=lambda *a, **k: None)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats[:12], dtype=float)


def ours(gt: dict, results: list[dict], iou_type: str) -> tuple[MatchResult, Evaluation]:
    segm = iou_type == "segm"
    result = match(
        objects_from_coco(gt, with_rle=segm),
        predictions_from_results(results, gt, with_rle=segm),
        iou_type,
        image_ids=[im["id"] for im in gt["images"]],
        category_ids=[c["id"] for c in gt["categories"]],
    )
    return result, accumulate(result)


def stats_array(evaluation: Evaluation) -> np.ndarray:
    stats = evaluation.stats
    return np.array([stats[name] for name in STAT_NAMES])
