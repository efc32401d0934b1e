"""store.schemas: each table's columns and types in one place, and the writers and readers agree with it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from store import embedding_store, label_decisions
from store.coco_import import import_coco
from store.schemas import DUPLICATES, LABEL_DECISIONS, MAP_POINTS, column_names, empty_frame
from tests.conftest import write_small_coco


def _decision(image_id: int) -> dict:
    return {"finding": "object", "image_id": image_id, "item_id": 7, "fix": "relabel", "category_id": 2}


def test_decisions_read_empty_and_full_have_the_schemas_columns_and_types(tmp_path: Path) -> None:
    empty = label_decisions.decisions(tmp_path)  # no tags.sqlite yet
    assert empty.empty and list(empty.columns) == column_names(LABEL_DECISIONS)
    label_decisions.decide(tmp_path, "d", [_decision(3)], "accepted")
    full = label_decisions.decisions(tmp_path)
    assert list(full.columns) == list(empty.columns)
    assert full.loc[0, ["image_id", "item_id", "category_id"]].tolist() == [3, 7, 2]
    for column in ("image_id", "item_id", "decided"):
        assert full[column].dtype == empty[column].dtype, column


def test_the_decisions_table_is_created_from_the_schema(tmp_path: Path) -> None:
    label_decisions.decide(tmp_path, "d", [_decision(1)], "rejected")
    with sqlite3.connect(tmp_path / "tags.sqlite") as con:
        info = con.execute("PRAGMA table_info(label_decisions)").fetchall()
    assert [row[1] for row in info] == column_names(LABEL_DECISIONS)
    not_null = {row[1] for row in info if row[3]}
    assert not_null == {f.name for f in LABEL_DECISIONS if not f.nullable}
    assert {row[1] for row in info if row[5]} == {"dataset", "finding", "image_id", "item_id"}  # primary key


def test_an_imported_datasets_duplicates_file_has_the_schemas_columns(tmp_path: Path) -> None:
    images, annotations = write_small_coco(tmp_path / "src", n_images=3)
    import_coco(images, annotations, tmp_path / "project", dataset="small", workers=1)
    written = pd.read_parquet(tmp_path / "project" / "datasets" / "small" / "duplicates.parquet")
    assert list(written.columns) == column_names(DUPLICATES)
    assert list(empty_frame(DUPLICATES).columns) == column_names(DUPLICATES)


def test_the_map_of_no_datasets_is_an_empty_frame_of_map_points(tmp_path: Path) -> None:
    images, annotations = write_small_coco(tmp_path / "src", n_images=2)
    import_coco(images, annotations, tmp_path / "project", dataset="small", workers=1)
    points, total = embedding_store.map_points(tmp_path / "project", ["small"], "image")  # no embeddings
    assert total == 0 and points.empty
    pd.testing.assert_frame_equal(points, empty_frame(MAP_POINTS))
