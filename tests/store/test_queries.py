"""The SQL summaries equal the pure-Python definitions in metrics.outliers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrics import registry
from metrics.outliers import summary
from store.metric_files import metric_frame, write_metric
from store.project import Project, write_json_atomic, write_parquet_atomic
from store.queries import ProjectReader


def test_metric_summary_equals_outlier_definitions(tmp_path):
    project = Project(tmp_path / "p")
    project.ensure()
    rng = np.random.default_rng(0)
    folder = project.datasets_dir / "d"
    values = np.r_[rng.normal(0, 1, 500), [8.0, -9.0, 3.2, 4.1, np.nan]]  # tails on both sides + a null
    image_ids = np.arange(len(values))
    write_parquet_atomic(folder / "images.parquet", pd.DataFrame({"dataset": "d", "image_id": image_ids}))
    write_json_atomic(folder / "dataset.json", {"name": "d"})
    spec = registry.get("brightness")
    write_metric(folder, spec, metric_frame("d", spec, image_ids, values))
    row = ProjectReader(project.root).metric_summary().set_index("metric").loc["brightness"]
    expected = summary(values)
    assert row["count"] == expected["count"] == 504
    for key in ("mean", "median", "min", "max"):
        assert row[key] == pytest.approx(expected[key], abs=1e-12)
    assert (row["moderate_outliers"], row["severe_outliers"]) == (
        expected["moderate_outliers"],
        expected["severe_outliers"],
    )
    assert expected["severe_outliers"] >= 2
