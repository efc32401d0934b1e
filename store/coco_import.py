"""``cocolens import coco``: validate, decode each image once, compute metrics, commit atomically.

The whole dataset is built in ``.staging/NAME-HASH/`` and appears in the project with one
directory rename, so a reader never sees half an import and a failed import changes nothing.
The image pass writes a checkpoint file every ``CHUNK`` images: killed and run again with the same
annotations file, the import resumes from the last full chunk, with nothing lost or doubled.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metrics.engines import (
    IMAGE_RESULT_COLUMNS,
    IMAGE_ROW_COLUMNS,
    check_engine,
    chosen_engine,
    image_rows,
    is_url,
)
from metrics.image import SIZE_MISMATCH
from store.coco_reader import CocoTables, read_coco
from store.errors import InputError
from store.image_paths import image_pass_records, resolve_image_paths
from store.metric_runner import compute_table_metrics, write_pixel_metrics
from store.project import (
    Project,
    check_name,
    fsyncs_at_end,
    replace_dir_atomic,
    write_json_atomic,
    write_parquet_atomic,
)

CHUNK = int(
    os.environ.get("COCOLENS_IMPORT_CHUNK", "128")
)  # images per checkpoint: a kill loses seconds, not minutes
Progress = Callable[[str, int, int], None]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remote_image_path(root_url: str, file_name: str) -> tuple[str, str]:
    """URL of a record under an object-storage prefix (file names were checked not to climb out)."""
    return root_url.rstrip("/") + "/" + file_name.replace("\\", "/").lstrip("/"), ""


def resolve_engine(project: Project, engine: str | None) -> str:
    """The engine asked for, else the project's ``settings.engine``, else 'local'."""
    try:
        return check_engine(chosen_engine(engine, project.meta()))
    except ValueError as exc:
        raise InputError(str(project.meta_path) if not engine else "--engine", str(exc)) from exc


def _chunk_path(chunks_dir: Path, index: int) -> Path:
    return chunks_dir / f"images_{index:06d}.parquet"


def _run_image_pass(
    records: list[dict],
    image_ids: np.ndarray,
    chunks_dir: Path,
    workers: int,
    plugins: list[str],
    progress: Progress | None,
    engine: str = "local",
) -> tuple[pd.DataFrame, int]:
    """Decode every image once, checkpointing; return (results, images resumed from checkpoints).

    Records marked ``known_missing`` (absent from their folder's listing) need no file and no
    worker: their rows (status 'missing', geometry metrics) are computed here in one sweep and not
    checkpointed. The rest go to the engine in chunks of ``CHUNK``, each checkpointed; the chunk
    files hold the rows of the records with files in record order, so ``chunks/ids.npy`` records
    which images those are and a resume over a changed set starts afresh.

    Either engine yields the same rows (metrics.engines); chunk files do not record which one ran,
    so an import started locally may resume on Ray and the other way round.
    """
    from metrics.engines import missing_image_rows

    chunks_dir.mkdir(parents=True, exist_ok=True)
    known_missing = [i for i, r in enumerate(records) if r.get("known_missing")]
    pixel_indices = [i for i, r in enumerate(records) if not r.get("known_missing")]
    pixel_records = [records[i] for i in pixel_indices]
    pixel_ids = image_ids[pixel_indices].astype(np.int64) if len(pixel_indices) else np.zeros(0, np.int64)
    _reset_chunks_if_changed(chunks_dir, pixel_ids)
    total = len(records)
    n_chunks = (len(pixel_records) + CHUNK - 1) // CHUNK
    todo_chunks = [c for c in range(n_chunks) if not _chunk_path(chunks_dir, c).is_file()]
    done = min((n_chunks - len(todo_chunks)) * CHUNK, len(pixel_records))
    resumed = done
    missing_frame = pd.DataFrame(
        missing_image_rows([records[i] for i in known_missing], image_ids[known_missing], plugins),
        columns=IMAGE_ROW_COLUMNS,
    )
    done += len(known_missing)
    if progress:
        progress("images", done, total)
    pending: dict[int, dict[int, dict]] = {c: {} for c in todo_chunks}
    todo_indices = [
        i for c in todo_chunks for i in range(c * CHUNK, min((c + 1) * CHUNK, len(pixel_records)))
    ]
    if not todo_indices:  # nothing to decode: workers started early (cli) would idle to the end
        from metrics.pipeline import discard_early_workers

        discard_early_workers()
    else:
        sub_records = [pixel_records[i] for i in todo_indices]
        sub_ids = [int(pixel_ids[i]) for i in todo_indices]
        for sub_index, row in image_rows(sub_records, sub_ids, engine, workers, plugins):
            index = todo_indices[sub_index]
            chunk = index // CHUNK
            pending[chunk][index] = row
            expected = min((chunk + 1) * CHUNK, len(pixel_records)) - chunk * CHUNK
            if len(pending[chunk]) == expected:
                rows = [pending[chunk][i] for i in sorted(pending[chunk])]
                write_parquet_atomic(_chunk_path(chunks_dir, chunk), pd.DataFrame(rows))
                del pending[chunk]
            done += 1
            if progress:
                progress("images", done, total)
    frames = [pd.read_parquet(_chunk_path(chunks_dir, c)) for c in range(n_chunks)]
    if len(missing_frame):
        frames.append(missing_frame)
    if not frames:
        return pd.DataFrame(columns=IMAGE_ROW_COLUMNS), 0
    return pd.concat(frames, ignore_index=True), resumed


