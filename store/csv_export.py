"""``cocolens export csv``: one row per image, object or prediction, one column per metric."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from store.errors import InputError
from store.queries import ProjectReader
from store.wide import image_table_sql, object_table_sql


def export_csv(project_dir: str | Path, out: str | Path, level: str, dataset: str | None = None) -> int:
    """Write the CSV atomically (DuckDB streams it, no whole-table pandas load); return the row count."""
    reader = ProjectReader(project_dir)
    if not reader.project.exists():
        raise InputError(str(project_dir), "not a cocolens project (no project.json)", field="--project")
    datasets = [dataset] if dataset else None
    if dataset and dataset not in reader.datasets():
        raise InputError(str(project_dir), f"no dataset named {dataset!r}", field="--dataset")
    if level == "image":
        sql, params = image_table_sql(reader, datasets)
    elif level == "object":
        sql, params = object_table_sql(reader, datasets)
    elif level == "prediction":
        from store.prediction_tables import prediction_table_sql

        sql, params = prediction_table_sql(reader, datasets)
    else:
        raise InputError("--level", f"expected image, object or prediction, got {level!r}")
    return copy_to_csv(reader, sql, params, out)


def copy_to_csv(
    reader: ProjectReader,
    sql: str,
    params: list[Any],
    out: str | Path,
    tables: dict[str, pd.DataFrame] | None = None,
) -> int:
    """The rows of ``sql`` (``tables``: in-memory frames it joins) written to ``out`` as CSV with a header,
    streamed by DuckDB (no whole-table pandas load) into a temporary file renamed over ``out`` only when
    complete; returns the row count."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    cur = reader.cursor()
    try:
        for name, frame in (tables or {}).items():
            cur.register(name, frame)
        cur.execute(
            f"COPY ({sql}) TO '{str(tmp).replace(chr(39), chr(39) * 2)}' (HEADER, DELIMITER ',')", params
        )
        rows = cur.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
        os.replace(tmp, out)
    finally:
        cur.close()
        tmp.unlink(missing_ok=True)
    return int(rows)
