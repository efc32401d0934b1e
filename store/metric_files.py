"""Metric values on disk: one Parquet file per metric, keyed by name and version.

``datasets/NAME/metrics/LEVEL__METRIC.parquet`` with columns dataset, image_id, object_id, metric,
version, value. A metric whose code changes bumps its version, and only files whose version differs
from the registry's are recomputed: results are never keyed on description text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from metrics.registry import MetricSpec
from store.project import write_parquet_atomic


def metric_path(dataset_dir: Path, spec: MetricSpec) -> Path:
    return dataset_dir / "metrics" / f"{spec.level}__{spec.name}.parquet"


def metric_frame(
    dataset: str,
    spec: MetricSpec,
    image_ids: np.ndarray,
    values: np.ndarray | list,
    object_ids: np.ndarray | None = None,
) -> pd.DataFrame:
    values = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").astype("float64")
    values = values.where(np.isfinite(values))
    count = len(values)
    return pd.DataFrame(
        {
            "dataset": pd.Series([dataset] * count, dtype="string"),
            "image_id": pd.Series(np.asarray(image_ids, dtype="int64")),
            "object_id": pd.Series(
                np.asarray(object_ids, dtype="int64") if object_ids is not None else [None] * count,
                dtype="Int64",
            ),
            "metric": pd.Series([spec.name] * count, dtype="string"),
            "version": pd.Series([spec.version] * count, dtype="int64"),
            "value": values.to_numpy(),
        }
    )


def write_metric(dataset_dir: Path, spec: MetricSpec, frame: pd.DataFrame) -> None:
    write_parquet_atomic(metric_path(dataset_dir, spec), frame)


def stored_versions(dataset_dir: Path) -> dict[str, int]:
    """Name → version of every metric stored for a dataset (read from file metadata only)."""
    versions: dict[str, int] = {}
    folder = dataset_dir / "metrics"
    if not folder.is_dir():
        return versions
    for path in folder.glob("*.parquet"):
        name = path.stem.split("__", 1)[1]
        table = pq.read_table(path, columns=["version"])
        versions[name] = int(table.column("version")[0].as_py()) if table.num_rows else -1
    return versions
