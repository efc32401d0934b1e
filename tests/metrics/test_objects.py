"""Label metrics: exact numbers on hand-made frames, figures on the real shared datasets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrics import geometry, objects, registry
from store.coco_reader import OBJECT_COLUMNS
from tests.conftest import shared

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SQUARE_A = [[0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]]
SQUARE_B = [[5.0, 0.0, 15.0, 0.0, 15.0, 10.0, 5.0, 10.0]]


def frames(rows: list[dict], images: list[tuple[int, int, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """objects / images tables as the store writes them (docs/ARCHITECTURE.md)."""
    objs = []
    for k, r in enumerate(rows):
        seg = r.get("seg")
        x, y, w, h = r["bbox"]
        objs.append(
            {
                "object_id": k + 1,
                "image_id": r.get("image_id", 1),
                "category_id": r.get("category_id", 1),
                "bbox_x": x,
                "bbox_y": y,
                "bbox_w": w,
                "bbox_h": h,
                "area": float(w * h),
                "iscrowd": r.get("iscrowd", 0),
                "segmentation": seg if isinstance(seg, str) else (json.dumps(seg) if seg else ""),
                "seg_type": geometry.seg_type_of(seg),
            }
        )
    imgs = pd.DataFrame(
        [{"image_id": i, "width": w, "height": h, "status": "ok"} for i, w, h in images],
    )
    return pd.DataFrame(objs), imgs


def load_coco(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not path.is_file():
        pytest.skip(f"shared test data {path} is absent")
    data = json.loads(path.read_text())
    imgs = pd.DataFrame(
        [
            {"image_id": i["id"], "width": i["width"], "height": i["height"], "status": "missing"}
            for i in data["images"]
        ]
    )
    objs = pd.DataFrame(
        [
            {
                "object_id": a["id"],
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "bbox_x": a["bbox"][0],
                "bbox_y": a["bbox"][1],
                "bbox_w": a["bbox"][2],
                "bbox_h": a["bbox"][3],
                "area": float(a.get("area", 0.0)),
                "iscrowd": a.get("iscrowd", 0),
                "segmentation": json.dumps(a["segmentation"]) if a.get("segmentation") else "",
                "seg_type": geometry.seg_type_of(a.get("segmentation")),
            }
            for a in data["annotations"]
        ]
    )
    return objs, imgs


def run_all(objs: pd.DataFrame, imgs: pd.DataFrame) -> dict[str, np.ndarray]:
    """The store's contract: every table metric called as spec.func(objects, images)."""
    out = {}
    for spec in registry.all_specs(level="object") + registry.all_specs(level="image", kind="table"):
        values = np.asarray(spec.func(objs, imgs), dtype=np.float64)
        assert len(values) == (len(objs) if spec.level == "object" else len(imgs)), spec.name
        out[spec.name] = values
    return out


def test_specs_are_registered_with_meaning():
    names = {s.name: s for s in registry.all_specs()}
    for name in [
        "object_area",
        "object_area_relative",
        "object_aspect_ratio",
        "border_closeness",
        "annotation_duplicate_iou",
        "invalid_geometry",
    ]:
        assert names[name].level == "object" and names[name].group == "label" and names[name].description
    for name in ["object_count", "frame_object_density", "class_count"]:
        assert names[name].level == "image" and names[name].kind == "table"
    for name in [
        "object_area_relative",
        "border_closeness",
        "annotation_duplicate_iou",
        "frame_object_density",
    ]:
        assert (names[name].low, names[name].high) == (0.0, 1.0)


def test_two_overlapping_squares_exact_figures():
    objs, imgs = frames(
        [
            {"bbox": [0, 0, 10, 10], "seg": SQUARE_A},
            {"bbox": [5, 0, 10, 10], "seg": SQUARE_B},
            {"bbox": [2, 12, 4, 5], "category_id": 2, "image_id": 2},
        ],
        [(1, 20, 20), (2, 40, 20), (3, 30, 30)],
    )
    v = run_all(objs, imgs)
    assert v["object_area"].tolist() == [100.0, 100.0, 20.0]
    assert objects.object_area_source(objs, imgs).tolist() == ["mask", "mask", "bbox"]
    assert v["object_area_relative"].tolist() == pytest.approx([0.25, 0.25, 20 / 800])
    assert v["object_aspect_ratio"].tolist() == pytest.approx([1.0, 1.0, 0.8])
    assert v["annotation_duplicate_iou"].tolist() == pytest.approx([1 / 3, 1 / 3, 0.0])
    assert v["invalid_geometry"].tolist() == [0.0, 0.0, 0.0]
    assert v["object_count"].tolist() == [2.0, 1.0, 0.0]
    assert v["class_count"].tolist() == [1.0, 1.0, 0.0]
    # union of the squares is 150 px of 400; the box 4×5 covers 20 of 800; image 3 is empty
    assert v["frame_object_density"].tolist() == pytest.approx([0.375, 0.025, 0.0])


