"""Embeddings on disk: compute them for a dataset, store them, and answer the app's questions.

``datasets/NAME/embeddings/`` holds ``images.npy`` / ``objects.npy`` (float32, unit rows, read with
``allow_pickle=False``), ``images_ids.parquet`` / ``objects_ids.parquet`` (the keys in row order),
``label_suggestions.parquet`` (given vs suggested class per object, both label scores) and
``meta.json`` (backbone, weights, sizes, date, a run id). The folder is written in ``.staging`` and
swapped in by one rename, *after* the metric files it feeds (``annotation_quality``,
``label_confidence``, ``image_uniqueness``) and the ``embedding`` duplicate groups: a present folder
means everything of that run is in place, so a re-run with unchanged inputs skips the dataset.

The app's 2D maps are cached beside the vectors, keyed by level, method and the run id, so a new
run never shows an old map. The project's writer lock is the caller's (``cocolens metrics``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from metrics import registry
from metrics.label_quality import (
    DEFAULT_K,
    DEFAULT_SPLITS,
    annotation_quality,
    embedding_near_duplicates,
    self_confidence,
    uniqueness,
)
from store.commit_journal import commit_moves, discard_stage
from store.metric_files import metric_frame, write_metric
from store.project import Project, write_json_atomic, write_parquet_atomic
from store.schemas import DUPLICATES, MAP_POINTS, empty_frame, pandas_dtypes

Level = Literal["image", "object"]
Progress = Callable[[str, int, int], None]  # (stage, done, total), as the CLI's progress bars take it

FOLDER = "embeddings"
FORMAT_VERSION = 1  # bump when the folder's layout or the way scores are derived changes
MAP_MAX_POINTS = (
    20_000  # a map of more points is a seeded sample: scattergl stays fluid, UMAP minutes not hours
)
SIMILAR_BLOCK_ROWS = 65_536  # rows multiplied at once in "more like this" (bounded memory on a memmap)
SCORE_METRICS = ("annotation_quality", "label_confidence", "image_uniqueness")


def _project(project: Project | str | os.PathLike[str]) -> Project:
    return project if isinstance(project, Project) else Project(project)


def embeddings_dir(project: Project | str | os.PathLike[str], dataset: str) -> Path:
    return _project(project).dataset_dir(dataset) / FOLDER


def load_meta(project: Project | str | os.PathLike[str], dataset: str) -> dict[str, Any] | None:
    """The run's meta.json, or None when the dataset has no embeddings yet."""
    path = embeddings_dir(project, dataset) / "meta.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def datasets_with_embeddings(project: Project | str | os.PathLike[str], datasets: list[str]) -> list[str]:
    return [d for d in datasets if load_meta(project, d) is not None]


def load_vectors(
    project: Project | str | os.PathLike[str], dataset: str, level: Level
) -> tuple[np.ndarray, pd.DataFrame]:
    """(vectors memory-mapped read-only, keys in row order: dataset, image_id, object_id)."""
    folder = embeddings_dir(project, dataset)
    name = "images" if level == "image" else "objects"
    vectors = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
    keys = pd.read_parquet(folder / f"{name}_ids.parquet")
    if "object_id" not in keys.columns:
        keys["object_id"] = pd.Series([pd.NA] * len(keys), dtype="Int64")
    keys.insert(0, "dataset", dataset)
    return vectors, keys[["dataset", "image_id", "object_id"]]


# ----- computing ----------------------------------------------------------------------------------------


def _fingerprint(project: Project, dataset: str, backbone: str) -> str:
    """What a run depends on: the dataset's import record, the backbone and the score versions."""
    digest = hashlib.sha1((project.dataset_dir(dataset) / "dataset.json").read_bytes())
    versions = [registry.get(name).version for name in SCORE_METRICS]
    digest.update(json.dumps([FORMAT_VERSION, backbone, versions]).encode())
    return digest.hexdigest()


