"""Time COCO bbox evaluation: cocolens vs pycocotools vs faster-coco-eval on a synthetic set.

    .venv/bin/python bench/eval_bench.py                 # 5k images, 40k objects, 100k predictions
    .venv/bin/python bench/eval_bench.py --scale 0.1     # quick look

Each tool starts from the same in-memory COCO dict and results list (so building its indexes is
timed) and the 12 stats are checked to agree to 1e-9.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics.evaluation import STAT_NAMES, accumulate  # noqa: E402
from metrics.matching import match, objects_from_coco, predictions_from_results  # noqa: E402


def synthetic(n_images: int, n_objects: int, n_predictions: int, n_categories: int = 10, seed: int = 0):
    """Objects of all sizes on 640×480 images; predictions: jittered hits, wrong classes, noise."""
    rng = np.random.default_rng(seed)
    images = [{"id": i + 1, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in range(n_images)]
    image_of = rng.integers(1, n_images + 1, n_objects)
    side = np.exp(rng.uniform(np.log(8), np.log(300), (n_objects, 2)))
    xy = rng.uniform(0, 1, (n_objects, 2)) * (np.array([640, 480]) - side)
    cats = rng.integers(1, n_categories + 1, n_objects)
    annotations = [
        {
            "id": i + 1,
            "image_id": int(image_of[i]),
            "category_id": int(cats[i]),
            "bbox": [float(xy[i, 0]), float(xy[i, 1]), float(side[i, 0]), float(side[i, 1])],
            "area": float(side[i, 0] * side[i, 1]),
            "iscrowd": int(rng.random() < 0.01),
            "segmentation": [],
        }
        for i in range(n_objects)
    ]
    source = rng.integers(0, n_objects, n_predictions)
    hits = rng.random(n_predictions) < 0.7
    boxes = np.where(
        hits[:, None],
        np.c_[xy, side][source] + rng.normal(0, 0.1, (n_predictions, 4)) * np.c_[side, side][source],
        np.c_[rng.uniform(0, 500, (n_predictions, 2)), rng.uniform(8, 140, (n_predictions, 2))],
    )
    boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
    pred_cat = np.where(
        rng.random(n_predictions) < 0.9, cats[source], rng.integers(1, n_categories + 1, n_predictions)
    )
    results = [
        {
            "image_id": int(image_of[source[i]]),
            "category_id": int(pred_cat[i]),
            "bbox": [float(v) for v in boxes[i]],
            "score": float(np.round(rng.random(), 3)),
        }
        for i in range(n_predictions)
    ]
    categories = [{"id": c, "name": f"c{c}"} for c in range(1, n_categories + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def run_cocolens(gt: dict, results: list[dict]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    evaluation = accumulate(
        match(
            objects_from_coco(gt),
            predictions_from_results(results, gt),
            "bbox",
            image_ids=[im["id"] for im in gt["images"]],
            category_ids=[c["id"] for c in gt["categories"]],
        )
    )
    stats = np.array([evaluation.stats[k] for k in STAT_NAMES])
    return stats, time.perf_counter() - start


def run_pycocotools(gt: dict, results: list[dict]) -> tuple[np.ndarray, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, results = copy.deepcopy(gt), copy.deepcopy(results)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats), time.perf_counter() - start


def run_faster_coco_eval(gt: dict, results: list[dict]) -> tuple[np.ndarray, float]:
    from faster_coco_eval import COCO, COCOeval_faster

    gt, results = copy.deepcopy(gt), copy.deepcopy(results)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt)
        evaluator = COCOeval_faster(coco, coco.loadRes(results), "bbox", print_function=lambda *a, **k: None)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats[:12], dtype=float), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 5k/40k/100k")
    parser.add_argument("--skip-pycocotools", action="store_true", help="it is the slow one")
    parser.add_argument(
        "--store",
        action="store_true",
        help="also time `import predictions` (validate, match, reasons, write)",
    )
    args = parser.parse_args()
    sizes = [max(1, int(n * args.scale)) for n in (5_000, 40_000, 100_000)]
    gt, results = synthetic(*sizes)
    print(f"synthetic set: {sizes[0]} images, {sizes[1]} objects, {sizes[2]} predictions")
    runners = {"cocolens": run_cocolens, "faster-coco-eval": run_faster_coco_eval}
    if not args.skip_pycocotools:
        runners["pycocotools"] = run_pycocotools
    stats = {}
    for name, runner in runners.items():
        stats[name], seconds = runner(gt, results)
        print(f"{name:17s} {seconds:8.2f} s   AP={stats[name][0]:.6f} AP50={stats[name][1]:.6f}")
    for name, values in stats.items():
        difference = float(np.abs(values - stats["cocolens"]).max())
        print(f"max |stat difference| cocolens vs {name}: {difference:.2e}")
        assert difference < 1e-9, f"stats differ from {name}"
    if args.store:
        run_store_import(gt, results, stats["cocolens"])


def run_store_import(gt: dict, results: list[dict], expected: np.ndarray) -> None:
    """The whole per-object path a user runs: the store import of the results file into a project."""
    import json
    import tempfile

    from store.coco_import import import_coco
    from store.predictions_import import import_predictions

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()  # no pixels: geometry only, as for TACO
        (folder / "gt.json").write_text(json.dumps(gt))
        (folder / "results.json").write_text(json.dumps(results))
        import_coco(folder / "images", folder / "gt.json", folder / "project", dataset="synthetic")
        start = time.perf_counter()
        summary = import_predictions(folder / "results.json", folder / "project", model="bench")
        seconds = time.perf_counter() - start
        stored = np.array([summary["bbox"][name] for name in STAT_NAMES])
        print(
            f"store import     {seconds:8.2f} s   (validate + match + FP/FN reasons at 10 thresholds + label "
            f"errors + PR/confusion + Parquet), max |stat difference| {np.abs(stored - expected).max():.2e}"
        )


if __name__ == "__main__":
    main()
