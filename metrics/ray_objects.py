"""Label (object and table) metrics as Ray Data tasks partitioned by image, for ``--engine ray``.

Every built-in label metric of :mod:`metrics.objects` reads only the rows of one image at a time
(its objects and its image record): areas, border, duplicates within the image, invalid geometry,
object/class counts, union density. So the tables are cut into partitions of whole images, each
partition runs the very functions of the local engine in a Ray task, and the driver puts the values
back in row order. Relative row order inside a partition is kept, so the per-image arithmetic (and
its floats) is the local engine's. Metrics not known to be per-image (custom plugins may use
dataset-wide statistics) are left to the caller, which computes them on the whole tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

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

# Objects per partition: ~1-2 s of work each (object_geometry ~11 µs an object), enough to amortise
# a Ray task's overhead, small enough that 10M objects make ~200 tasks to spread over a cluster.
OBJECTS_PER_PARTITION = 50_000

RESULT_SCHEMA = pa.schema([("part", pa.int64()), ("name", pa.string()), ("values", pa.binary())])


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


def frame_to_ipc(frame: pd.DataFrame) -> bytes:
    """A partition's frame as Arrow IPC stream bytes: typed columns, no pickle (its dtypes come back
    through the pandas metadata Arrow keeps)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def frame_from_ipc(data: bytes) -> pd.DataFrame:
    """The frame :func:`frame_to_ipc` wrote."""
    return pa.ipc.open_stream(data).read_all().to_pandas()


def partition_values(batch: pa.Table, names: Sequence[str]) -> pa.Table:
    """Ray Data task: every named metric on each partition of the batch (one row per metric)."""
    from metrics import registry

    registry.ensure_builtin_loaded()
    specs = registry.specs_by_name()
    rows = []
    for part, objects_ipc, images_ipc in zip(
        batch["part"].to_pylist(), batch["objects"].to_pylist(), batch["images"].to_pylist(), strict=True
    ):
        objects, images = frame_from_ipc(objects_ipc), frame_from_ipc(images_ipc)
        for name in names:
            values = np.asarray(specs[name].func(objects, images), dtype="float64")
            rows.append({"part": part, "name": name, "values": values.tobytes()})
    return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)


def ray_table_values(
    objects: pd.DataFrame,
    images: pd.DataFrame,
    names: Sequence[str],
    workers: int = 2,
    objects_per_partition: int = OBJECTS_PER_PARTITION,
) -> dict[str, np.ndarray]:
    """name → values in the tables' row order, computed by Ray tasks over partitions of whole images."""
    names = list(names)
    if not names:
        return {}
    import ray
    import ray.data

    from metrics.ray_engine import _quiet_ray_data, start_ray

    level_rows = {name: len(images) if _image_level(name) else len(objects) for name in names}
    out = {name: np.full(rows, np.nan) for name, rows in level_rows.items()}
    if not len(objects) and not len(images):
        return out
    started = start_ray(workers)
    try:
        _quiet_ray_data()
        cpus = max(1, workers) if started else int(ray.cluster_resources().get("CPU", workers))
        parts = max(cpus, -(-len(objects) // objects_per_partition))
        partitions = image_partitions(objects, images, parts)
        items = [
            {
                "part": part,
                "objects": frame_to_ipc(objects.iloc[object_rows].reset_index(drop=True)),
                "images": frame_to_ipc(images.iloc[image_rows].reset_index(drop=True)),
            }
            for part, (object_rows, image_rows) in enumerate(partitions)
        ]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            partition_values,
            fn_kwargs={"names": names},
            batch_size=1,
            batch_format="pyarrow",
            num_cpus=1,
        )
        del items
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for part, name, values in zip(
                batch["part"].to_pylist(), batch["name"].to_pylist(), batch["values"].to_pylist(), strict=True
            ):
                object_rows, image_rows = partitions[part]
                rows = image_rows if _image_level(name) else object_rows
                out[name][rows] = np.frombuffer(values, dtype="float64")
    finally:
        if started:
            ray.shutdown()
    return out


def _image_level(name: str) -> bool:
    from metrics import registry

    registry.ensure_builtin_loaded()
    return registry.get(name).level == "image"
