"""Decode images while ``cocolens import coco`` is still importing pandas and validating its input.

On a 200-photo folder the importer's first ~0.5 s went to importing pandas and pyarrow and reading
the COCO file, while the worker processes started at once (metrics.pipeline.start_workers_early)
had nothing to do: a quarter of the import with one core idle. This reads just the ``images``
section of a small annotations file, builds the records ``import_coco`` will build (same
functions: store/image_paths.py) and queues them on those workers.

It is a guess made before validation, so it writes nothing and decides nothing: the image pass
adopts the queued chunks only when all of them are exactly chunks of its own (otherwise it stops
these workers and starts others: metrics.pipeline.queue_early), and input that later fails
validation costs some CPU, never a result or a changed project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metrics import pipeline
from metrics.engines import chosen_engine
from store.image_paths import image_pass_records, resolve_image_paths

# Larger inputs are not guessed at: parsing them twice costs more than the ~0.5 s head start saves.
MAX_ANNOTATIONS_BYTES = 32 * 1024**2
MAX_IMAGES = 5_000


def start_image_pass_early(
    images_dir: str | Path,
    annotations: str | Path,
    project_dir: str | Path,
    engine: str | None,
    workers: int,
    fork: bool = False,
) -> int:
    """Start the pass's workers (metrics.pipeline.start_workers_early) and queue its chunks on them.

    Nothing starts when the pass will not run on this machine's plain workers: ``engine`` or the
    project's settings send it to Ray, or the project adds custom metrics (the early workers have
    none). Returns the number of chunks queued.
    """
    if not _pass_runs_on_plain_workers(Path(project_dir), engine):
        return 0
    pipeline.start_workers_early(workers, fork=fork)
    return queue_image_pass(images_dir, annotations)


def queue_image_pass(images_dir: str | Path, annotations: str | Path) -> int:
    """Queue the image pass of this import on the early workers; the number of chunks queued.

    0 when there is nothing safe to guess: a large or unreadable file, a record that is not plain,
    images in object storage.
    """
    try:
        path = Path(annotations)
        if path.stat().st_size > MAX_ANNOTATIONS_BYTES:
            return 0
        images = json.loads(path.read_bytes()).get("images")
        if not isinstance(images, list) or len(images) > MAX_IMAGES:
            return 0
        names, widths, heights = [], [], []
        for record in images:
            name, width, height = record.get("file_name"), record.get("width"), record.get("height")
            if not (isinstance(name, str) and _plain_int(width) and _plain_int(height)):
                return 0  # the reader will say what is wrong
            names.append(name)
            widths.append(width)
            heights.append(height)
        root = Path(images_dir).expanduser()
        if not root.is_dir():
            return 0
        resolved, known_missing = resolve_image_paths(root.resolve(), names)
    except (OSError, ValueError, AttributeError, RecursionError):
        return 0
    records = image_pass_records(resolved, widths, heights, known_missing.tolist())
    return pipeline.queue_early([record for record in records if not record["known_missing"]])


def _plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pass_runs_on_plain_workers(project_dir: Path, engine: str | None) -> bool:
    """The importer's choice (store.coco_import.resolve_engine, load_project_plugins) read without
    pandas; False for a settings file it would reject, which it then reports."""
    settings_file = project_dir / "project.json"
    try:
        meta = json.loads(settings_file.read_bytes()) if settings_file.is_file() else {}
        return chosen_engine(engine, meta) == "local" and not meta.get("plugins")
    except (OSError, ValueError, AttributeError, RecursionError):
        return False
