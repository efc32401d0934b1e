"""Where the per-image pass runs: ``local`` (a process pool on this machine) or ``ray`` (Ray Data).

Both engines yield ``(index into records, row)`` where a row is the flat, Parquet-ready form of
:func:`metrics.image.compute_image`'s result (:data:`IMAGE_ROW_COLUMNS`): the importer's checkpoint
chunk files hold exactly these rows whichever engine produced them, so values, resume and the
tables built from them do not depend on the engine. Metric values travel as JSON text, which
round-trips every float exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

ENGINES = ("local", "ray")

IMAGE_RESULT_COLUMNS = [
    "status",
    "error",
    "decoded_width",
    "decoded_height",
    "exif_orientation",
    "orientation_applied",
    "file_size",
    "content_hash",
    "pixel_hash",
    "phash",
]
IMAGE_ROW_COLUMNS = ["image_id", *IMAGE_RESULT_COLUMNS, "metrics_json"]


def result_row(image_id: int, result: dict[str, Any]) -> dict[str, Any]:
    """compute_image's result → one flat row (metrics as JSON text)."""
    row: dict[str, Any] = {"image_id": int(image_id)}
    for key in IMAGE_RESULT_COLUMNS:
        row[key] = result.get(key)
    row["metrics_json"] = json.dumps(result.get("metrics", {}))
    return row


def row_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """The metric name → value dict of a row (the inverse of :func:`result_row` for metrics)."""
    text = row.get("metrics_json")
    return json.loads(text) if text else {}


def is_url(path: str) -> bool:
    """True for object-storage / remote paths (``s3://``, ``gs://``, ``file://``...)."""
    return "://" in path


def chosen_engine(asked: str | None, project_meta: dict[str, Any]) -> str:
    """The engine asked for, else the project's ``settings.engine``, else 'local' (not yet checked)."""
    return asked or (project_meta.get("settings") or {}).get("engine") or "local"


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def image_rows(
    records: list[dict[str, Any]],
    image_ids: Sequence[int],
    engine: str = "local",
    workers: int = 2,
    plugins: Sequence[str] = (),
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(index, row)`` for every record, in completion order, on the chosen engine.

    ``records`` are compute_image records (path, width, height); ``image_ids[i]`` keys row i.
    """
    check_engine(engine)
    if engine == "ray":
        from metrics.ray_engine import ray_image_rows

        yield from ray_image_rows(records, image_ids, workers=workers, plugins=plugins)
        return
    from metrics.pipeline import run_image_pass

    for index, result in run_image_pass(records, workers=workers, plugins=plugins):
        yield index, result_row(int(image_ids[index]), result)


def missing_image_rows(
    records: list[dict[str, Any]], image_ids: Sequence[int], plugins: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Rows of records whose files are known to be absent, computed in this process.

    The same :func:`metrics.image.compute_image` rows a worker would give (status 'missing', the
    geometry metrics from the annotated size, custom metrics that need no pixels), without opening
    the file or starting a worker pool for them.
    """
    from metrics import registry
    from metrics.image import compute_image, missing_file_error

    registry.ensure_builtin_loaded()
    for plugin in plugins:
        registry.load_plugin(plugin)
    if plugins:  # custom metrics may read anything in the record: each one computed
        return [
            result_row(int(image_id), compute_image({**record, "known_missing": True}))
            for record, image_id in zip(records, image_ids, strict=True)
        ]
    # The built-in metrics of a missing file depend on the annotated size alone (and the error on
    # the path): one computed row per size, the rest copied from it.
    by_size: dict[tuple[Any, Any], dict[str, Any]] = {}
    rows = []
    for record, image_id in zip(records, image_ids, strict=True):
        size = (record.get("width"), record.get("height"))
        template = by_size.get(size)
        if template is None:
            template = by_size[size] = result_row(0, compute_image({**record, "known_missing": True}))
            if template["error"] != missing_file_error(str(record.get("path") or "")):
                return [  # not the plain missing-file row: compute each, as the workers would
                    result_row(int(i), compute_image({**r, "known_missing": True}))
                    for r, i in zip(records, image_ids, strict=True)
                ]
        rows.append(
            {
                **template,
                "image_id": int(image_id),
                "error": missing_file_error(str(record.get("path") or "")),
            }
        )
    return rows


def image_results(
    records: list[dict[str, Any]], engine: str = "local", workers: int = 2, plugins: Sequence[str] = ()
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Drop-in for ``metrics.pipeline.run_image_pass`` on either engine: ``(index, {"metrics": ...})``.

    For callers that only need metric values (``cocolens metrics``); status fields are included.
    """
    for index, row in image_rows(records, list(range(len(records))), engine, workers, plugins):
        result = {key: row.get(key) for key in IMAGE_RESULT_COLUMNS}
        result["metrics"] = row_metrics(row)
        yield index, result