def test_duplicate_iou_uses_boxes_unless_both_have_masks_and_skips_other_classes_and_crowd():
    objs, imgs = frames(
        [
            {"bbox": [0, 0, 10, 10], "seg": SQUARE_A},
            {"bbox": [0, 0, 10, 20]},  # box-only: box IoU 0.5 with the first
            {"bbox": [0, 0, 10, 10], "category_id": 2},  # identical box, other class
            {"bbox": [0, 0, 10, 10], "iscrowd": 1},  # crowd region over the first: not a duplicate
        ],
        [(1, 20, 20)],
    )
    assert objects.annotation_duplicate_iou(objs, imgs).tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0])


def test_duplicate_iou_is_mask_iou_when_boxes_overlap_but_masks_do_not():
    triangle_low = [[0, 0, 10, 10, 0, 10]]  # lower-left half of the 10×10 box
    triangle_high = [[0, 0, 10, 0, 10, 10]]  # upper-right half
    objs, imgs = frames(
        [{"bbox": [0, 0, 10, 10], "seg": triangle_low}, {"bbox": [0, 0, 10, 10], "seg": triangle_high}],
        [(1, 20, 20)],
    )
    iou = objects.annotation_duplicate_iou(objs, imgs)
    assert iou.max() < 0.15  # the boxes alone would say 1.0


def test_border_closeness():
    objs, imgs = frames(
        [
            {"bbox": [0, 40, 10, 10]},  # touches the left border
            {"bbox": [45, 45, 10, 10]},  # centred: 45 px gap of a 50 px half side
            {"bbox": [90, 20, 20, 10]},  # sticks out on the right
            {"bbox": [10, 10, 5, 5], "image_id": 9},  # image record unknown
        ],
        [(1, 100, 100)],
    )
    assert objects.border_closeness(objs, imgs)[:3].tolist() == pytest.approx([1.0, 0.1, 1.0])
    assert np.isnan(objects.border_closeness(objs, imgs)[3])
    assert np.isnan(objects.object_area_relative(objs, imgs)[3])


def test_invalid_geometry_reasons_one_per_defect():
    rle_wrong_size = geometry.rle_to_json(geometry.mask_to_rle(np.ones((10, 10), dtype=bool)))
    rows = [
        {"bbox": [0, 0, 10, 10], "seg": SQUARE_A},  # valid
        {"bbox": [0, 0, 10, 10], "seg": [[0, 0, 10, 0]]},  # 2 points
        {"bbox": [0, 0, 10, 10], "seg": [[0, 0, 10, 0, 10, 10, 0]]},  # odd count
        {"bbox": [0, 0, 25, 10], "seg": [[0, 0, 25, 0, 25, 10, 0, 10]]},  # 5 px beyond the 20 px width
        {"bbox": [0, 0, 20.5, 10], "seg": [[0, 0, 20.5, 0, 20.5, 10, 0, 10]]},  # within the 1 px tolerance
        {"bbox": [0, 0, 0, 10]},  # zero width
        {"bbox": [0, 0, 10, 10], "seg": SQUARE_B},  # bbox IoU 1/3 with the polygon's extents
        {"bbox": [0, 0, 10, 10], "seg": rle_wrong_size},  # RLE 10×10 in a 20×20 image
        {"bbox": [np.inf, np.inf, -np.inf, -np.inf]},  # seen in TACO unofficial
        {"bbox": [0, 0, 10, 10], "seg": "{broken"},
    ]
    objs, imgs = frames(rows, [(1, 20, 20)])
    reasons = objects.invalid_geometry_reasons(objs, imgs)
    assert reasons[0] == "" and reasons[4] == ""
    assert reasons[1] == "polygon with fewer than 3 points"
    assert reasons[2] == "polygon with an odd number of coordinates"
    assert "polygon points outside the image" in reasons[3] and "bbox outside the image" in reasons[3]
    assert reasons[5] == "non-positive bbox size"
    assert reasons[6] == "bbox disagrees with the segmentation (IoU 0.33)"
    assert reasons[7] == "RLE size 10x10 differs from image size 20x20"
    assert reasons[8] == "bbox not finite"
    assert reasons[9] == "segmentation is not valid JSON"
    flags = objects.invalid_geometry(objs, imgs)
    assert flags.tolist() == [0, 1, 1, 1, 0, 1, 1, 1, 1, 1]
    # non-finite boxes are not measurable: NaN, not 0
    assert np.isnan(objects.object_area(objs, imgs)[8]) and np.isnan(
        objects.annotation_duplicate_iou(objs, imgs)[8]
    )


def test_values_follow_row_order_and_cache_sees_changes():
    objs, imgs = frames(
        [{"bbox": [0, 0, 10, 10], "seg": SQUARE_A}, {"bbox": [0, 0, 4, 5], "image_id": 2}],
        [(1, 20, 20), (2, 20, 20)],
    )
    assert objects.object_area(objs, imgs).tolist() == [100.0, 20.0]
    reversed_objs = objs.iloc[::-1].reset_index(drop=True)
    assert objects.object_area(reversed_objs, imgs).tolist() == [20.0, 100.0]
    assert objects.object_count(objs, imgs.iloc[::-1]).tolist() == [1.0, 1.0]
    objs.loc[0, "segmentation"] = json.dumps(SQUARE_B)
    objs.loc[0, "bbox_x"] = 5.0
    assert objects.frame_object_density(objs, imgs).tolist() == pytest.approx([0.25, 0.05])
    imgs.loc[0, "width"] = 40
    assert objects.object_area_relative(objs, imgs)[0] == pytest.approx(100 / 800)


def test_empty_tables():
    objs, imgs = frames([], [(1, 20, 20)])
    objs = pd.DataFrame(columns=[c for c in OBJECT_COLUMNS if c != "dataset"])  # the stored table, empty
    v = run_all(objs, imgs)
    assert v["object_count"].tolist() == [0.0] and v["frame_object_density"].tolist() == [0.0]
    assert len(v["object_area"]) == 0


def test_taco_official_area_and_object_pass_timing():
    official, official_imgs = load_coco(DATA / "taco" / "annotations.json")
    unofficial, unofficial_imgs = load_coco(DATA / "taco" / "annotations_unofficial.json")
    start = time.perf_counter()
    values = run_all(official, official_imgs)
    run_all(unofficial, unofficial_imgs)
    seconds = time.perf_counter() - start
    print(
        f"\ntaco official+unofficial ({len(official) + len(unofficial)} objects): whole table pass {seconds:.1f} s"
    )
    assert seconds < 60

    relative = values["object_area_relative"]
    # Mask area (pycocotools rasterisation) over annotated w×h; COCO's own `area` field gives 0.0017588.
    assert np.median(relative) == pytest.approx(0.00176, abs=0.00002)
    assert (relative < 0.01).mean() == pytest.approx(0.766, abs=0.01)  # most objects under 1% of the image
    coco_area = official["area"].to_numpy()
    assert np.median(np.abs(values["object_area"] - coco_area) / coco_area) < 0.01
    assert int(values["invalid_geometry"].sum()) == 1  # one bbox past the border
    assert values["object_count"].sum() == len(official)


def test_taco_unofficial_has_broken_boxes_flagged():
    objs, imgs = load_coco(DATA / "taco" / "annotations_unofficial.json")
    reasons = objects.invalid_geometry_reasons(objs, imgs)
    assert sum(r == "bbox not finite" for r in reasons) == 15
    assert sum("polygon points outside the image" in r for r in reasons) == 16
    area = objects.object_area(objs, imgs)
    assert np.isnan(area).sum() == 15