def _reset_chunks_if_changed(chunks_dir: Path, pixel_ids: np.ndarray) -> None:
    """Drop checkpoints made for another set of images with files (one appeared or vanished since)."""
    manifest = chunks_dir / "ids.npy"
    try:
        same = np.array_equal(np.load(manifest, allow_pickle=False), pixel_ids)
    except (OSError, ValueError, EOFError):
        same = not any(chunks_dir.glob("images_*.parquet"))
    if not same:
        for old in chunks_dir.glob("images_*.parquet"):
            old.unlink()
    if not manifest.is_file() or not same:
        tmp = chunks_dir / "ids.npy.tmp.npy"
        np.save(tmp, pixel_ids)
        os.replace(tmp, manifest)


# Images + objects above which the importer frees its tables' memory before the prewarm.
RELEASE_MEMORY_ABOVE_ROWS = 100_000

# Above this many objects the label metrics wait for the image pass: their working set (~400 MB
# per million objects) would then add to the pass's peak instead of following it.
ALONGSIDE_MAX_OBJECTS = 250_000


def _label_metrics_alongside(
    dataset: str,
    out: Path,
    tables: CocoTables,
    engine: str,
    workers: int,
    plugins: list[str],
    prewarm: bool = False,
) -> Future | None:
    """Compute and write the label metrics in a thread while the image pass runs, where that is safe.

    The built-in label metrics read only the annotated image ids and sizes, which the image pass
    does not change, and spend much of their time in numpy, pandas and pycocotools with the GIL
    released: on a 200-photo folder they fill the parent's idle moments instead of following the
    pass. Not with plugins (a custom table metric may read the pass's columns: status, decoded
    size), not on Ray (its own tasks), not above :data:`ALONGSIDE_MAX_OBJECTS`. With ``prewarm``
    the thread then imports the prewarm's modules; the future completes after both, before the
    importer imports anything else.
    """
    if plugins or engine != "local" or len(tables.objects) > ALONGSIDE_MAX_OBJECTS:
        return None

    def label_metrics() -> None:
        compute_table_metrics(dataset, out, tables.objects, tables.images, engine=engine, workers=workers)
        if prewarm:  # then the prewarm's modules (DuckDB, the queries: ~0.07 s) here, not after the pass
            with contextlib.suppress(ImportError):  # the prewarm imports it again and says why
                importlib.import_module("store.page_summaries")

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-metrics")
    future = executor.submit(label_metrics)
    executor.shutdown(wait=False)  # the submitted task still runs; the thread ends with it
    return future


def _image_table(tables_images: pd.DataFrame, paths: list[str], results: pd.DataFrame) -> pd.DataFrame:
    images = tables_images.copy()
    images["path"] = paths
    results = results.drop(columns=["metrics_json"]).set_index("image_id").reindex(images["image_id"])
    for key in IMAGE_RESULT_COLUMNS:
        images[key] = results[key].to_numpy()
    images = images.astype(
        {
            "status": "string",
            "error": "string",
            "content_hash": "string",
            "pixel_hash": "string",
            "decoded_width": "Int64",
            "decoded_height": "Int64",
            "exif_orientation": "Int64",
            "file_size": "Int64",
            "phash": "Int64",
            "orientation_applied": "boolean",
        }
    )
    images["error"] = images["error"].fillna("")
    images["content_hash"] = images["content_hash"].fillna("")
    images["pixel_hash"] = images["pixel_hash"].fillna("")
    return images


