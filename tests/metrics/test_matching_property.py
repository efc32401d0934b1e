"""Property test: on small random scenes (ties in scores and IoUs, crowd regions, area-range
boundaries) the stats and every match equal pycocotools'."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.metrics.coco_reference import ours, pycocotools_eval, stats_array

GRID = st.integers(0, 6).map(lambda v: v * 10.0)
SIDE = st.sampled_from([10.0, 20.0, 30.0, 32.0, 40.0, 96.0])
AREAS = st.sampled_from([100.0, 1024.0, 2000.0, 9216.0, 12000.0])


@st.composite
def scenes(draw):
    n_images = draw(st.integers(1, 3))
    images = [{"id": i + 1, "width": 200, "height": 200} for i in range(n_images)]
    annotations = []
    for image in images:
        for _ in range(draw(st.integers(0, 5))):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": draw(st.integers(1, 2)),
                    "bbox": [draw(GRID), draw(GRID), draw(SIDE), draw(SIDE)],
                    "area": draw(AREAS),
                    "iscrowd": int(draw(st.integers(0, 5)) == 0),
                    "segmentation": [],
                }
            )
    results = []
    for _ in range(draw(st.integers(1, 12))):
        results.append(
            {
                "image_id": draw(st.integers(1, n_images)),
                "category_id": draw(st.integers(1, 2)),
                "bbox": [draw(GRID), draw(GRID), draw(SIDE), draw(SIDE)],
                "score": draw(st.sampled_from([0.3, 0.5, 0.5, 0.9])),
            }
        )
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1}, {"id": 2}]}
    return coco, results


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_random_scenes_equal_pycocotools(scene) -> None:
    coco, results = scene
    reference = pycocotools_eval(coco, results, "bbox")
    result, evaluation = ours(coco, results, "bbox")
    np.testing.assert_allclose(stats_array(evaluation), reference.stats, rtol=0, atol=1e-9)
    object_ids = np.r_[result.gt["object_id"].to_numpy(), 0]  # row -1 reads as pycocotools' 0
    row_of_pred = {int(p): i for i, p in enumerate(result.predictions["prediction_id"])}
    n_areas, n_images = len(result.area_labels), len(reference.params.imgIds)
    for index, entry in enumerate(reference.evalImgs):
        if entry is None:
            continue
        a = (index // n_images) % n_areas
        rows = [row_of_pred[d] for d in entry["dtIds"]]
        matched = result.pred_match[a][:, rows]
        np.testing.assert_array_equal(object_ids[matched], entry["dtMatches"])
        np.testing.assert_array_equal(result.pred_ignored[a][:, rows], entry["dtIgnore"])
