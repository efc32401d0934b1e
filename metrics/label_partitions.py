"""Label metrics by partitions of whole images: which metrics allow it, the cut, and the local pass.

Every built-in label metric of :mod:`metrics.objects` reads only one image's rows at a time
(its objects and its image record), so cutting the tables into partitions of whole images and
running the same functions on each gives the same floats (row order is kept inside a partition;
tests/metrics/test_ray_objects.py and test_label_partitions.py check it). Ray runs partitions as
tasks (metrics/ray_objects.py); this module runs them here one at a time, for memory: on the
whole tables at once, 10M objects took the importer to 13.7 GB (``object_geometry`` holds the
parsed geometry and RLEs of every object, and its cache key hashes every row); in partitions of
~500k objects the working set is one partition's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from metrics import registry

# The built-in metrics whose value for a row depends on that row's image alone.
PER_IMAGE_METRICS = frozenset(
    {
        "object_area",
        "object_area_relative",
        "object_aspect_ratio",
        "border_closeness",
        "annotation_duplicate_iou",
        "invalid_geometry",
        "object_count",
        "class_count",
        "frame_object_density",
    }
)
PER_IMAGE_MODULE = "metrics.objects"


def partitionable(name: str, module: str) -> bool:
    """True for a metric this module may compute per partition (a built-in per-image one)."""
    return name in PER_IMAGE_METRICS and module == PER_IMAGE_MODULE


def image_partitions(
    objects: pd.DataFrame, images: pd.DataFrame, parts: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(object rows, image rows) of each partition: whole images, ~equal object counts, row order kept.

    Keyed by image id over both tables, so an image's records and objects (and objects whose image
    has no record) always travel together.
    """
    object_ids = objects["image_id"].to_numpy(dtype=np.int64)
    image_ids = images["image_id"].to_numpy(dtype=np.int64)
    keys, inverse = np.unique(np.concatenate([image_ids, object_ids]), return_inverse=True)
    image_keys, object_keys = inverse[: len(image_ids)], inverse[len(image_ids) :]
    weight = np.bincount(object_keys, minlength=len(keys)) + 1  # +1: images without objects cost too
    parts = max(1, min(parts, len(keys)))
    part_of_key = np.minimum((np.cumsum(weight) - weight) * parts // max(1, int(weight.sum())), parts - 1)
    object_part, image_part = part_of_key[object_keys], part_of_key[image_keys]
    partitions = []
    for part in range(parts):
        object_rows, image_rows = np.flatnonzero(object_part == part), np.flatnonzero(image_part == part)
        if len(object_rows) or len(image_rows):
            partitions.append((object_rows, image_rows))
    return partitions


def nan_values(objects: pd.DataFrame, images: pd.DataFrame, names: Sequence[str]) -> dict[str, np.ndarray]:
    """name → NaN for every row of the metric's level (objects, or images for image-level metrics)."""
    specs = registry.specs_by_name()
    return {
        name: np.full(len(images) if specs[name].level == "image" else len(objects), np.nan) for name in names
    }


def put_back(
    out: dict[str, np.ndarray], name: str, partition: tuple[np.ndarray, np.ndarray], values: np.ndarray
) -> None:
    """Write one partition's values of ``name`` into ``out`` at that partition's rows of the metric's level."""
    object_rows, image_rows = partition
    out[name][image_rows if _image_level(name) else object_rows] = values


def _image_level(name: str) -> bool:
    return registry.specs_by_name()[name].level == "image"


# Objects per partition here: ~8 CPU-s and ~0.6 GB of working set each (half the 1M-object label-metric
# figures in docs/BENCHMARKS.md); tables up to store.metric_runner.PARTITION_ABOVE_OBJECTS stay whole.
OBJECTS_PER_PARTITION = 500_000


def table_values_by_partition(
    objects: pd.DataFrame,
    images: pd.DataFrame,
    names: Sequence[str],
    objects_per_partition: int | None = None,
) -> dict[str, np.ndarray]:
    """name → values in the tables' row order (one per object, or per image for image-level metrics).

    ``objects_per_partition`` defaults to :data:`OBJECTS_PER_PARTITION`. ``names`` must be per-image
    metrics (:func:`partitionable`); each
    partition runs every named metric before the next partition is cut, so the metrics share that
    partition's geometry (the single-entry cache of :func:`metrics.objects.object_geometry`).
    """
    specs = registry.specs_by_name()
    out = nan_values(objects, images, names)
    if not names or (not len(objects) and not len(images)):
        return out
    size = objects_per_partition or OBJECTS_PER_PARTITION
    parts = max(1, -(-len(objects) // max(1, size)))
    for partition in image_partitions(objects, images, parts):
        part_objects = objects.iloc[partition[0]].reset_index(drop=True)
        part_images = images.iloc[partition[1]].reset_index(drop=True)
        for name in names:
            values = np.asarray(specs[name].func(part_objects, part_images), dtype="float64")
            put_back(out, name, partition, values)
        del part_objects, part_images
    return out
