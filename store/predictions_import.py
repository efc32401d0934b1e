"""``cocolens import predictions``: validate a COCO results file, match it like COCOeval, store it.

Everything a model-quality page needs is computed here once and stored per prediction and per
object for every IoU threshold 0.50:0.05:0.95, so changing the threshold in the app is a lookup:
TP flags, matched ids, the reason for every false positive and false negative, the 12 COCO stats,
per-class AP, PR curves, confusion matrices and label-error candidates. The model appears in the
project with one directory rename; bad input changes nothing.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metrics.geometry import (
    MAX_TRACED_POINTS,
    RLE_MAX_PIXELS,
    RLE_MAX_SIDE,
    polygon_too_long,
    rle_counts_problem,
)
from store.coco_reader import load_json
from store.errors import InputError
from store.project import (
    Project,
    check_name,
    read_table,
    replace_dir_atomic,
    write_json_atomic,
    write_parquet_atomic,
)

Progress = Callable[[str, int, int], None]
# Stored confusion matrices keep this many classes (most labels + predictions), the rest summed as
# "other classes": a 10,000-class dataset made ten 10⁸-cell matrices (6 GB, then a crash).
MAX_CONFUSION_CLASSES = 100
# Box coordinates beyond this are no image's (1e308 stored an infinite area).
MAX_BOX_COORDINATE = 1e12


def _is_number(value: Any) -> bool:
    """A finite JSON number (bool excluded); written for speed: it runs 5× per prediction."""
    kind = type(value)
    return kind is int or (kind is float and -math.inf < value < math.inf)


def _integer(value: Any, file: str, where: str, field: str) -> int:
    """``value`` when it is a JSON integer (not a bool), else the one-line error naming the field."""
    if not (isinstance(value, int) and not isinstance(value, bool)):
        raise InputError(
            file, f"expected an integer, got {json.dumps(value)[:40]}", record=where, field=field
        )
    return value


def _pick_dataset(project: Project, dataset: str | None, file: str) -> str:
    datasets = project.datasets()
    if dataset is not None:
        check_name("dataset", dataset)
        if dataset not in datasets:
            raise InputError(
                file,
                f"project has no dataset {dataset!r} (it has {', '.join(datasets) or 'none'})",
                field="--dataset",
            )
        return dataset
    if len(datasets) != 1:
        raise InputError(
            file, f"the project has {len(datasets)} datasets: name one with --dataset", field="--dataset"
        )
    return datasets[0]


def _segmentation(where: str, file: str, seg: Any, height: int, width: int) -> tuple[str, str]:
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_number(v) for v in size)):
            raise InputError(
                file, f"expected [height, width], got {size!r}"[:80], record=where, field="segmentation.size"
            )
        if [int(size[0]), int(size[1])] != [height, width]:
            raise InputError(
                file,
                f"RLE size {size} differs from the image's [{height}, {width}]",
                record=where,
                field="segmentation.size",
            )
        if isinstance(counts, str):
            if not counts or not all(48 <= ord(c) <= 111 for c in counts):
                raise InputError(
                    file,
                    "compressed RLE holds characters outside the RLE alphabet",
                    record=where,
                    field="segmentation.counts",
                )
            # Runs that do not fill the frame made pycocotools decode for ever (issue 18).
            problem = rle_counts_problem(counts, height, width)
            if problem:
                raise InputError(file, problem, record=where, field="segmentation.counts")
            return json.dumps({"size": [height, width], "counts": counts}), "rle_compressed"
        if isinstance(counts, list) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts
        ):
            if sum(counts) != height * width:
                raise InputError(
                    file,
                    f"RLE counts sum to {sum(counts)}, not {height * width}",
                    record=where,
                    field="segmentation.counts",
                )
            return json.dumps({"size": [height, width], "counts": counts}), "rle"
        raise InputError(
            file,
            "expected RLE counts as a string or a list of non-negative integers",
            record=where,
            field="segmentation.counts",
        )
    if isinstance(seg, list) and seg:
        for k, poly in enumerate(seg):
            if (
                not isinstance(poly, list)
                or len(poly) < 6
                or len(poly) % 2
                or not all(_is_number(v) for v in poly)
            ):
                raise InputError(
                    file,
                    f"polygon {k} must be an even list of at least 6 finite numbers",
                    record=where,
                    field="segmentation",
                )
        if polygon_too_long(seg, height, width):  # a 200,000-vertex zigzag segfaulted pycocotools
            raise InputError(
                file,
                f"polygon outline too long to rasterise (more than {MAX_TRACED_POINTS:,} traced points)",
                record=where,
                field="segmentation",
            )
        return json.dumps(seg), "polygon"
    raise InputError(file, "expected an RLE object or a list of polygons", record=where, field="segmentation")


def _bad_bbox(file: str, where: str, bbox: Any) -> None:
    raise InputError(
        file,
        f"expected [x, y, width, height] of finite numbers, got {json.dumps(bbox)[:60]}",
        record=where,
        field="bbox",
    )


def _check_boxes(file: str, boxes: list[Any]) -> None:
    """All boxes at once: finite numbers with width and height ≥ 0; the first bad one is named."""
    present = [i for i, box in enumerate(boxes) if box is not None]
    if not present:
        return
    typed = {type(v) for i in present for v in boxes[i]} <= {int, float}  # no str, bool, None, list
    array = np.array([boxes[i] for i in present], dtype=float) if typed else None
    if array is None or not typed or not np.isfinite(array).all():
        for i in present:
            if not all(_is_number(v) for v in boxes[i]):
                _bad_bbox(file, f"predictions[{i}]", boxes[i])
    negative = np.flatnonzero((array[:, 2] < 0) | (array[:, 3] < 0))
    if negative.size:
        raise InputError(
            file, "negative width or height", record=f"predictions[{present[negative[0]]}]", field="bbox"
        )
    huge = np.flatnonzero((np.abs(array) > MAX_BOX_COORDINATE).any(axis=1))
    if huge.size:
        raise InputError(
            file,
            f"a value beyond ±{MAX_BOX_COORDINATE:g} px, outside any image: {json.dumps(boxes[present[huge[0]]])[:60]}",
            record=f"predictions[{present[huge[0]]}]",
            field="bbox",
        )


def read_predictions(path: Path, images: pd.DataFrame, categories: pd.DataFrame) -> pd.DataFrame:
    """Validate every result; return the predictions table (prediction_id 1..n in file order)."""
    file = str(path)
    data = load_json(path)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise InputError(file, "expected a JSON list of results (COCO results format)", record="top level")
    if not data:
        raise InputError(file, "holds no predictions", record="top level")
    by_id = {
        int(i): (int(w), int(h))
        for i, w, h in zip(images["image_id"], images["width"], images["height"], strict=True)
    }
    by_name = dict(zip(images["file_name"], images["image_id"], strict=True))
    by_hash = {h: i for h, i in zip(images["content_hash"], images["image_id"], strict=True) if h}
    known_categories = set(int(c) for c in categories["category_id"])
    rows = []
    for index, rec in enumerate(data):
        where = f"predictions[{index}]"
        if not isinstance(rec, dict):
            raise InputError(file, "expected an object", record=where)
        if "image_id" in rec:
            image_id = _integer(rec["image_id"], file, where, "image_id")
            if image_id not in by_id:
                raise InputError(
                    file, f"no image has id {image_id} in this dataset", record=where, field="image_id"
                )
        elif "file_name" in rec:
            if rec["file_name"] not in by_name:
                raise InputError(
                    file, f"no image named {str(rec['file_name'])[:60]!r}", record=where, field="file_name"
                )
            image_id = int(by_name[rec["file_name"]])
        elif "content_hash" in rec:
            if rec["content_hash"] not in by_hash:
                raise InputError(file, "no image has this content hash", record=where, field="content_hash")
            image_id = int(by_hash[rec["content_hash"]])
        else:
            raise InputError(
                file,
                "missing (name the image by image_id, file_name or content_hash)",
                record=where,
                field="image_id",
            )
        category_id = _integer(rec.get("category_id"), file, where, "category_id")
        if category_id not in known_categories:
            raise InputError(file, f"no category has id {category_id}", record=where, field="category_id")
        score = rec.get("score")
        if "score" not in rec:
            raise InputError(file, "missing", record=where, field="score")
        if not _is_number(score) or not 0 <= score <= 1:
            raise InputError(
                file,
                f"expected a finite number ≥ 0 and ≤ 1 (a confidence), got {json.dumps(score)[:40]}",
                record=where,
                field="score",
            )
        width, height = by_id[image_id]
        seg_text, seg_type = "", "none"
        if rec.get("segmentation") not in (None, [], {}):
            seg_text, seg_type = _segmentation(where, file, rec["segmentation"], height, width)
        bbox = rec.get("bbox")
        if bbox is not None:
            if type(bbox) is not list or len(bbox) != 4:
                _bad_bbox(file, where, bbox)
            # Element checks (finite numbers, w/h ≥ 0) run vectorised after the loop.
        elif seg_type == "none":
            raise InputError(file, "a prediction needs a bbox or a segmentation", record=where, field="bbox")
        rows.append((index + 1, image_id, category_id, float(score), bbox, seg_text, seg_type, width, height))
    _check_boxes(file, [row[4] for row in rows])
    frame = pd.DataFrame(
        rows,
        columns=[
            "prediction_id",
            "image_id",
            "category_id",
            "score",
            "bbox",
            "segmentation",
            "seg_type",
            "width",
            "height",
        ],
    )
    return _fill_boxes(frame)


def _fill_boxes(frame: pd.DataFrame) -> pd.DataFrame:
    """Box and area as pycocotools' loadRes: the given box, else the mask's box; area = box area if boxed."""
    from metrics.geometry import (
        parse_segmentation,
        polygon_rings,
        rle_area,
        rle_bbox,
        segmentation_area,
        segmentation_to_rle,
    )

    has_box = frame["bbox"].notna().to_numpy()
    boxes = np.zeros((len(frame), 4))
    areas = np.zeros(len(frame))
    if has_box.any():
        boxes[has_box] = np.array(frame["bbox"][has_box].tolist(), dtype=float)
        areas[has_box] = boxes[has_box, 2] * boxes[has_box, 3]
    for i in np.flatnonzero(~has_box):  # mask-only results: the mask's box and area, as loadRes
        seg = parse_segmentation(frame["segmentation"].iat[i])
        height, width = int(frame["height"].iat[i]), int(frame["width"].iat[i])
        rle = segmentation_to_rle(seg, height, width)
        if rle is None:  # a frame beyond 2^32 pixels holds no RLE: the polygon's extent and own area
            rings = polygon_rings(seg)
            xs = np.concatenate([np.asarray(r[0::2]) for r in rings]) if rings else np.zeros(1)
            ys = np.concatenate([np.asarray(r[1::2]) for r in rings]) if rings else np.zeros(1)
            boxes[i] = [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
            areas[i] = segmentation_area(seg, height, width) or 0.0
            continue
        boxes[i] = rle_bbox(rle)
        areas[i] = float(rle_area([rle])[0])
    out = frame.drop(columns=["bbox"]).copy()
    out["bbox_x"], out["bbox_y"], out["bbox_w"], out["bbox_h"] = boxes.T
    out["area"] = areas
    return out


def _gt_table(objects: pd.DataFrame, images: pd.DataFrame, with_rle: bool) -> pd.DataFrame:
    from metrics.geometry import object_rle, parse_segmentation

    gt = objects[
        ["image_id", "object_id", "category_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "area", "iscrowd"]
    ].copy()
    # A label with no geometry (NaN box) can match nothing; it stays in bbox matching as a zero box
    # so that it still counts as a missed object, and is left out of mask matching (no mask).
    finite = np.isfinite(gt[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy()).all(axis=1)
    if with_rle:
        gt = gt[finite]
    gt = gt.fillna({"bbox_x": 0.0, "bbox_y": 0.0, "bbox_w": 0.0, "bbox_h": 0.0})
    if with_rle:
        sizes = images.set_index("image_id")[["height", "width"]]
        segs = objects.set_index(["image_id", "object_id"])["segmentation"]
        rles = []
        for image_id, object_id, x, y, w, h in zip(
            gt["image_id"],
            gt["object_id"],
            gt["bbox_x"],
            gt["bbox_y"],
            gt["bbox_w"],
            gt["bbox_h"],
            strict=True,
        ):
            height, width = sizes.loc[image_id]
            rle = object_rle(
                parse_segmentation(segs.loc[(image_id, object_id)]), [x, y, w, h], int(height), int(width)
            )
            rles.append(rle)
        gt["rle"] = rles
        gt = gt[[r is not None for r in rles]]
    return gt.reset_index(drop=True)


def _prediction_rles(predictions: pd.DataFrame) -> list:
    from metrics.geometry import mask_to_rle_empty, parse_segmentation, segmentation_to_rle

    rles = []
    for seg, h, w in zip(
        predictions["segmentation"], predictions["height"], predictions["width"], strict=True
    ):
        rle = segmentation_to_rle(parse_segmentation(seg), int(h), int(w))
        rles.append(rle if rle is not None else mask_to_rle_empty(int(h), int(w)))  # no mask: matches nothing
    return rles


def evaluate_model(
    predictions: pd.DataFrame,
    objects: pd.DataFrame,
    images: pd.DataFrame,
    categories: pd.DataFrame,
    iou_type: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Match and summarise one IoU type: (per-prediction, per-object, label errors, eval summary)."""
    from metrics.error_reasons import false_negative_reasons, false_positive_reasons
    from metrics.evaluation import accumulate, confusion_matrix
    from metrics.matching import THRESHOLD_TAGS, match
    from metrics.prediction_label_errors import find_label_errors

    with_rle = iou_type == "segm"
    gt = _gt_table(objects, images, with_rle)
    preds = predictions[
        ["prediction_id", "image_id", "category_id", "score", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "area"]
    ].copy()
    if with_rle:
        preds["rle"] = _prediction_rles(predictions)
    result = match(
        gt,
        preds,
        iou_type,
        image_ids=images["image_id"].to_numpy(),
        # Only the categories taking part: one with neither labels nor predictions has no AP (COCOeval
        # leaves it out of every mean) but cost 10×101×4×3 cells per array each (10⁵ classes: 10 GB).
        category_ids=np.union1d(objects["category_id"].to_numpy(), predictions["category_id"].to_numpy()),
    )
    evaluation = accumulate(result)
    thresholds = [float(t) for t in result.iou_thresholds]
    per_pred = result.predictions_frame(thresholds)
    per_obj = result.objects_frame(thresholds)
    for t, tag in zip(thresholds, THRESHOLD_TAGS, strict=True):
        fp = false_positive_reasons(result, t)
        per_pred[f"reason_{tag}"] = fp["reason"].to_numpy()
        per_pred[f"related_object_id_{tag}"] = fp["related_object_id"].to_numpy()
        per_pred[f"related_category_id_{tag}"] = fp["related_category_id"].to_numpy()
        per_pred[f"related_iou_{tag}"] = fp["related_iou"].to_numpy()
        if tag == "50":
            per_pred["outcome_50"] = fp["outcome"].to_numpy()
            per_pred["duplicate_of_prediction_id_50"] = fp["duplicate_of_prediction_id"].to_numpy()
        fn = false_negative_reasons(result, t)
        per_obj[f"reason_{tag}"] = fn["reason"].to_numpy()
        per_obj[f"related_prediction_id_{tag}"] = fn["related_prediction_id"].to_numpy()
        per_obj[f"related_iou_{tag}"] = fn["related_iou"].to_numpy()
        if tag == "50":
            per_obj["outcome_50"] = fn["outcome"].to_numpy()
    names = dict(zip(categories["category_id"].astype(int), categories["name"], strict=True))
    per_class = evaluation.per_class(names)
    pr_curves: dict[str, Any] = {}
    confusion: dict[str, Any] = {}
    for t, tag in zip(thresholds, THRESHOLD_TAGS, strict=True):
        curves = {"all": evaluation.pr_curve(t)["precision"].round(6).tolist()}
        for cat in result.category_ids:
            curve = evaluation.pr_curve(t, int(cat))
            curves[str(int(cat))] = curve["precision"].round(6).tolist()
        pr_curves[tag] = curves
        matrix = confusion_matrix(result, t, category_names=names, max_classes=MAX_CONFUSION_CLASSES)
        confusion[tag] = {"labels": [str(c) for c in matrix.columns], "counts": matrix.to_numpy().tolist()}
    errors = find_label_errors(gt, preds, iou_type, pairs=result.pairs)
    summary = {
        "stats": evaluation.stats,
        "per_class": json.loads(per_class.to_json(orient="records")),
        "pr_curves": pr_curves,
        "recall_points": [round(float(r), 2) for r in evaluation.rec_thresholds],
        "confusion": confusion,
    }
    return per_pred, per_obj, errors, summary