def _duplicates(dataset: str, images: pd.DataFrame) -> pd.DataFrame:
    from metrics.duplicates import exact_duplicate_groups, near_duplicate_groups

    ok = images[images["status"] == "ok"]
    rows = []
    if len(ok):
        exact = exact_duplicate_groups(ok["pixel_hash"].tolist())
        near = near_duplicate_groups(ok["phash"].tolist())  # Int64 → int or NA: all 64 bits kept
        for kind, groups in (("exact", exact), ("near", near)):
            for image_id, group in zip(ok["image_id"].tolist(), list(groups), strict=True):
                if group is not None and int(group) >= 0:
                    rows.append((dataset, int(image_id), kind, int(group)))
    return pd.DataFrame(rows, columns=["dataset", "image_id", "kind", "group_id"]).astype(
        {"image_id": "int64", "group_id": "int64"}
    )


def import_coco(
    images_dir: str | Path,
    annotations: str | Path,
    project_dir: str | Path,
    dataset: str | None = None,
    workers: int = 2,
    progress: Progress | None = None,
    engine: str | None = None,
    prewarm: bool = True,
) -> dict[str, Any]:
    """Import one COCO dataset into a project; return its counts.

    ``prewarm`` computes the explorer pages' opening summaries into the project's summary cache
    (store/page_summaries.py) right after the commit, so the app's first render reads them; callers
    that change the dataset again at once (``--embeddings``) pass False and prewarm after.

    ``engine`` runs the image pass: 'local' (process pool) or 'ray' (Ray Data, see
    metrics/ray_engine.py); default: the project's ``settings.engine``, else 'local'. With Ray,
    ``images_dir`` may be an object-storage URL (``s3://bucket/prefix``).
    """
    annotations = Path(annotations)
    dataset = check_name("dataset", dataset or annotations.stem)
    project = Project(project_dir)
    engine = resolve_engine(project, engine)
    remote_root = str(images_dir) if is_url(str(images_dir)) else ""
    if remote_root and engine != "ray":
        raise InputError(
            str(images_dir), "images in object storage are read by the Ray engine: add --engine ray"
        )
    images_root = Path(images_dir).expanduser()
    if not remote_root and not images_root.is_dir():
        raise InputError(str(images_dir), "images folder not found (--images)")
    images_root = images_root if remote_root else images_root.resolve()
    tables = read_coco(annotations, dataset, workers)  # everything validated before the first write
    annotations_sha = file_sha256(annotations)
    started = time.time()
    project.check_folder()
    plugins = load_project_plugins(project)
    with project.writing():
        stage = project.staging_dir / f"{dataset}-{annotations_sha[:16]}"
        _remove_stale_stages(project, dataset, keep=stage)
        out = stage / "dataset"
        out.mkdir(parents=True, exist_ok=True)

        if remote_root:
            resolved = [remote_image_path(remote_root, name) for name in tables.images["file_name"]]
            known_missing = np.zeros(len(resolved), dtype=bool)
        else:
            resolved, known_missing = resolve_image_paths(images_root, tables.images["file_name"].tolist())
        paths = [path for path, _ in resolved]
        records = image_pass_records(
            resolved,
            tables.images["width"].tolist(),
            tables.images["height"].tolist(),
            known_missing.tolist(),
        )
        image_ids = tables.images["image_id"].to_numpy()
        label_metrics = _label_metrics_alongside(dataset, out, tables, engine, workers, plugins, prewarm)
        pass_started = time.time()
        results, resumed = _run_image_pass(
            records, image_ids, stage / "chunks", workers, plugins, progress, engine
        )
        image_pass_seconds = round(time.time() - pass_started, 2)
        del records
        # Every file of the stage is made durable at once before the rename publishes it
        # (store.project.fsyncs_at_end): ~30 files, one journal commit instead of 60 fsyncs.
        with fsyncs_at_end():
            images = _image_table(tables.images, paths, results)
            for i, (_, err) in enumerate(resolved):
                if err:
                    images.loc[i, "status"] = "unreadable"
                    images.loc[i, "error"] = err

            if progress:
                progress("label metrics", 0, 1)
            write_parquet_atomic(out / "categories.parquet", tables.categories)
            write_parquet_atomic(out / "images.parquet", images)
            write_parquet_atomic(out / "objects.parquet", tables.objects)
            metric_dicts = [
                json.loads(text) for text in results.set_index("image_id").reindex(image_ids)["metrics_json"]
            ]
            write_pixel_metrics(dataset, out, image_ids, metric_dicts)
            if label_metrics is not None:
                label_metrics.result()  # raises what the thread raised
            else:
                compute_table_metrics(dataset, out, tables.objects, images, engine=engine, workers=workers)
            write_parquet_atomic(out / "duplicates.parquet", _duplicates(dataset, images))
            size_mismatch = int(images["error"].str.startswith(SIZE_MISMATCH).sum())
            if size_mismatch:
                tables.warnings["images_whose_file_size_differs_from_the_record"] = size_mismatch
            counts = {
                "images": len(images),
                "objects": len(tables.objects),
                "categories": len(tables.categories),
                "categories_used": int(tables.objects["category_id"].nunique()),
                "missing_images": int((images["status"] == "missing").sum()),
                "unreadable_images": int((images["status"] == "unreadable").sum()),
            }
            write_json_atomic(
                out / "dataset.json",
                {
                    "name": dataset,
                    "annotations_file": str(annotations.resolve()),
                    "annotations_sha256": annotations_sha,
                    "images_dir": remote_root or str(images_root),
                    "engine": engine,
                    "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "import_seconds": round(time.time() - started, 2),
                    "image_pass_seconds": image_pass_seconds,
                    "resumed_images": resumed,
                    "counts": counts,
                    "info": tables.info,
                    "warnings": tables.warnings,
                },
            )
        if progress:
            progress("label metrics", 1, 1)
        replace_dir_atomic(out, project.dataset_dir(dataset))
        shutil.rmtree(stage, ignore_errors=True)
        _remove_empty(project.staging_dir)
        stale = _stale_models(project, dataset)
        warnings = tables.warnings
        if prewarm:
            from store import page_summaries
            from store.memory import release_freed_memory

            # the committed tables are on disk: free them first, so the prewarm's DuckDB memory
            # does not stack on top (1M objects: importer peak 2.36 GB with both alive); a
            # small import holds little, and the full garbage collection costs ~0.1 s
            large = counts["images"] + counts["objects"] >= RELEASE_MEMORY_ABOVE_ROWS
            del tables, images, results, metric_dicts, resolved, paths
            if large:
                release_freed_memory()
            page_summaries.prewarm(project.root)
    summary: dict[str, Any] = {"dataset": dataset, **counts}
    if warnings:
        summary["warnings"] = warnings
    if stale:  # their matches describe the labels this import replaced: import their predictions again
        summary["stale_models"] = stale
    return summary


