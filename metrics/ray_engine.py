"""The per-image pass as a Ray Data job, for datasets that outgrow one machine.

``ray.data.from_items(records).map_batches(ImageBatch)`` runs :func:`metrics.image.compute_image`
in Ray actors (one per CPU, each loading the project's metric plugins once) and streams Arrow
batches of :data:`metrics.engines.IMAGE_ROW_COLUMNS` back to the driver, which writes them as the
importer's checkpoint Parquet chunks. Same function, same rows: values equal the local engine's.

Why Ray rather than a home-made scheduler: it already does placement, retries of lost workers,
back-pressure and cluster start-up (``RAY_ADDRESS``), and reads object storage through pyarrow.

Cluster: set ``RAY_ADDRESS=ray://head:10001`` (or ``auto`` on a cluster node); without it a local
Ray instance with ``workers`` CPUs is started for the pass and stopped after it. Images may live on
a path every node mounts or at ``s3://`` / ``gs://`` URLs, read with ``pyarrow.fs`` (credentials from
the usual environment: AWS_* variables, instance roles; ``AWS_ENDPOINT_URL`` for S3-compatible
stores such as MinIO).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from metrics.engines import IMAGE_ROW_COLUMNS, is_url, result_row

# Images per Ray task batch: amortises per-task overhead (~ms) without starving 2-CPU machines.
BATCH_SIZE = 64

# Ray waits a fixed 30 s for a new local raylet to register; on an overloaded machine the first
# start can miss that window, and a second start (warm caches) makes it.
START_ATTEMPTS = 3

ROW_SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        ("image_id", pa.int64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("decoded_width", pa.int64()),
        ("decoded_height", pa.int64()),
        ("exif_orientation", pa.int64()),
        ("orientation_applied", pa.bool_()),
        ("file_size", pa.int64()),
        ("content_hash", pa.string()),
        ("pixel_hash", pa.string()),
        ("phash", pa.int64()),
        ("metrics_json", pa.string()),
    ]
)
assert ROW_SCHEMA.names[1:] == IMAGE_ROW_COLUMNS


def _fetch(url: str, folder: str) -> str | None:
    """Copy a remote image to a local temp file; None when it does not exist."""
    from pyarrow import fs

    filesystem, remote = fs.FileSystem.from_uri(url)
    info = filesystem.get_file_info(remote)
    if info.type != fs.FileType.File:
        return None
    local = os.path.join(folder, "image" + Path(remote).suffix)
    with filesystem.open_input_stream(remote) as source, open(local, "wb") as target:
        while chunk := source.read(1 << 20):
            target.write(chunk)
    return local


def compute_record(record: dict[str, Any]) -> dict[str, Any]:
    """compute_image for a record whose path may be a URL (fetched once, measured like a local file)."""
    from metrics.image import compute_image

    path = str(record.get("path") or "")
    if not is_url(path):
        return compute_image(record)
    with tempfile.TemporaryDirectory(prefix="cocolens-") as folder:
        try:
            local = _fetch(path, folder)
        except OSError as exc:
            local = None
            fetch_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"[:300]
        else:
            fetch_error = ""
        if local is None:
            result = compute_image({**record, "path": ""})
            result["error"] = fetch_error or f"file not found: {path}"
            result["status"] = "unreadable" if fetch_error else "missing"
            return result
        result = compute_image({**record, "path": local})
    result["error"] = str(result.get("error") or "").replace(local, path)
    return result


class ImageBatch:
    """Ray Data actor: loads metric plugins once, then computes batches of image records."""

    def __init__(self, plugins: Sequence[str] = ()):
        from metrics import registry

        registry.ensure_builtin_loaded()
        for plugin in plugins:
            registry.load_plugin(plugin)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for item in batch.to_pylist():
            record = json.loads(item["record_json"])
            row = result_row(item["image_id"], compute_record(record))
            rows.append({"index": item["index"], **row})
        return pa.Table.from_pylist(rows, schema=ROW_SCHEMA)


def _quiet_ray_data() -> None:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)


def start_ray(workers: int) -> bool:
    """Connect to ``RAY_ADDRESS`` or start a local instance; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    metrics_dir = str(Path(__file__).resolve().parent)
    runtime_env = {"py_modules": [metrics_dir]}  # ships this package to every node
    if os.environ.get("RAY_ADDRESS"):
        ray.init(runtime_env=runtime_env, logging_level=logging.WARNING, log_to_driver=True)
        return True
    for attempt in range(START_ATTEMPTS):
        try:
            ray.init(
                num_cpus=max(1, workers),
                include_dashboard=False,
                runtime_env=runtime_env,
                logging_level=logging.WARNING,
            )
            return True
        except Exception as exc:  # Ray raises a bare Exception when its raylet registers too late
            ray.shutdown()
            if "timed out during startup" not in str(exc) or attempt + 1 == START_ATTEMPTS:
                raise
    return True


def ray_image_rows(
    records: list[dict[str, Any]],
    image_ids: Sequence[int],
    workers: int = 2,
    plugins: Sequence[str] = (),
    batch_size: int = BATCH_SIZE,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(index, row)`` for every record, computed by Ray Data (completion order)."""
    if not records:
        return
    import ray
    import ray.data

    started = start_ray(workers)
    try:
        _quiet_ray_data()
        cpus = int(ray.cluster_resources().get("CPU", workers)) if not started else max(1, workers)
        items = [
            {"index": i, "image_id": int(image_ids[i]), "record_json": json.dumps(record, default=str)}
            for i, record in enumerate(records)
        ]
        actors = max(1, min(cpus, len(items)))
        # Enough blocks for every actor to have work (and for back-pressure), not one per batch.
        blocks = min(len(items), max(actors, min(-(-len(items) // batch_size), 32 * actors)))
        batch_size = max(1, min(batch_size, -(-len(items) // actors)))
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            ImageBatch,
            fn_constructor_kwargs={"plugins": list(plugins)},
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        del items
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                index = row.pop("index")
                yield int(index), row
    finally:
        if started:
            ray.shutdown()
