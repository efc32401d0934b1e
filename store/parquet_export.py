"""``cocolens export parquet``: every table of a project as one Parquet file each, for DuckDB/Spark/pandas.

The project's own files are split per dataset and per metric (so imports commit atomically and
metrics recompute one at a time); an analyst wants one file per table instead. DuckDB's COPY
streams each query to Parquet, so memory stays bounded whatever the project's size. Each file is
written beside its final name and renamed into place: a reader of OUT never sees a torn file.

Files (only those with a source in the project): images, objects, categories, metric_values
(long: dataset, image_id, object_id, metric, version, value), image_metrics and object_metrics
(wide: one column per metric), duplicates, predictions, prediction_matches, gt_matches, tags;
plus manifest.json (row counts and columns).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from store.errors import InputError
from store.project import Project, write_json_atomic, write_parquet_atomic
from store.queries import VIEWS, ProjectReader

# View tables exported as they are, in this order.
PLAIN_TABLES = [
    "images",
    "objects",
    "categories",
    "metric_values",
    "duplicates",
    "predictions",
    "prediction_matches",
    "gt_matches",
]


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def _copy(reader: ProjectReader, sql: str, params: list[Any], target: Path) -> tuple[int, list[str]]:
    """Stream a query to ``target`` (atomic rename); return (rows, column names)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    cursor = reader.cursor()
    try:
        cursor.execute(f"COPY ({sql}) TO '{_sql_text(tmp)}' (FORMAT parquet, COMPRESSION zstd)", params)
        source = f"read_parquet('{_sql_text(tmp)}')"
        rows = cursor.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
        columns = [d[0] for d in cursor.execute(f"SELECT * FROM {source} LIMIT 0").description]
        os.replace(tmp, target)
    finally:
        cursor.close()
        tmp.unlink(missing_ok=True)
    return int(rows), [str(c) for c in columns or []]


def _has_source(project: Project, view: str) -> bool:
    return bool(list(project.root.glob(VIEWS[view]))[:1])


def export_parquet(project_dir: str | Path, out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Write one Parquet file per table into ``out_dir``; return {table: {"rows", "file", "columns"}}."""
    project = Project(project_dir)
    if not project.exists():
        raise InputError(str(project_dir), "not a cocolens project (no project.json)", field="--project")
    out = Path(out_dir).expanduser().resolve()
    if out == project.root or out.is_relative_to(project.root):
        raise InputError(str(out_dir), "choose a folder outside the project", field="--out")
    if out.exists() and not out.is_dir():
        raise InputError(str(out_dir), "exists and is not a folder", field="--out")
    out.mkdir(parents=True, exist_ok=True)

    from store.wide import image_table_sql, object_table_sql

    reader = ProjectReader(project.root)
    queries: list[tuple[str, str, list[Any]]] = [
        (name, f"SELECT * FROM {name}", []) for name in PLAIN_TABLES if _has_source(project, name)
    ]
    if _has_source(project, "images"):
        queries.append(("image_metrics", *image_table_sql(reader)))
    if _has_source(project, "objects"):
        queries.append(("object_metrics", *object_table_sql(reader)))
    manifest: dict[str, dict[str, Any]] = {}
    for name, sql, params in queries:
        target = out / f"{name}.parquet"
        rows, columns = _copy(reader, sql, params, target)
        manifest[name] = {"file": target.name, "rows": rows, "columns": columns}
    if project.tags_db.is_file():
        from store.tags import tagged

        tags = tagged(project.root)
        write_parquet_atomic(out / "tags.parquet", tags)
        manifest["tags"] = {"file": "tags.parquet", "rows": len(tags), "columns": list(tags.columns)}
    write_json_atomic(out / "manifest.json", {"project": str(project.root), "tables": manifest})
    return manifest
