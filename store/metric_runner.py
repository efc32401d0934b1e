"""Compute metrics for a dataset's tables and write one file per metric.

Shared by the import (first computation) and ``cocolens metrics`` (new or changed metrics only).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from metrics import registry
from metrics.registry import MetricSpec
from store.errors import InputError
from store.metric_files import metric_frame, stored_versions, write_metric


def table_specs() -> list[MetricSpec]:
    """Metrics computed from the label tables (no pixels needed)."""
    return registry.all_specs(level="object") + registry.all_specs(level="image", kind="table")


def pixel_specs() -> list[MetricSpec]:
    return registry.all_specs(level="image", kind="pixel")


# Objects above which the local engine computes the per-image label metrics partition by partition
# (whole tables at once: 13.7 GB importer peak at 10M objects).
PARTITION_ABOVE_OBJECTS = 2_000_000


def compute_table_metrics(
    dataset: str,
    dataset_dir: Path,
    objects: pd.DataFrame,
    images: pd.DataFrame,
    only: Iterable[str] | None = None,
    engine: str = "local",
    workers: int = 2,
) -> list[str]:
    """Run every table metric (or the named ones) and write its file; return the names written.

    With ``engine='ray'`` the built-in per-image metrics run as Ray tasks over partitions of whole
    images (metrics/ray_objects.py, the same values); above :data:`PARTITION_ABOVE_OBJECTS` on the
    local engine they run here one partition at a time (metrics/label_partitions.py: bounded
    memory, the same values); the others run here on the whole tables.
    """
    wanted = set(only) if only is not None else None
    specs = [s for s in table_specs() if s.func is not None and (wanted is None or s.name in wanted)]
    partitioned: dict[str, np.ndarray] = {}
    if engine == "ray" or len(objects) > PARTITION_ABOVE_OBJECTS:
        from metrics.label_partitions import partitionable

        names = [s.name for s in specs if partitionable(s.name, s.func.__module__)]
        if engine == "ray":
            from metrics.ray_objects import ray_table_values

            partitioned = ray_table_values(objects, images, names, workers=workers)
        else:
            from metrics.label_partitions import table_values_by_partition

            partitioned = table_values_by_partition(objects, images, names)
    written = []
    for spec in specs:
        try:
            values = partitioned.get(spec.name)
            if values is None:
                values = np.asarray(spec.func(objects, images), dtype="float64")
        except Exception as exc:  # a custom metric's bug must name the metric, not crash anonymously
            raise InputError(
                f"metric {spec.name}", f"raised {type(exc).__name__}: {exc}", record=f"dataset {dataset}"
            ) from exc
        if spec.level == "object":
            expected = len(objects)
            frame_ids = (objects["image_id"].to_numpy(), objects["object_id"].to_numpy())
        else:
            expected = len(images)
            frame_ids = (images["image_id"].to_numpy(), None)
        if values.shape != (expected,):
            raise InputError(
                f"metric {spec.name}",
                f"returned {values.shape} values, expected {expected} (one per {spec.level})",
                record=f"dataset {dataset}",
            )
        write_metric(dataset_dir, spec, metric_frame(dataset, spec, frame_ids[0], values, frame_ids[1]))
        written.append(spec.name)
    return written


def write_pixel_metrics(
    dataset: str,
    dataset_dir: Path,
    image_ids: np.ndarray,
    metric_dicts: list[dict],
    only: Iterable[str] | None = None,
) -> list[str]:
    """Write image metrics that came out of the one-decode image pass."""
    wanted = set(only) if only is not None else None
    written = []
    for spec in pixel_specs():
        if wanted is not None and spec.name not in wanted:
            continue
        values = [d.get(spec.name) if d else None for d in metric_dicts]
        write_metric(dataset_dir, spec, metric_frame(dataset, spec, image_ids, values))
        written.append(spec.name)
    return written


def stale_metrics(dataset_dir: Path) -> tuple[list[str], list[str]]:
    """(pixel, table) metric names whose stored version is missing or differs from the registry."""
    stored = stored_versions(dataset_dir)
    pixel = [s.name for s in pixel_specs() if stored.get(s.name) != s.version]
    table = [s.name for s in table_specs() if s.func is not None and stored.get(s.name) != s.version]
    return pixel, table