def _stale_models(project: Project, dataset: str) -> list[str]:
    from store.predictions_import import model_is_stale

    stale = []
    for model in project.models():
        try:
            if project.model_meta(model).get("dataset") == dataset and model_is_stale(project, model):
                stale.append(model)
        except InputError:
            continue  # a damaged model.json is reported where it is read
    return stale


def load_project_plugins(project: Project) -> list[str]:
    """Import the custom metric modules ``project.json`` lists; one that fails is one line."""
    from metrics import registry

    plugins = [str(p) for p in project.meta().get("plugins", [])]
    for plugin in plugins:
        try:
            registry.load_plugin(plugin)
        except Exception as exc:  # noqa: BLE001 - any failure of user code is reported, not raised
            text = str(exc).strip().splitlines()
            raise InputError(
                str(project.meta_path),
                f"custom metric {plugin!r} cannot be loaded ({type(exc).__name__}: {text[0][:200] if text else ''}); "
                'restore it, or remove it from "plugins" in project.json',
                record="plugins",
            ) from exc
    return plugins


def _remove_stale_stages(project: Project, dataset: str, keep: Path) -> None:
    """Stages a killed import of this dataset left for another annotations file: they can never resume.

    We hold the write lock, so no other import is using them.
    """
    pattern = re.compile(rf"{re.escape(dataset)}-[0-9a-f]{{16}}")
    if not project.staging_dir.is_dir():
        return
    for stale in project.staging_dir.iterdir():
        if stale != keep and stale.is_dir() and pattern.fullmatch(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def _remove_empty(folder: Path) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass
