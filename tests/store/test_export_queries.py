"""Filter & export's reads (class names, metric bounds, file names) against pandas over the same files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from store import export_queries
from store.queries import ProjectReader
from tests.store.test_gallery_queries import build_quality_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_quality_project(tmp_path_factory.mktemp("export_queries"))


def _table(project: Path, dataset: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(project / "datasets" / dataset / f"{name}.parquet")


def test_class_names_are_the_datasets_categories(project):
    reader = ProjectReader(project)
    assert export_queries.class_names(reader, ["a"]) == sorted(_table(project, "a", "categories")["name"])
    both = export_queries.class_names(reader, ["a", "b"])
    assert "rare" in both and "rare" not in export_queries.class_names(reader, ["a"])
    assert both == sorted(set(both)) and export_queries.class_names(reader, []) == []


def test_metric_bounds_are_min_and_max_over_the_chosen_datasets(project):
    reader = ProjectReader(project)
    bounds = export_queries.metric_bounds(reader, ["brightness", "object_area", "no_such_metric"], ["b"])
    assert sorted(bounds.index) == ["brightness", "object_area"]  # no values, no row
    for metric, level in (("brightness", "image"), ("object_area", "object")):
        values = pd.read_parquet(project / "datasets" / "b" / "metrics" / f"{level}__{metric}.parquet")[
            "value"
        ]
        assert (bounds.loc[metric, "lo"], bounds.loc[metric, "hi"]) == (values.min(), values.max())
    assert export_queries.metric_bounds(reader, [], ["b"]).empty


def test_image_files_of_the_listed_keys_only(project):
    reader = ProjectReader(project)
    keys = pd.DataFrame({"dataset": ["b", "a", "a"], "image_id": [101, 100, 0]})
    files = export_queries.image_files(reader, keys)
    assert list(
        zip(files["dataset"], files["image_id"], files["file_name"], files["status"], strict=True)
    ) == [
        ("a", 0, "img_0.jpg", "ok"),
        ("a", 100, "img_dup.jpg", "ok"),
        ("b", 101, "gone.jpg", "missing"),
    ]
    assert export_queries.image_files(reader, keys.iloc[:0]).empty