def _embed_images_skipping_bad(
    paths: list[str], backbone: str, device: str | None, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the decodable images and a mask of which ones they are.

    The import already marked missing/unreadable files; one that broke since (replaced on disk) is
    retried image by image so a single bad file does not cost the whole dataset.
    """
    from metrics.embeddings import embed_images

    report = (lambda done, total: progress("embed images", done, total)) if progress else None
    try:
        return embed_images(paths, backbone=backbone, device=device, progress=report), np.ones(
            len(paths), dtype=bool
        )
    except ValueError:
        rows, ok = [], np.zeros(len(paths), dtype=bool)
        for index, path in enumerate(paths):
            try:
                rows.append(embed_images([path], backbone=backbone, device=device)[0])
                ok[index] = True
            except ValueError:
                continue
        dim = rows[0].shape[0] if rows else 0
        return (np.stack(rows) if rows else np.empty((0, dim), dtype=np.float32)), ok


def _embed_object_crops(
    objects: pd.DataFrame, backbone: str, device: str | None, progress: Progress | None
) -> np.ndarray:
    """Crop vectors in ``objects`` row order; crops come from the frame the annotations refer to."""
    from metrics.embeddings import embed_objects

    out: np.ndarray | None = None
    groups = [(flag, np.flatnonzero(objects["apply_exif"].to_numpy() == flag)) for flag in (True, False)]
    done_before, total = 0, len(objects)
    for flag, rows in groups:
        if not len(rows):
            continue
        part = objects.iloc[rows]

        def report(done: int, _total: int, offset: int = done_before) -> None:
            if progress:
                progress("embed objects", offset + done, total)

        boxes = part[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(dtype=np.float64)
        vectors = embed_objects(
            part["path"].tolist(), boxes, backbone=backbone, device=device, progress=report, apply_exif=flag
        )
        if out is None:
            out = np.empty((total, vectors.shape[1]), dtype=np.float32)
        out[rows] = vectors
        done_before += len(rows)
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


def _stage(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    return (lambda done, total: progress(stage, done, total)) if progress else None


def _label_scores(vectors: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """annotation_quality (k nearest neighbours) and the cross-validated self-confidence per object."""
    from metrics.knn import knn

    n = len(labels)
    nan = np.full(n, np.nan)
    if n < 2:
        return {"annotation_quality": nan, "confidence": nan, "suggested": labels.copy(), "probability": nan}
    neighbours, _ = knn(vectors, k=DEFAULT_K)
    quality = annotation_quality(labels, neighbours)
    largest_class = int(np.unique(labels, return_counts=True)[1].max())
    if largest_class < 2:  # every class a singleton: nothing to learn a class from
        return {
            "annotation_quality": quality,
            "confidence": nan,
            "suggested": labels.copy(),
            "probability": nan,
        }
    # StratifiedKFold refuses more folds than the largest class has members
    result = self_confidence(vectors, labels, n_splits=max(2, min(DEFAULT_SPLITS, largest_class)), seed=0)
    return {
        "annotation_quality": quality,
        "confidence": result.confidence,
        "suggested": result.suggested_class,
        "probability": result.suggested_probability,
    }


def _write_embedding_duplicates(
    folder: Path, out: Path, dataset: str, image_ids: np.ndarray, groups: np.ndarray
) -> int:
    """Write to ``out`` the dataset's duplicates.parquet with its 'embedding' groups replaced, the
    other kinds kept as they are."""
    path = folder / "duplicates.parquet"
    columns = pandas_dtypes(DUPLICATES)
    existing = pd.read_parquet(path) if path.is_file() else empty_frame(DUPLICATES)
    kept = existing[existing["kind"] != "embedding"].astype(columns)
    grouped = groups >= 0
    new = pd.DataFrame(
        {
            "dataset": dataset,
            "image_id": image_ids[grouped],
            "kind": "embedding",
            "group_id": groups[grouped],
        }
    ).astype(columns)
    write_parquet_atomic(out, pd.concat([kept, new], ignore_index=True))
    return int(len(np.unique(groups[grouped])))


def compute_dataset_embeddings(
    project: Project | str | os.PathLike[str],
    dataset: str,
    backbone: str = "mobilenet_v2",
    device: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
    engine: str = "local",
    workers: int = 2,
) -> dict[str, Any]:
    """Embed a dataset's images and object crops, then store vectors, label scores and duplicate groups.

    Skips the work (``{"skipped": True, ...}``) when the stored run used the same import, backbone
    and score versions, unless ``force``. Objects whose image is missing or unreadable get NaN
    scores and no vector. ``engine="ray"`` embeds on Ray Data (:mod:`metrics.ray_embeddings`, GPU
    actors where the cluster has GPUs), the vectors reaching this process as shard files and then
    a memory map. Returns counts and timings for the CLI's JSON summary.
    """
    project = _project(project)
    meta = load_meta(project, dataset)
    if not force and meta and meta.get("fingerprint") == _fingerprint(project, dataset, backbone):
        return {"skipped": True, "images": meta["images"], "objects": meta["objects"]}

    if engine == "ray":
        scratch = project.staging_dir / "embeddings-ray" / dataset
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            return _compute(project, dataset, backbone, device, progress, _RayEmbedding(scratch, workers))
        finally:
            discard_stage(scratch, project.staging_dir)
    return _compute(project, dataset, backbone, device, progress, None)


class _RayEmbedding:
    """The Ray engine's two passes, their vectors memory-mapped from ``scratch``."""

    def __init__(self, scratch: Path, workers: int):
        self.scratch, self.workers, self.device = scratch, workers, "cpu"

    def run(
        self, items: pd.DataFrame, whole_images: bool, backbone: str, device: str | None, report: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the items embedded, their vectors)."""
        from metrics.ray_embeddings import embed_on_ray

        name = "images" if whole_images else "objects"
        rows, vectors, self.device = embed_on_ray(
            items, self.scratch / name, whole_images, backbone, device, self.workers, report
        )
        return rows, vectors


def _compute(
    project: Project,
    dataset: str,
    backbone: str,
    device: str | None,
    progress: Progress | None,
    ray: _RayEmbedding | None,
) -> dict[str, Any]:
    from metrics.embeddings import CONTEXT_PAD, CROP_SIZE, IMAGE_SIZE, default_device
    from metrics.weights import resolve_weights, weights_file_name

    folder = project.dataset_dir(dataset)
    started = time.perf_counter()
    images = pd.read_parquet(folder / "images.parquet")
    objects = pd.read_parquet(folder / "objects.parquet")
    readable = images[images["status"] == "ok"].reset_index(drop=True)
    if ray is None:
        image_vectors, ok = _embed_images_skipping_bad(readable["path"].tolist(), backbone, device, progress)
    else:
        rows, image_vectors = ray.run(
            readable[["path"]].assign(apply_exif=True),
            True,
            backbone,
            device,
            _stage(progress, "embed images"),
        )
        ok = np.isin(np.arange(len(readable)), rows)
    embedded = readable[ok].reset_index(drop=True)

    exif = embedded["exif_orientation"].astype("Float64").fillna(1).to_numpy()
    applied = embedded["orientation_applied"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    frames = embedded.assign(apply_exif=(exif == 1) | applied)[["image_id", "path", "apply_exif"]]
    crops = objects.merge(frames, on="image_id", how="inner", sort=False)
    crops = crops.sort_values(["image_id", "object_id"], kind="stable").reset_index(drop=True)
    if ray is None:
        object_vectors = _embed_object_crops(crops, backbone, device, progress)
    else:
        rows, object_vectors = ray.run(crops, False, backbone, device, _stage(progress, "embed objects"))
        crops = crops.iloc[rows].reset_index(drop=True)
    weights = resolve_weights(backbone)
    info = {
        "backbone": backbone,
        "weights": weights,
        "weights_file": weights_file_name(backbone, weights),
        "image_size": IMAGE_SIZE,
        "crop_size": CROP_SIZE,
        "crop_pad": CONTEXT_PAD,
        "device": ray.device if ray else device or default_device(),
        "engine": "ray" if ray else "local",
        "embed_seconds": round(time.perf_counter() - started, 2),
    }
    return store_embeddings(
        project,
        dataset,
        embedded["image_id"].to_numpy(),
        image_vectors,
        crops[["image_id", "object_id"]],
        object_vectors,
        info,
    )


def store_embeddings(
    project: Project | str | os.PathLike[str],
    dataset: str,
    image_ids: np.ndarray,
    image_vectors: np.ndarray,
    object_keys: pd.DataFrame,
    object_vectors: np.ndarray,
    info: dict[str, Any],
) -> dict[str, Any]:
    """Derive the label scores, uniqueness and duplicate groups from given vectors and store it all.

    ``image_ids`` / ``object_keys`` (image_id, object_id) name the rows of the vectors; items of the
    dataset without a row get NaN scores. ``info`` goes into meta.json (``backbone`` required).
    Split from :func:`compute_dataset_embeddings` so vectors from elsewhere (another backbone, a
    GPU machine, a test) go through the same scoring and the same atomic layout.
    """
    from metrics.knn import normalise_rows

    started = time.perf_counter()
    project = _project(project)
    folder = project.dataset_dir(dataset)
    images = pd.read_parquet(folder / "images.parquet", columns=["image_id"])
    objects = pd.read_parquet(folder / "objects.parquet", columns=["image_id", "object_id", "category_id"])
    image_ids = np.asarray(image_ids, dtype=np.int64)
    dim = int(image_vectors.shape[1]) if image_vectors.ndim == 2 and len(image_vectors) else 0
    image_vectors = normalise_rows(np.asarray(image_vectors, dtype=np.float32).reshape(len(image_ids), dim))
    keys = object_keys[["image_id", "object_id"]].astype("int64").reset_index(drop=True)
    labelled = keys.merge(objects, on=["image_id", "object_id"], how="left", validate="one_to_one")
    if labelled["category_id"].isna().any():
        raise ValueError(f"{dataset}: object keys not in the dataset were given vectors")
    object_vectors = normalise_rows(np.asarray(object_vectors, dtype=np.float32))  # dot = cosine
    if not len(keys):  # no object on a readable image: keep the width so loaders see (0, dim)
        object_vectors = np.empty((0, dim), dtype=np.float32)

    labels = labelled["category_id"].to_numpy(dtype=np.int64)
    # Everything is written into the stage and made visible by one journalled burst of renames
    # (store.commit_journal): a kill -9 mid-run leaves the old run whole, never new scores beside
    # old vectors.
    stage = project.staging_dir / "embeddings" / dataset
    shutil.rmtree(stage, ignore_errors=True)
    (stage / FOLDER).mkdir(parents=True)
    try:
        summary = _stage_and_commit(
            project,
            dataset,
            stage,
            images,
            objects,
            image_ids,
            image_vectors,
            keys,
            labels,
            object_vectors,
            info,
        )
    finally:
        discard_stage(stage, project.staging_dir)
    summary["score_seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _stage_and_commit(
    project: Project,
    dataset: str,
    stage: Path,
    images: pd.DataFrame,
    objects: pd.DataFrame,
    image_ids: np.ndarray,
    image_vectors: np.ndarray,
    keys: pd.DataFrame,
    labels: np.ndarray,
    object_vectors: np.ndarray,
    info: dict[str, Any],
) -> dict[str, Any]:
    from metrics.knn import knn

    folder = project.dataset_dir(dataset)
    dim = int(image_vectors.shape[1]) if image_vectors.ndim == 2 else 0
    scores = _label_scores(object_vectors, labels)
    if len(image_vectors):
        _, image_sims = knn(image_vectors, k=1)
        image_unique = uniqueness(knn_similarities=image_sims)
        groups = embedding_near_duplicates(image_vectors)
    else:
        image_unique, groups = np.empty(0), np.empty(0, dtype=np.int64)

    # metric files: every object / image of the dataset, NaN where nothing was embedded
    position = pd.Series(np.arange(len(keys)), index=pd.MultiIndex.from_frame(keys))
    found = position.reindex(pd.MultiIndex.from_frame(objects[["image_id", "object_id"]])).to_numpy(
        dtype="float64"
    )
    has = np.isfinite(found)
    rows = np.where(has, found, 0).astype(np.int64)
    for name, values in (
        ("annotation_quality", scores["annotation_quality"]),
        ("label_confidence", scores["confidence"]),
    ):
        spec = registry.get(name)
        column = np.full(len(objects), np.nan)
        column[has] = np.asarray(values, dtype="float64")[rows[has]]
        frame = metric_frame(
            dataset, spec, objects["image_id"].to_numpy(), column, objects["object_id"].to_numpy()
        )
        write_metric(stage, spec, frame)
    spec = registry.get("image_uniqueness")
    column = (
        pd.Series(image_unique, index=image_ids)
        .reindex(images["image_id"].to_numpy())
        .to_numpy(dtype="float64")
    )
    write_metric(stage, spec, metric_frame(dataset, spec, images["image_id"].to_numpy(), column))
    group_count = _write_embedding_duplicates(
        folder, stage / "duplicates.parquet", dataset, image_ids, groups
    )

    suggestions = pd.DataFrame(
        {
            "dataset": pd.Series([dataset] * len(keys), dtype="string"),
            "image_id": keys["image_id"].to_numpy(),
            "object_id": keys["object_id"].to_numpy(),
            "category_id": labels,
            "suggested_category_id": np.asarray(scores["suggested"], dtype=np.int64),
            "suggested_probability": np.asarray(scores["probability"], dtype="float64"),
            "label_confidence": np.asarray(scores["confidence"], dtype="float64"),
            "annotation_quality": np.asarray(scores["annotation_quality"], dtype="float64"),
        }
    )
    suggestions["disagrees"] = (
        suggestions["suggested_category_id"] != suggestions["category_id"]
    ) & np.isfinite(suggestions["suggested_probability"])
    meta = {
        **info,
        "format": FORMAT_VERSION,
        "run_id": uuid.uuid4().hex[:12],
        "fingerprint": _fingerprint(project, dataset, str(info["backbone"])),
        "dim": dim,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "images": int(len(image_ids)),
        "objects": int(len(keys)),
        "images_without_vector": int(len(images) - len(image_ids)),
        "objects_without_vector": int(len(objects) - len(keys)),
        "knn_k": DEFAULT_K,
        "embedding_duplicate_groups": group_count,
    }
    vectors = stage / FOLDER
    np.save(vectors / "images.npy", image_vectors, allow_pickle=False)
    np.save(vectors / "objects.npy", object_vectors, allow_pickle=False)
    pd.DataFrame({"image_id": image_ids}).to_parquet(vectors / "images_ids.parquet", index=False)
    keys.to_parquet(vectors / "objects_ids.parquet", index=False)
    suggestions.to_parquet(vectors / "label_suggestions.parquet", index=False)
    write_json_atomic(vectors / "meta.json", meta)
    for path in vectors.iterdir():  # durable before the renames make them visible
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    moves = [(path, folder / "metrics" / path.name) for path in sorted((stage / "metrics").glob("*.parquet"))]
    moves += [(stage / "duplicates.parquet", folder / "duplicates.parquet"), (vectors, folder / FOLDER)]
    commit_moves(project.root, stage, moves)
    summary = ("images", "objects", "embedding_duplicate_groups", "device", "embed_seconds")
    return {key: meta[key] for key in summary if key in meta}


# ----- the app's questions ---------------------------------------------------------------------------------


def _map_cache_path(
    project: Project, datasets: list[str], level: Level, method: str, max_points: int
) -> Path:
    runs = [(d, (load_meta(project, d) or {}).get("run_id")) for d in datasets]
    key = hashlib.sha1(json.dumps([level, method, max_points, runs]).encode()).hexdigest()[:16]
    if len(datasets) == 1:  # beside the vectors: a new run replaces the folder and drops old maps
        return embeddings_dir(project, datasets[0]) / f"map_{level}_{method}_{key}.parquet"
    return project.thumbs_dir / "maps" / f"{key}.parquet"  # joint maps: a cache folder, stale files harmless


def _sample_rows(total: int, max_points: int) -> np.ndarray:
    if total <= max_points:
        return np.arange(total)
    return np.sort(np.random.default_rng(0).choice(total, size=max_points, replace=False))


def map_points(
    project: Project | str | os.PathLike[str],
    datasets: list[str],
    level: Level,
    method: str = "pca",
    max_points: int = MAP_MAX_POINTS,
) -> tuple[pd.DataFrame, int]:
    """2D coordinates (dataset, image_id, object_id, x, y) of the datasets' vectors, one joint map.

    Above ``max_points`` rows a seeded sample is mapped. Cached on disk per level, method and run;
    returns (points, total rows before sampling).
    """
    from metrics.projection import project_2d

    project = _project(project)
    datasets = sorted(datasets_with_embeddings(project, datasets))
    if not datasets:
        return empty_frame(MAP_POINTS), 0
    loaded = [load_vectors(project, d, level) for d in datasets]
    total = sum(len(keys) for _, keys in loaded)
    cache = _map_cache_path(project, datasets, level, method, max_points)
    if cache.is_file():
        try:
            return pd.read_parquet(cache), total
        except (OSError, ValueError):
            pass  # a cache half-gone with its folder: recompute
    rows = _sample_rows(total, max_points)
    keys = pd.concat([k for _, k in loaded], ignore_index=True).iloc[rows].reset_index(drop=True)
    vectors, offset = [], 0
    for matrix, _ in loaded:
        inside = rows[(rows >= offset) & (rows < offset + len(matrix))] - offset
        vectors.append(np.asarray(matrix[inside], dtype=np.float32))
        offset += len(matrix)
    coords = project_2d(np.concatenate(vectors) if vectors else np.empty((0, 0)), method=method, seed=0)
    points = keys.assign(x=coords[:, 0].astype("float64"), y=coords[:, 1].astype("float64"))
    points["object_id"] = points["object_id"].astype("Int64")
    try:
        write_parquet_atomic(cache, points)
    except OSError:  # the folder was swapped by a new run meanwhile: still show this map
        pass
    return points, total


def similar_items(
    project: Project | str | os.PathLike[str],
    datasets: list[str],
    level: Level,
    dataset: str,
    image_id: int,
    object_id: int | None = None,
    top: int = 12,
) -> pd.DataFrame | None:
    """The ``top`` nearest items by cosine to one image or object, itself excluded, best first.

    Searches the vectors of ``datasets`` (those with embeddings). Returns dataset, image_id,
    object_id, similarity; None when the item has no stored vector.
    """
    project = _project(project)
    if load_meta(project, dataset) is None:
        return None
    vectors, keys = load_vectors(project, dataset, level)
    match = keys["image_id"].to_numpy() == int(image_id)
    if level == "object":
        match &= keys["object_id"].astype("Int64").to_numpy(dtype="float64", na_value=np.nan) == float(
            object_id or 0
        )
    hits = np.flatnonzero(match)
    if not len(hits):
        return None
    query = np.asarray(vectors[hits[0]], dtype=np.float32)
    found: list[pd.DataFrame] = []
    for name in datasets_with_embeddings(project, datasets):
        matrix, names = (vectors, keys) if name == dataset else load_vectors(project, name, level)
        sims = np.empty(len(matrix), dtype=np.float32)
        for start in range(0, len(matrix), SIMILAR_BLOCK_ROWS):
            sims[start : start + SIMILAR_BLOCK_ROWS] = (
                np.asarray(matrix[start : start + SIMILAR_BLOCK_ROWS]) @ query
            )
        if name == dataset:
            sims[hits[0]] = -np.inf
        best = np.argsort(-sims, kind="stable")[:top]
        found.append(names.iloc[best].assign(similarity=sims[best].astype("float64")))
    if not found:
        return None
    result = pd.concat(found, ignore_index=True)
    result = result[np.isfinite(result["similarity"])]
    return result.sort_values("similarity", ascending=False, kind="stable").head(top).reset_index(drop=True)


def card_rows(reader: Any, keys: pd.DataFrame, level: Level) -> pd.DataFrame:
    """What a gallery card draws for each key (``keys``' row order and extra columns kept).

    Columns as :func:`store.gallery_queries.page_items`: file_name, path, status, error, width, height,
    orientation_applied, exif_orientation, content_hash; objects also category_id, category, bbox_*,
    segmentation, iscrowd.
    """
    wanted = keys.reset_index(drop=True).copy()
    wanted["_order"] = np.arange(len(wanted))
    lookup = wanted[["_order", "dataset", "image_id", "object_id"]].astype(
        {"dataset": "string", "image_id": "int64", "object_id": "Int64"}
    )
    object_cols, object_join = "", ""
    if level == "object":
        object_cols = ", o.category_id, c.name AS category, o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h, o.segmentation, o.iscrowd"
        object_join = (
            "JOIN objects o ON o.dataset = w.dataset AND o.image_id = w.image_id AND o.object_id = w.object_id "
            "LEFT JOIN categories c ON c.dataset = o.dataset AND c.category_id = o.category_id"
        )
    sql = f"""
        SELECT w._order, i.file_name, i.path, i.status, i.error, i.width, i.height, i.orientation_applied,
               i.exif_orientation, i.content_hash{object_cols}
        FROM _wanted w JOIN images i ON i.dataset = w.dataset AND i.image_id = w.image_id
        {object_join}
    """
    found = reader.df(sql, tables={"_wanted": lookup})
    out = wanted.merge(found, on="_order", how="inner").sort_values("_order", kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)


def _suggestion_files(project: Project, datasets: list[str]) -> list[Path]:
    files = [embeddings_dir(project, d) / "label_suggestions.parquet" for d in datasets]
    return [path for path in files if path.is_file()]


def _suggestion_source(project: Project, datasets: list[str], only_disagreeing: bool) -> str | None:
    files = _suggestion_files(project, datasets)
    if not files:
        return None
    listed = ", ".join("'" + str(path).replace("'", "''") + "'" for path in files)
    where = "WHERE disagrees" if only_disagreeing else ""
    return f"(SELECT * FROM read_parquet([{listed}], union_by_name=true) {where})"


def suggestion_count(reader: Any, datasets: list[str], only_disagreeing: bool = False) -> int:
    """Objects with label suggestions (optionally only where the classifier prefers another class)."""
    source = _suggestion_source(reader.project, datasets, only_disagreeing)
    return 0 if source is None else int(reader.scalar(f"SELECT count(*) FROM {source}"))


def suggestion_page(
    reader: Any,
    datasets: list[str],
    sort_by: str = "label_confidence",
    only_disagreeing: bool = False,
    page: int = 0,
    page_size: int = 24,
) -> pd.DataFrame:
    """One page of objects, least plausible label first (``sort_by`` ascending, NaN last), with card columns.

    Columns: those of :func:`card_rows` for objects plus suggested_category_id, suggested_category,
    suggested_probability, label_confidence, annotation_quality, disagrees.
    """
    if sort_by not in ("label_confidence", "annotation_quality"):
        raise ValueError(f"sort_by must be label_confidence or annotation_quality, not {sort_by!r}")
    source = _suggestion_source(reader.project, datasets, only_disagreeing)
    if source is None:
        return pd.DataFrame()
    other = "annotation_quality" if sort_by == "label_confidence" else "label_confidence"
    keys = reader.df(
        f"""
        SELECT s.*, c.name AS suggested_category FROM (
            SELECT * FROM {source}
            ORDER BY {sort_by} ASC NULLS LAST, {other} ASC NULLS LAST, dataset, image_id, object_id
            LIMIT ? OFFSET ?) s
        LEFT JOIN categories c ON c.dataset = s.dataset AND c.category_id = s.suggested_category_id
        ORDER BY s.{sort_by} ASC NULLS LAST, s.{other} ASC NULLS LAST, s.dataset, s.image_id, s.object_id
        """,
        [int(page_size), int(page) * int(page_size)],
    )
    if keys.empty:
        return keys
    keys = keys.drop(columns=["category_id"])
    return card_rows(reader, keys, "object")


def metric_values_for(reader: Any, keys: pd.DataFrame, metric: str, level: Level) -> np.ndarray:
    """Values of one metric for the given keys, in their order (NaN where absent): colours a map."""
    from store.gallery_queries import metric_source

    lookup = keys[["dataset", "image_id", "object_id"]].reset_index(drop=True).copy()
    lookup["_order"] = np.arange(len(lookup))
    lookup = lookup.astype({"dataset": "string", "image_id": "int64", "object_id": "Int64"})
    datasets = sorted(lookup["dataset"].dropna().unique().tolist())
    match = "m.object_id IS NULL" if level == "image" else "m.object_id = w.object_id"
    sql = f"""
        SELECT w._order, m.value FROM _wanted w
        JOIN {metric_source(reader, metric, level, datasets)} m
          ON m.dataset = w.dataset AND m.image_id = w.image_id AND {match} AND m.metric = ?
    """
    found = reader.df(sql, [metric], tables={"_wanted": lookup})
    out = np.full(len(lookup), np.nan)
    out[found["_order"].to_numpy(dtype=np.int64)] = found["value"].to_numpy(dtype="float64", na_value=np.nan)
    return out


def object_classes(reader: Any, keys: pd.DataFrame) -> pd.DataFrame:
    """Class (category name and id) of each object key, in order: colours a map by class."""
    lookup = keys[["dataset", "image_id", "object_id"]].reset_index(drop=True).copy()
    lookup["_order"] = np.arange(len(lookup))
    lookup = lookup.astype({"dataset": "string", "image_id": "int64", "object_id": "Int64"})
    sql = """
        SELECT w._order, coalesce(c.name, CAST(o.category_id AS VARCHAR)) AS category, o.category_id
        FROM _wanted w
        JOIN objects o ON o.dataset = w.dataset AND o.image_id = w.image_id AND o.object_id = w.object_id
        LEFT JOIN categories c ON c.dataset = o.dataset AND c.category_id = o.category_id
    """
    found = reader.df(sql, tables={"_wanted": lookup})
    out = pd.DataFrame(
        {"category": ["?"] * len(lookup), "category_id": pd.array([None] * len(lookup), "Int64")}
    )
    rows = found["_order"].to_numpy(dtype=np.int64)
    out.loc[rows, "category"] = found["category"].astype(str).to_numpy()
    out.loc[rows, "category_id"] = found["category_id"].to_numpy()
    return out
