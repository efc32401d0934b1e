"""Property tests of polygon / RLE conversion (metrics/geometry.py) on random shapes."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.geometry import (
    mask_to_rle,
    mask_to_uncompressed_rle,
    polygon_to_rle,
    rle_area,
    rle_from_dict,
    rle_to_json,
    rle_to_mask,
    scale_segmentation,
    segmentation_to_rle,
)


@st.composite
def star_polygons(draw):
    """A simple polygon: star-shaped around a centre that lies inside it.

    One vertex per equal angular sector, jittered within its first 45%, so consecutive vertices are
    less than 180° apart around the centre; points merely sorted by angle are not enough (with a gap
    over 180° the closing edge can cross the others).
    """
    cx, cy = draw(st.floats(30, 70)), draw(st.floats(30, 70))
    n = draw(st.integers(3, 12))
    offset = draw(st.floats(0, 2 * math.pi, exclude_max=True))
    jitter = draw(st.lists(st.floats(0, 0.45), min_size=n, max_size=n))
    angles = [offset + 2 * math.pi * (i + j) / n for i, j in enumerate(jitter)]
    radii = draw(st.lists(st.floats(3, 28), min_size=n, max_size=n))
    return [
        v for a, r in zip(angles, radii, strict=True) for v in (cx + r * math.cos(a), cy + r * math.sin(a))
    ]


def _shoelace(ring: list[float]) -> float:
    x, y = np.asarray(ring[0::2]), np.asarray(ring[1::2])
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _perimeter(ring: list[float]) -> float:
    pts = np.asarray(ring).reshape(-1, 2)
    return float(np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1).sum())


@settings(max_examples=100, deadline=None)
@given(ring=star_polygons())
def test_polygon_rle_area_matches_shoelace_within_the_boundary_pixels(ring):
    area = float(rle_area([polygon_to_rle([ring], 100, 100)])[0])
    exact = _shoelace(ring)
    # rasterising decides each boundary pixel in or out: the error is bounded by ~ one pixel per unit of perimeter
    assert abs(area - exact) <= 0.75 * _perimeter(ring) + 4, (area, exact)


def test_star_polygons_are_simple():
    """The generator above must only draw simple polygons, or the shoelace area means nothing."""

    def crosses(p1, p2, p3, p4) -> bool:
        def side(o, a, b):
            return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

        return side(p3, p4, p1) * side(p3, p4, p2) < 0 and side(p1, p2, p3) * side(p1, p2, p4) < 0

    @settings(max_examples=300, deadline=None)
    @given(ring=star_polygons())
    def check(ring):
        points = list(zip(ring[0::2], ring[1::2], strict=True))
        edges = [(points[i], points[(i + 1) % len(points)]) for i in range(len(points))]
        n = len(edges)
        for i in range(n):
            for j in range(i + 2, n):
                if not (i == 0 and j == n - 1):
                    assert not crosses(*edges[i], *edges[j]), (i, j, ring)

    check()


@st.composite
def masks(draw, min_side: int = 1, max_side: int = 40):
    height, width = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    flat = draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    return np.asarray(flat, dtype=bool).reshape(height, width)


@settings(max_examples=100, deadline=None)
@given(mask=masks())
def test_rle_compressed_and_uncompressed_round_trip(mask):
    uncompressed = mask_to_uncompressed_rle(mask)
    assert sum(uncompressed["counts"]) == mask.size
    from_counts = rle_from_dict(uncompressed)
    assert np.array_equal(rle_to_mask(from_counts), mask)
    compressed = rle_to_json(mask_to_rle(mask))
    assert isinstance(compressed["counts"], str)
    assert np.array_equal(rle_to_mask(rle_from_dict(compressed)), mask)
    assert rle_to_json(from_counts) == compressed, "both forms encode to the same compressed string"
    assert float(rle_area([from_counts])[0]) == mask.sum()


@st.composite
def blobs(draw):
    """A mask of 1–3 axis-aligned rectangles, each at least 24 px a side, in a 64–96 px frame."""
    height, width = draw(st.integers(64, 96)), draw(st.integers(64, 96))
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(draw(st.integers(1, 3))):
        h, w = draw(st.integers(24, 40)), draw(st.integers(24, 40))
        y, x = draw(st.integers(0, height - h)), draw(st.integers(0, width - w))
        mask[y : y + h, x : x + w] = True
    return mask


def _fit(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop or zero-pad to shape (a round trip through rounding may gain or lose one border row)."""
    out = np.zeros(shape, dtype=bool)
    h, w = min(shape[0], mask.shape[0]), min(shape[1], mask.shape[1])
    out[:h, :w] = mask[:h, :w]
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / float((a | b).sum())