def test_blood_cells_box_only_falls_back_to_boxes():
    objs, imgs = load_coco(DATA / "blood_cells" / "annotations.json")
    assert (objs["segmentation"] == "").all()
    v = run_all(objs, imgs)
    assert np.array_equal(v["object_area"], objs["bbox_w"].to_numpy() * objs["bbox_h"].to_numpy())
    assert set(objects.object_area_source(objs, imgs)) == {"bbox"}
    assert v["invalid_geometry"].sum() == 0
    assert 0.5 < np.median(v["frame_object_density"]) < 0.95  # microscope frames packed with cells
    # duplicate IoU equals the plain box IoU of same-class pairs, checked on one image
    image_id = objs["image_id"].iloc[0]
    rows = objs[(objs["image_id"] == image_id) & (objs["category_id"] == objs["category_id"].iloc[0])]
    boxes = rows[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy()
    iou = geometry.box_iou_matrix(boxes, boxes)
    np.fill_diagonal(iou, 0)
    assert v["annotation_duplicate_iou"][rows.index.to_numpy()] == pytest.approx(iou.max(axis=1))
    assert v["class_count"].max() == 2


def test_fruits_nuts_polygons():
    objs, imgs = load_coco(DATA / "fruits_nuts" / "annotations.json")
    v = run_all(objs, imgs)
    assert set(objects.object_area_source(objs, imgs)) == {"mask"}
    rel_err = np.abs(v["object_area"] - objs["area"].to_numpy()) / objs["area"].to_numpy()
    assert rel_err.max() < 0.01  # rasterised mask area agrees with the file's polygon area
    assert v["invalid_geometry"].sum() == 0
    assert v["object_count"].sum() == 165 and v["class_count"].max() == 3
    assert 0.0 < v["annotation_duplicate_iou"].max() < 0.05  # touching nuts, no duplicates


# --- invalid_geometry_reasons: the column pass gives the per-object loop's reasons exactly -----------


def _reference_invalid_geometry_reasons(objs: pd.DataFrame, imgs: pd.DataFrame) -> list[str]:
    """invalid_geometry_reasons before its column pass (a per-object loop), kept as the oracle."""
    geo = objects.object_geometry(objs, imgs)
    texts = objs["segmentation"].tolist() if "segmentation" in objs.columns else [""] * len(objs)
    all_problems: list[list[str]] = []
    seg_boxes = np.full((len(texts), 4), np.nan)
    box_ok = np.isfinite(geo.boxes).all(axis=1) & (geo.boxes[:, 2] > 0) & (geo.boxes[:, 3] > 0)
    tol = objects.BORDER_TOLERANCE_PX
    with np.errstate(invalid="ignore"):
        outside = box_ok & (
            (geo.boxes[:, 0] < -tol)
            | (geo.boxes[:, 1] < -tol)
            | (geo.boxes[:, 0] + geo.boxes[:, 2] > geo.img_w + tol)
            | (geo.boxes[:, 1] + geo.boxes[:, 3] > geo.img_h + tol)
        )
    for i, (text, seg) in enumerate(zip(texts, geo.segs, strict=True)):
        problems: list[str] = []
        if not np.isfinite(geo.boxes[i]).all():
            problems.append("bbox not finite")
        elif not box_ok[i]:
            problems.append("non-positive bbox size")
        elif outside[i]:
            problems.append("bbox outside the image")
        seg_box = None
        if seg is None:
            if isinstance(text, str) and text.strip() and text.strip() != "[]":
                problems.append("segmentation is not valid JSON")
        elif isinstance(seg, dict):
            more, seg_box = objects._rle_problems(seg, geo.rles[i], geo.img_h[i], geo.img_w[i])
            problems += more
        elif isinstance(seg, list):
            more, seg_box = objects._ring_problems(seg, geo.img_h[i], geo.img_w[i])
            problems += more
        else:
            problems.append("segmentation is neither polygons nor RLE")
        if seg_box is not None:
            seg_boxes[i] = seg_box
        all_problems.append(problems)
    if "area" in objs.columns:  # an area of 1e12 on an 800×600 image was stored unflagged
        area = objs["area"].to_numpy(dtype=np.float64, na_value=np.nan)
        image_area = geo.img_h * geo.img_w
        with np.errstate(invalid="ignore"):
            too_big = np.isfinite(area) & (image_area > 0) & (area > image_area * (1 + 1e-6) + 1)
        for i in np.flatnonzero(too_big):
            all_problems[i].append(f"area {area[i]:.6g} larger than the image ({image_area[i]:.0f} px)")
    for i in [k for k, (rle, seg) in enumerate(zip(geo.rles, geo.segs, strict=True)) if rle is None and seg]:
        if isinstance(geo.segs[i], list) and geometry.rle_frame_ok(geo.img_h[i], geo.img_w[i]):
            if geometry.polygon_rings(geo.segs[i]):  # added with ed21d74 to both versions
                all_problems[i].append("polygon outline too long to rasterise")
    agreement = geometry.box_iou_pairs(geo.boxes, seg_boxes)
    compared = box_ok & np.isfinite(seg_boxes).all(axis=1)
    for i in np.flatnonzero(compared & (agreement < objects.BBOX_SEG_MIN_IOU)):
        all_problems[i].append(f"bbox disagrees with the segmentation (IoU {agreement[i]:.2f})")
    return ["; ".join(dict.fromkeys(p)) for p in all_problems]


# Segmentation texts (as stored) for the column pass's edge cases: each is clean or left to the loop.
EDGE_SEGMENTATIONS = [
    "[[0, 0, 10, 0, 10, 10, 0, 10]]",  # ints
    "[[0.0, 0.0, 10.5, 0, 10.5, 10, 0, 10]]",  # ints and floats
    "[0, 0, 10, 0, 10, 10, 0, 10]",  # a flat ring
    "[[0, 0, 10, 0, 10, 10, 0, 10], [12, 12, 18, 12, 18, 18]]",  # two rings
    "[[0, 0, 10, 0, 10, 10, 0, 10], [12, 12, 18]]",  # a short second ring
    "[[-5, -5, 30, 0, 30, 30, 0, 30]]",  # outside the 20×20 frame
    "[[0, 0, 20.9, 0, 20.9, 20.9, 0, 20.9]]",  # within the tolerance
    "[[0, 0, 10, 0, NaN, 10, 0, 10]]",
    "[[0, 0, 10, 0, Infinity, 10, 0, 10]]",
    "[[0, 0, 10, 0, 10, 10, 0, 10, 5]]",  # odd
    "[[0, 0, 10, 0]]",  # 2 points
    '[[0, 0, 10, 0, 10, 10, 0, "10"]]',  # a string
    "[[0, 0, 10, 0, 10, 10, 0, true]]",  # a bool
    "[[0, 0, 10, 0, 10, 10, 0, null]]",
    "[[0, 0, 10, 0, 10, 10, 0, 10], 5]",  # a number as a ring
    "[[0, 0, 10, 0, 10, 10, 0, 9007199254740993]]",  # an int beyond 2^53
    "[[0, 0, 10, 0, 10, 10, 0, 1180591620717411303424]]",  # beyond 2^64: numpy makes it an object
    "[[0, 0, 10, 0, 10, 10, 0, -9223372036854775808]]",
    "[[0, 0, 1e308, 0, 1e308, 10, -1e308, 10]]",  # extents overflow
    "[[]]",
    "[]",
    "",
    "{broken",
    '"text"',
    "7",
    '{"size": [20, 20], "counts": [0, 400]}',
    '{"size": [10, 10], "counts": [0, 100]}',
    '{"size": [20, 20], "counts": "not rle"}',
]


def test_invalid_geometry_column_pass_equals_the_per_object_loop_on_edge_cases():
    rows = []
    boxes = [[0, 0, 10, 10], [0, 0, 0, 10], [np.inf, 0, 5, 5], [15, 15, 10, 10], [0, 0, 20, 20]]
    for k, text in enumerate(EDGE_SEGMENTATIONS):
        for b, box in enumerate(boxes):
            rows.append({"bbox": box, "seg": text, "image_id": 9 if (k + b) % 7 == 0 else 1})
    objs, imgs = frames(rows, [(1, 20, 20)])
    objs.loc[3, "area"] = 1e12  # larger than the image
    with np.errstate(all="ignore"):
        expected = _reference_invalid_geometry_reasons(objs, imgs)
        got = objects.invalid_geometry_reasons(objs, imgs)
    assert got == expected
    assert sum(bool(r) for r in got) > len(got) // 2  # the cases do exercise the reasons


@pytest.mark.parametrize(
    "name",
    [
        "taco/annotations.json",
        "taco/annotations_unofficial.json",
        "fruits_nuts/annotations.json",
        "blood_cells/annotations.json",
    ],
)
def test_invalid_geometry_column_pass_equals_the_per_object_loop_on_real_sets(name: str):
    objs, imgs = load_coco(shared(*name.split("/")))
    with np.errstate(all="ignore"):
        expected = _reference_invalid_geometry_reasons(objs, imgs)
    start = time.perf_counter()
    got = objects.invalid_geometry_reasons(objs, imgs)
    print(f"\n{name}: {len(objs)} objects, column pass {time.perf_counter() - start:.2f} s")
    assert got == expected
