"""Geometry helpers on tiny hand-made shapes with exact expected numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metrics import geometry

SQUARE_A = [[0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]]  # 10×10 at the origin
SQUARE_B = [[5.0, 0.0, 15.0, 0.0, 15.0, 10.0, 5.0, 10.0]]  # same, shifted 5 px right


def test_polygon_squares_rasterise_to_exact_areas_and_iou():
    a = geometry.polygon_to_rle(SQUARE_A, 20, 20)
    b = geometry.polygon_to_rle(SQUARE_B, 20, 20)
    assert geometry.rle_area([a, b]).tolist() == [100.0, 100.0]
    assert geometry.mask_iou_matrix([a], [b])[0, 0] == pytest.approx(50 / 150)
    union = geometry.rle_union([a, b])
    assert geometry.rle_area([union])[0] == 150.0
    assert geometry.rle_bbox(a).tolist() == [0.0, 0.0, 10.0, 10.0]


def test_box_iou_matches_hand_computation():
    assert geometry.box_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(1 / 3)
    assert geometry.box_iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0
    matrix = geometry.box_iou_matrix(np.array([[0, 0, 10, 10], [0, 0, 0, 0]]), np.array([[0, 0, 10, 10]]))
    assert matrix.tolist() == [[1.0], [0.0]]
    assert geometry.box_iou([np.inf, np.inf, -np.inf, -np.inf], [0, 0, 10, 10]) == 0.0


def test_bbox_to_rle_covers_the_box():
    rle = geometry.bbox_to_rle([2, 3, 4, 5], 20, 20)
    mask = geometry.rle_to_mask(rle)
    assert mask.sum() == 20 and mask[3:8, 2:6].all()


def test_degenerate_rings_are_dropped_not_crashing():
    # pycocotools reads a 4-number ring as a box and rejects odd lengths: the helper filters them.
    assert geometry.polygon_to_rle([[0, 0, 10, 0]], 20, 20) is None
    rle = geometry.polygon_to_rle([[0, 0, 10, 0], [0, 0, 10, 0, 10, 10, 0, 10, 7]], 20, 20)
    assert geometry.rle_area([rle])[0] == 100.0
    assert geometry.segmentation_to_rle("", 20, 20) is None
    assert geometry.segmentation_to_rle("[]", 20, 20) is None
    assert geometry.segmentation_to_rle("{not json", 20, 20) is None


def test_unknown_image_size_rasterises_on_a_fitting_canvas():
    rle = geometry.segmentation_to_rle(SQUARE_B, None, None)
    assert geometry.rle_area([rle])[0] == 100.0


def test_rle_uncompressed_and_compressed_round_trip():
    mask = np.zeros((7, 9), dtype=bool)
    mask[0, 0] = True  # first pixel set: uncompressed counts must start with a 0-run
    mask[2:5, 3:8] = True
    raw = geometry.mask_to_uncompressed_rle(mask)
    assert raw["counts"][0] == 0 and sum(raw["counts"]) == 63
    from_raw = geometry.segmentation_to_rle(json.dumps(raw), 7, 9)
    assert np.array_equal(geometry.rle_to_mask(from_raw), mask)
    compressed = geometry.rle_to_json(from_raw)
    assert isinstance(compressed["counts"], str)
    text = json.dumps(compressed)
    assert geometry.seg_type_of(json.loads(text)) == "rle_compressed"
    assert geometry.seg_type_of(raw) == "rle"
    assert np.array_equal(geometry.rle_to_mask(geometry.segmentation_to_rle(text, 7, 9)), mask)
    assert np.array_equal(geometry.rle_to_mask(compressed), mask)
    assert np.array_equal(geometry.rle_to_mask(raw), mask)
    assert geometry.rle_area([from_raw])[0] == 16.0


def test_uncompressed_rle_that_does_not_fill_the_frame_is_rejected():
    assert geometry.segmentation_to_rle({"size": [4, 4], "counts": [3, 2]}, 4, 4) is None


def test_rle_area_beyond_pycocotools_uint8_list_limit():
    rle = geometry.polygon_to_rle(SQUARE_A, 20, 20)
    areas = geometry.rle_area([rle] * 600)
    assert areas.shape == (600,) and (areas == 100.0).all()


def test_mask_to_polygons_round_trips_a_square():
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[5:15, 10:30] = 1  # 20 wide, 10 high
    rings = geometry.mask_to_polygons(mask)
    assert len(rings) == 1 and len(rings[0]) >= 6
    xs, ys = rings[0][0::2], rings[0][1::2]
    assert (min(xs), max(xs), min(ys), max(ys)) == (10, 29, 5, 14)  # contour runs through pixel centres
    assert geometry.mask_to_polygons(np.zeros((5, 5))) == []


def test_scale_polygons_exactly():
    scaled = geometry.scale_segmentation(SQUARE_B, 0.5, 2.0)
    assert scaled == [[2.5, 0.0, 7.5, 0.0, 7.5, 20.0, 2.5, 20.0]]
    assert geometry.scale_segmentation("", 0.5, 0.5) == []


@pytest.mark.parametrize("compressed", [True, False])
def test_scale_rle_keeps_its_form_and_scales_area(compressed):
    mask = np.zeros((20, 20), dtype=bool)
    mask[4:14, 2:12] = True
    seg = (
        geometry.rle_to_json(geometry.mask_to_rle(mask))
        if compressed
        else geometry.mask_to_uncompressed_rle(mask)
    )
    scaled = geometry.scale_segmentation(seg, 0.5, 0.5)
    assert scaled["size"] == [10, 10]
    assert isinstance(scaled["counts"], str if compressed else list)
    out = geometry.rle_to_mask(scaled)
    assert out.sum() == 25 and out[2:7, 1:6].all()


def test_box_union_area_exact_and_equal_to_rasterised_union_for_whole_pixel_boxes():
    assert geometry.box_union_area(np.array([[0, 0, 10, 10], [5, 0, 10, 10]]), 20, 20) == 150.0
    assert geometry.box_union_area(np.array([[15, 15, 10, 10]]), 20, 20) == 25.0  # clipped to the frame
    assert geometry.box_union_area(np.array([[0, 0, 0, 5], [np.inf, 0, 1, 1]]), 20, 20) == 0.0
    rng = np.random.default_rng(0)
    boxes = np.column_stack([rng.integers(0, 50, (40, 2)), rng.integers(1, 30, (40, 2))]).astype(float)
    union = geometry.rle_union(geometry.bboxes_to_rles(boxes, 60, 70))
    assert geometry.box_union_area(boxes, 60, 70) == geometry.rle_area([union])[0]