SCALES = st.floats(0.5, 4.0)


@settings(max_examples=40, deadline=None)
@given(mask=blobs(), scale=SCALES, compressed=st.booleans())
def test_scaling_an_rle_there_and_back_keeps_iou_high(mask, scale, compressed):
    seg = rle_to_json(mask_to_rle(mask)) if compressed else mask_to_uncompressed_rle(mask)
    there = scale_segmentation(seg, scale, scale)
    assert isinstance(there["counts"], str) == compressed, "the RLE keeps its form"
    back = scale_segmentation(there, 1 / scale, 1 / scale)
    restored = _fit(rle_to_mask(rle_from_dict(back)), mask.shape)
    # nearest-neighbour moves each edge by up to ⌈1/s⌉ px on the way down: a 24 px side keeps IoU ≥ 0.6;
    # going up first loses only the rounding of the size
    assert _iou(restored, mask) >= (0.8 if scale >= 1 else 0.6), (scale, _iou(restored, mask))


@settings(max_examples=40, deadline=None)
@given(ring=star_polygons(), scale=SCALES)
def test_scaling_a_polygon_there_and_back_is_exact(ring, scale):
    back = scale_segmentation(scale_segmentation([ring], scale, scale), 1 / scale, 1 / scale)
    np.testing.assert_allclose(back[0], ring, rtol=1e-9, atol=1e-9)
    a = rle_to_mask(segmentation_to_rle([ring], 100, 100))
    b = rle_to_mask(segmentation_to_rle(back, 100, 100))
    assert _iou(a, b) >= 0.99


@settings(max_examples=200, deadline=None)
@given(
    mask=st.integers(1, 30).flatmap(
        lambda h: st.integers(1, 30).flatmap(
            lambda w: st.lists(st.booleans(), min_size=h * w, max_size=h * w).map(
                lambda bits: np.asarray(bits, dtype=bool).reshape(h, w)
            )
        )
    ),
    new_size=st.tuples(st.integers(1, 70), st.integers(1, 70)),
)
def test_scaling_rle_runs_equals_opencv_nearest_neighbour(mask, new_size):
    """scale_runs (used for frames above 16 MP, where a dense mask would be gigabytes) is cv2's resize."""
    import cv2

    from metrics.geometry import scale_runs

    new_h, new_w = new_size
    runs = np.asarray(mask_to_uncompressed_rle(mask)["counts"])
    got = scale_runs(runs, mask.shape[0], mask.shape[1], new_h, new_w).tolist()
    dense = cv2.resize(mask.astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    assert got == mask_to_uncompressed_rle(dense)["counts"]


@settings(max_examples=100, deadline=None)
@given(
    masks=st.lists(
        st.lists(st.booleans(), min_size=12 * 9, max_size=12 * 9).map(
            lambda bits: np.asarray(bits, dtype=bool).reshape(12, 9)
        ),
        min_size=2,
        max_size=4,
    )
)
def test_union_on_runs_equals_pycocotools_merge(masks):
    """The run-based union (frames above 16 MP) gives pycocotools' merge, byte for byte."""
    from pycocotools import mask as mask_utils

    from metrics.geometry import _union_on_runs

    rles = [mask_to_rle(m) for m in masks]
    assert _union_on_runs(rles, 12, 9)["counts"] == mask_utils.merge(rles)["counts"]


@settings(max_examples=200, deadline=None)
@given(
    mask=st.lists(st.booleans(), min_size=1, max_size=400).map(
        lambda bits: np.asarray(bits, dtype=bool)[:, None]
    )
)
def test_compressed_rle_counts_decode_as_pycocotools_writes_them(mask):
    from metrics.geometry import rle_string_counts

    encoded = mask_to_rle(mask)["counts"]
    assert rle_string_counts(encoded).tolist() == mask_to_uncompressed_rle(mask)["counts"]
