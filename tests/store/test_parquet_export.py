"""``cocolens export parquet``: one file per table, readable by DuckDB and pandas, equal to the project."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cli import main
from store.errors import InputError
from store.parquet_export import export_parquet
from store.queries import ProjectReader
from tests.conftest import shared, write_small_coco


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pq")
    root = folder / "project"
    images_dir, ann = write_small_coco(folder / "small", n_images=3)
    for name, images, coco_file in (
        ("small", images_dir, ann),
        ("fruits", shared("fruits_nuts", "images"), shared("fruits_nuts", "annotations.json")),
    ):
        args = ["import", "coco", "--images", str(images), "--annotations", str(coco_file)]
        assert main([*args, "--project", str(root), "--dataset", name, "--quiet"]) == 0
    from store.tags import add_tags

    add_tags(root, "fruits", [0, 1], None, "review")
    return root


def test_cli_exports_every_table_with_the_projects_rows(project, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", "parquet", "--project", str(project), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    manifest = json.loads((out / "manifest.json").read_text())["tables"]
    expected = {
        "images",
        "objects",
        "categories",
        "metric_values",
        "duplicates",
        "image_metrics",
        "object_metrics",
        "tags",
    }
    assert set(manifest) == expected == set(printed["rows"])
    reader = ProjectReader(project)
    for table in ("images", "objects", "categories", "metric_values", "duplicates"):
        in_project = reader.scalar(f"SELECT count(*) FROM {table}")
        assert manifest[table]["rows"] == in_project, table
        assert in_project > 0 or table == "duplicates"
        assert (
            duckdb.sql(f"SELECT count(*) FROM '{out / (table + '.parquet')}'").fetchall()[0][0] == in_project
        )
    fruits_objects = json.loads(shared("fruits_nuts", "annotations.json").read_text())["annotations"]
    objects = pd.read_parquet(out / "objects.parquet")
    assert (objects["dataset"] == "fruits").sum() == len(fruits_objects)
    assert (objects["dataset"] == "small").sum() == 6
    assert pd.read_parquet(out / "tags.parquet")[["dataset", "image_id", "tag"]].values.tolist() == [
        ["fruits", 0, "review"],
        ["fruits", 1, "review"],
    ]


def test_wide_tables_hold_the_long_values(project, tmp_path):
    out = tmp_path / "out"
    export_parquet(project, out)
    long = pd.read_parquet(out / "metric_values.parquet")
    wide_images = pd.read_parquet(out / "image_metrics.parquet")
    wide_objects = pd.read_parquet(out / "object_metrics.parquet")
    assert len(wide_images) == 3 + 18 and len(wide_objects) == len(pd.read_parquet(out / "objects.parquet"))
    brightness = long[long["metric"] == "brightness"].set_index(["dataset", "image_id"])["value"]
    wide = wide_images.set_index(["dataset", "image_id"])["brightness"]
    pd.testing.assert_series_equal(wide.sort_index(), brightness.sort_index(), check_names=False)
    assert wide.between(0, 1).all()
    object_metric = long[long["object_id"].notna()]["metric"].iloc[0]
    assert object_metric in wide_objects.columns


def test_export_is_refused_into_the_project_or_from_a_non_project(project, tmp_path):
    with pytest.raises(InputError, match="outside the project"):
        export_parquet(project, project / "exports")
    with pytest.raises(InputError, match="not a cocolens project"):
        export_parquet(tmp_path / "nothing", tmp_path / "out")
    assert not (project / "exports").exists()
