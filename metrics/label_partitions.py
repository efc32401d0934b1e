"""Per-image label metrics computed one partition of whole images at a time, in this process.

Every built-in label metric reads only one image's rows at a time (metrics/ray_objects.py lists
them and proves the partitioned values equal the whole-table ones). On the whole tables at once,
10M objects took the importer to 13.7 GB: ``object_geometry`` holds the parsed geometry and RLEs
of every object, and its cache key hashes every row. Cut into partitions of ~500k objects, the
working set is one partition's, and the values are the same floats (same functions, row order
kept inside each partition).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from metrics import registry
from metrics.ray_objects import image_partitions

# Objects per partition: ~8 CPU-s and ~0.6 GB of working set each (half the 1M-object label-metric
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
    metrics (:func:`metrics.ray_objects.partitionable`); each
    partition runs every named metric before the next partition is cut, so the metrics share that
    partition's geometry (the single-entry cache of :func:`metrics.objects.object_geometry`).
    """
    specs = registry.specs_by_name()
    out = {
        name: np.full(len(images) if specs[name].level == "image" else len(objects), np.nan) for name in names
    }
    if not names or (not len(objects) and not len(images)):
        return out
    size = objects_per_partition or OBJECTS_PER_PARTITION
    parts = max(1, -(-len(objects) // max(1, size)))
    for object_rows, image_rows in image_partitions(objects, images, parts):
        part_objects = objects.iloc[object_rows].reset_index(drop=True)
        part_images = images.iloc[image_rows].reset_index(drop=True)
        for name in names:
            rows = image_rows if specs[name].level == "image" else object_rows
            out[name][rows] = np.asarray(specs[name].func(part_objects, part_images), dtype="float64")
        del part_objects, part_images
    return out
