"""Label metrics partitioned by image (metrics/ray_objects.py) equal the whole-table ones.

The partitions and the per-partition task are checked here without Ray (the task is a plain
function over an Arrow batch); tests/metrics/test_ray_engine.py runs the same set through Ray.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from metrics import geometry, registry
from metrics.label_partitions import PER_IMAGE_METRICS, image_partitions, partitionable
from metrics.ray_objects import frame_from_ipc, frame_to_ipc, partition_values
from tests.metrics.test_objects import EDGE_SEGMENTATIONS, frames, run_all


def generated_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Objects of every kind over 30 images: polygons, RLEs (compressed and not), crowd regions,
    box-only objects, duplicates, broken geometry, an image without objects and objects whose image
    has no record."""
    rng = np.random.default_rng(seed)
    sizes = [(int(rng.integers(20, 90)), int(rng.integers(20, 70))) for _ in range(30)]
    images = [(image_id, w, h) for image_id, (w, h) in enumerate(sizes)]
    rows = []
    for image_id, (w, h) in enumerate(sizes[:-1]):  # the last image has no objects
        for k in range(int(rng.integers(1, 9))):
            x, y = float(rng.uniform(-3, w - 5)), float(rng.uniform(-3, h - 5))
            bw, bh = float(rng.uniform(1, w / 2)), float(rng.uniform(1, h / 2))
            row = {"image_id": image_id, "bbox": [x, y, bw, bh], "category_id": int(rng.integers(1, 4))}
            kind = (image_id + k) % 6
            if kind == 1:
                row["seg"] = [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]
            elif kind in (2, 3):
                mask = np.zeros((h, w), np.uint8)
                mask[max(0, int(y)) : int(y + bh), max(0, int(x)) : int(x + bw)] = 1
                rle = geometry.mask_to_rle(mask)
                row["seg"] = (
                    geometry.rle_to_json(rle) if kind == 2 else geometry.mask_to_uncompressed_rle(mask)
                )
                row["iscrowd"] = int(kind == 3)
            elif kind == 4 and rows:
                row = {**rows[-1], "image_id": image_id}  # a copy: the duplicate-IoU metric sees it
            elif kind == 5:
                row["seg"] = EDGE_SEGMENTATIONS[int(rng.integers(0, len(EDGE_SEGMENTATIONS)))]
            rows.append(row)
    rows.append({"image_id": 999, "bbox": [1.0, 1.0, 4.0, 4.0], "seg": [[1, 1, 5, 1, 5, 5]]})
    rows.append({"image_id": 3, "bbox": [np.inf, 0.0, 5.0, 5.0]})
    objects, images_frame = frames(rows, images)
    images_frame = images_frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return objects.sample(frac=1.0, random_state=seed).reset_index(drop=True), images_frame


def partitioned_values(objects: pd.DataFrame, images: pd.DataFrame, parts: int) -> dict[str, np.ndarray]:
    """What ray_table_values assembles, with each partition's task run here instead of on Ray."""
    names = sorted(PER_IMAGE_METRICS)
    out = {
        name: np.full(len(images if registry.get(name).level == "image" else objects), np.nan)
        for name in names
    }
    partitions = image_partitions(objects, images, parts)
    batch = pa.table(
        {
            "part": list(range(len(partitions))),
            "objects": [frame_to_ipc(objects.iloc[o].reset_index(drop=True)) for o, _ in partitions],
            "images": [frame_to_ipc(images.iloc[i].reset_index(drop=True)) for _, i in partitions],
        }
    )
    result = partition_values(batch, names)
    for part, name, values in zip(*(result[c].to_pylist() for c in ("part", "name", "values")), strict=True):
        object_rows, image_rows = partitions[part]
        rows = image_rows if registry.get(name).level == "image" else object_rows
        out[name][rows] = np.frombuffer(values, dtype="float64")
    return out


def test_partitions_hold_whole_images_and_every_row_once():
    objects, images = generated_tables()
    partitions = image_partitions(objects, images, parts=7)
    assert len(partitions) == 7
    object_rows = np.concatenate([o for o, _ in partitions])
    image_rows = np.concatenate([i for _, i in partitions])
    assert sorted(object_rows.tolist()) == list(range(len(objects)))
    assert sorted(image_rows.tolist()) == list(range(len(images)))
    owner = {}
    for part, (o, i) in enumerate(partitions):
        assert (np.diff(o) > 0).all() and (np.diff(i) > 0).all()  # row order kept inside a partition
        for image_id in [*objects["image_id"].iloc[o], *images["image_id"].iloc[i]]:
            assert owner.setdefault(image_id, part) == part  # an image never spans two partitions
    counts = [len(o) for o, _ in partitions]
    assert max(counts) <= 3 * (len(objects) / 7)  # balanced by objects, not by images


def test_more_partitions_than_images_and_empty_tables():
    objects, images = generated_tables()
    partitions = image_partitions(objects, images, parts=10_000)  # at most one partition an image
    assert len(images) // 2 < len(partitions) <= len(set(images["image_id"]) | {999})
    assert sum(len(o) for o, _ in partitions) == len(objects)
    assert image_partitions(objects.iloc[:0], images.iloc[:0], parts=4) == []


@pytest.mark.parametrize("parts", [1, 3, 11])
def test_partitioned_values_equal_the_whole_table_ones(parts):
    objects, images = generated_tables(seed=parts)
    with np.errstate(all="ignore"):
        expected = run_all(objects, images)
        got = partitioned_values(objects, images, parts)
    for name in PER_IMAGE_METRICS:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)  # NaN where NaN
    assert np.isnan(expected["frame_object_density"]).sum() == 0
    assert (expected["invalid_geometry"] == 1).sum() > 5 and np.nanmax(
        expected["annotation_duplicate_iou"]
    ) == 1.0


def test_only_built_in_per_image_metrics_are_partitioned():
    registry.ensure_builtin_loaded()
    label = registry.all_specs(level="object") + registry.all_specs(level="image", kind="table")
    built_in = {s.name for s in label if s.func is not None and s.func.__module__ == "metrics.objects"}
    assert PER_IMAGE_METRICS == built_in  # a new built-in label metric must be classified here
    assert partitionable("object_area", "metrics.objects")
    assert not partitionable("object_area", "my_plugin")
    assert not partitionable("dataset_zscore", "metrics.objects")


def test_partition_frames_cross_as_arrow_with_their_dtypes():
    objects, images = generated_tables()
    images = images.assign(status=pd.array(["ok"] * len(images), dtype="string"))
    for frame in (objects, images):
        pd.testing.assert_frame_equal(frame_from_ipc(frame_to_ipc(frame)), frame)
