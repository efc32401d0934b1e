"""Label (object and table) metrics as Ray Data tasks partitioned by image, for ``--engine ray``.

Every built-in label metric of :mod:`metrics.objects` reads only the rows of one image at a time
(its objects and its image record): areas, border, duplicates within the image, invalid geometry,
object/class counts, union density. So the tables are cut into partitions of whole images, each
partition runs the very functions of the local engine in a Ray task, and the driver puts the values
back in row order. Relative row order inside a partition is kept, so the per-image arithmetic (and
its floats) is the local engine's. Metrics not known to be per-image (custom plugins may use
dataset-wide statistics) are left to the caller, which computes them on the whole tables. The
partitions are metrics/label_partitions.py's, which the local engine uses too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from metrics.label_partitions import image_partitions, nan_values, put_back

# Objects per partition: ~1-2 s of work each (object_geometry ~11 µs an object), enough to amortise
# a Ray task's overhead, small enough that 10M objects make ~200 tasks to spread over a cluster.
OBJECTS_PER_PARTITION = 50_000

RESULT_SCHEMA = pa.schema([("part", pa.int64()), ("name", pa.string()), ("values", pa.binary())])


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

    out = nan_values(objects, images, names)
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
                put_back(out, name, partitions[part], np.frombuffer(values, dtype="float64"))
    finally:
        if started:
            ray.shutdown()
    return out
