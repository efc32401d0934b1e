"""Image and object-crop embeddings as a Ray Data job, the vectors streamed to shard files.

``ray.data.from_arrow(items).map_batches(CropEmbedding)`` runs the same crop → resize → backbone path
as :func:`metrics.embeddings.embed_objects` in actors that load the backbone once: one per GPU with
``num_gpus=1`` when the cluster has GPUs, else one per CPU with a single thread each. The driver
receives the vectors batch by batch and writes them to ``.npy`` shards (:mod:`metrics.vector_shards`),
then assembles one row-ordered memory-mapped file: at no point does it hold the whole matrix.

Cluster start-up and the shipping of this package are :func:`metrics.ray_engine.start_ray`'s.
Every node needs the backbone's weights file (``$TORCH_HOME``) and the image paths.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from metrics.vector_shards import ShardWriter, assemble_in_row_order

BOX_COLUMNS = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]
CPU_BATCH = 64  # items per actor call: amortises Ray's per-call cost; ONNX runs them 32 at a time
GPU_BATCH = 256  # a GPU wants larger forward passes (docs/BENCHMARKS.md: 1,346 crops/s at 256)

Progress = Callable[[int, int], None]  # (done, total)


def actor_plan(resources: dict[str, float], device: str | None = None) -> tuple[int, dict[str, float], str]:
    """(actors, resources of each, torch device) for a cluster's ``ray.cluster_resources()``.

    One actor per GPU when there is a GPU (and no CPU device was asked for); otherwise one per CPU.
    """
    gpus = int(resources.get("GPU", 0))
    if gpus >= 1 and device in (None, "cuda"):
        return gpus, {"num_gpus": 1, "num_cpus": 1}, "cuda"
    return max(1, int(resources.get("CPU", 1))), {"num_cpus": 1}, "cpu"


class CropEmbedding:
    """Ray Data actor: the backbone loaded once; batches of items (path, apply_exif, box) → vectors.

    An item whose image cannot be decoded any more gets no vector (no output row), as in the local
    engine; the rest of its batch is kept.
    """

    def __init__(self, backbone: str, device: str, whole_images: bool, threads: int | None = 1):
        from metrics.embeddings import get_embedder

        self.embedder = get_embedder(backbone, device, None if device != "cpu" else threads)
        self.whole_images = whole_images

    def _embed(self, paths: list[str], boxes: np.ndarray, apply_exif: bool) -> np.ndarray:
        from metrics.embeddings import embed_images, embed_objects

        if self.whole_images:
            return embed_images(paths, embedder=self.embedder)
        return embed_objects(paths, boxes, embedder=self.embedder, apply_exif=apply_exif)

    def _embed_skipping_bad(
        self, paths: list[str], boxes: np.ndarray, apply_exif: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mask of embedded items, their vectors): the batch at once, image by image if one fails."""
        try:
            return np.ones(len(paths), dtype=bool), self._embed(paths, boxes, apply_exif)
        except ValueError:
            pass
        ok = np.zeros(len(paths), dtype=bool)
        vectors = np.empty((len(paths), self.embedder.dim), dtype=np.float32)
        members_of: dict[str, list[int]] = {}
        for index, path in enumerate(paths):
            members_of.setdefault(path, []).append(index)
        for path, members in members_of.items():
            try:
                vectors[members] = self._embed([path] * len(members), boxes[members], apply_exif)
            except ValueError:
                continue
            ok[members] = True
        return ok, vectors[ok]

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.column("row").to_numpy()
        paths = batch.column("path").to_pylist()
        flags = batch.column("apply_exif").to_numpy(zero_copy_only=False).astype(bool)
        boxes = (
            np.zeros((len(rows), 4))
            if self.whole_images
            else np.stack([batch.column(c).to_numpy(zero_copy_only=False) for c in BOX_COLUMNS], axis=1)
        )
        kept_rows, vectors = [], []
        for flag in (True, False):
            members = np.flatnonzero(flags == flag)
            if len(members):
                ok, found = self._embed_skipping_bad([paths[i] for i in members], boxes[members], flag)
                kept_rows.append(rows[members][ok])
                vectors.append(found)
        flat = np.concatenate(vectors).astype(np.float32).ravel() if vectors else np.empty(0, np.float32)
        return pa.table(
            {
                "row": pa.array(np.concatenate(kept_rows) if kept_rows else np.empty(0, np.int64)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat), self.embedder.dim),
            }
        )


def _vectors(column: pa.ChunkedArray) -> np.ndarray:
    """A fixed-size-list column as an (n, dim) float32 array."""
    dim = column.type.list_size
    parts = [chunk.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim) for chunk in column.chunks]
    return np.concatenate(parts) if parts else np.empty((0, dim), dtype=np.float32)


def embed_on_ray(
    items: pd.DataFrame,
    folder: str | Path,
    whole_images: bool,
    backbone: str = "mobilenet_v2",
    device: str | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Embed ``items`` (columns path, apply_exif, and for crops bbox_x/y/w/h) on Ray.

    Vectors go to shard files in ``folder`` as they arrive, then to ``folder/vectors.npy`` in item
    order. Returns (positions of the items that got a vector, ascending; their vectors as a
    read-only memory map; the device the actors ran on).
    """
    import ray
    import ray.data

    from metrics.ray_engine import _quiet_ray_data, start_ray

    folder = Path(folder)
    if not len(items):
        return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32), device or "cpu"
    columns = ["path", "apply_exif"] + ([] if whole_images else BOX_COLUMNS)
    table = pa.Table.from_pandas(
        items[columns].reset_index(drop=True).assign(row=np.arange(len(items), dtype=np.int64)),
        preserve_index=False,
    )
    started = start_ray(workers)
    try:
        _quiet_ray_data()
        actors, each, actor_device = actor_plan(ray.cluster_resources(), device)
        batch = GPU_BATCH if actor_device == "cuda" else CPU_BATCH
        actors = max(1, min(actors, -(-len(items) // batch)))
        blocks = max(1, min(-(-len(items) // batch), 32 * actors))
        step = -(-len(items) // blocks) if len(items) else 1
        dataset = ray.data.from_arrow(
            [table.slice(start, step) for start in range(0, len(items), step)] or [table]
        )
        dataset = dataset.map_batches(
            CropEmbedding,
            fn_constructor_kwargs={
                "backbone": backbone,
                "device": actor_device,
                "whole_images": whole_images,
            },
            batch_size=batch,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            **each,
        )
        del table
        done, dim = 0, 0
        with ShardWriter(folder / "shards") as writer:
            for out in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                vectors = _vectors(out.column("vector"))
                writer.append(out.column("row").to_numpy(), vectors)
                done, dim = done + out.num_rows, vectors.shape[1]
                if progress:
                    progress(done, len(items))
    finally:
        if started:
            ray.shutdown()
    rows, vectors = assemble_in_row_order(folder / "shards", folder / "vectors.npy", dim)
    shutil.rmtree(folder / "shards")  # now in vectors.npy
    return rows, vectors, actor_device