def import_predictions(
    file: str | Path,
    project_dir: str | Path,
    model: str,
    dataset: str | None = None,
    progress: Progress | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Import one model's predictions for one dataset; return counts and the bbox/segm stats."""
    path = Path(file)
    model = check_name("model", model)
    project = Project(project_dir)
    if not project.exists():
        raise InputError(str(project_dir), "not a cocolens project (no project.json)", field="--project")
    started = time.time()
    with project.writing():
        # The ground truth is read under the lock: read before it, a concurrent `import coco` could
        # replace the dataset and the model would keep scores against labels that no longer exist.
        dataset = _pick_dataset(project, dataset, str(path))
        folder = project.dataset_dir(dataset)
        images = read_table(folder / "images.parquet")
        objects = read_table(folder / "objects.parquet")
        categories = read_table(folder / "categories.parquet")
        dataset_meta = project.dataset_meta(dataset)
        predictions = read_predictions(path, images, categories)  # validated before any write
        # a killed import of this model left its stage behind; we hold the lock, so it is no one's
        for stale in project.staging_dir.glob(f"model-{model}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        stage = project.staging_dir / f"model-{model}-{int(time.time() * 1000)}"
        stage.mkdir(parents=True, exist_ok=True)
        try:
            iou_types = ["bbox"]
            notes = []
            with_masks = int((predictions["seg_type"] != "none").sum())
            sides = images[["height", "width"]].to_numpy(dtype=np.float64)
            too_large = int(
                ((sides.prod(axis=1) > RLE_MAX_PIXELS) | (sides.max(axis=1) > RLE_MAX_SIDE)).sum()
            )
            if with_masks and too_large:
                notes.append(
                    f"segm not evaluated: {too_large} image(s) of more than 2^32 pixels cannot hold masks"
                )
            elif with_masks == len(predictions) and (objects["seg_type"] != "none").any():
                iou_types.append("segm")
            elif with_masks:  # said, not skipped silently: COCOeval needs a mask on every result
                notes.append(
                    f"segm not evaluated: {len(predictions) - with_masks} of {len(predictions)} predictions "
                    "carry no segmentation (mask AP needs one on every prediction)"
                )
            elif (objects["seg_type"] != "none").any():
                notes.append("segm not evaluated: the predictions carry no segmentation")
            evals: dict[str, Any] = {}
            pred_frames, obj_frames, error_frames = [], [], []
            for step, iou_type in enumerate(iou_types):
                if progress:
                    progress("matching", step, len(iou_types))
                per_pred, per_obj, errors, summary = evaluate_model(
                    predictions, objects, images, categories, iou_type
                )
                for frame in (per_pred, per_obj, errors):
                    frame.insert(0, "iou_type", iou_type)
                    frame.insert(0, "dataset", dataset)
                    frame.insert(0, "model", model)
                pred_frames.append(per_pred)
                obj_frames.append(per_obj)
                error_frames.append(errors)
                evals[iou_type] = summary
            if progress:
                progress("matching", len(iou_types), len(iou_types))
            stored = predictions.drop(columns=["width", "height"]).copy()
            stored.insert(0, "dataset", dataset)
            stored.insert(0, "model", model)
            write_parquet_atomic(stage / "predictions.parquet", stored)
            write_parquet_atomic(stage / "matches.parquet", pd.concat(pred_frames, ignore_index=True))
            write_parquet_atomic(stage / "gt_matches.parquet", pd.concat(obj_frames, ignore_index=True))
            write_parquet_atomic(stage / "label_errors.parquet", pd.concat(error_frames, ignore_index=True))
            write_json_atomic(stage / "eval.json", evals)
            meta = {
                "name": model,
                "dataset": dataset,
                "predictions": len(predictions),
                "iou_types": iou_types,
                "notes": notes,
                # which version of the dataset the matches were made against (see model_is_stale)
                "dataset_annotations_sha256": dataset_meta.get("annotations_sha256", ""),
                "dataset_imported_at": dataset_meta.get("imported_at", ""),
                "source_file": str(path.resolve()),
                "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "import_seconds": round(time.time() - started, 2),
                **(source or {}),
            }
            write_json_atomic(stage / "model.json", meta)
            replace_dir_atomic(stage, project.model_dir(model))
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return {
        "model": model,
        "dataset": dataset,
        "predictions": len(predictions),
        **{iou_type: evals[iou_type]["stats"] for iou_type in evals},
        **({"notes": notes} if notes else {}),
    }


def model_is_stale(project: Project, model: str, meta: dict[str, Any] | None = None) -> bool:
    """True when the model's dataset was re-imported (or removed) after its predictions were matched.

    Its stored matches and stats then describe labels that no longer exist: import the predictions
    again. Models imported before this was recorded count as current. ``meta``: the model.json the
    caller already read (read here otherwise).
    """
    meta = project.model_meta(model) if meta is None else meta
    recorded = meta.get("dataset_imported_at")
    if recorded is None:
        return False
    if meta.get("dataset") not in project.datasets():
        return True
    current = project.dataset_meta(meta["dataset"])
    return (current.get("annotations_sha256"), current.get("imported_at")) != (
        meta.get("dataset_annotations_sha256"),
        recorded,
    )
