"""Gallery SQL: filters, sorting, pagination and issues agree with the raw Parquet files and the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrics.outliers import iqr_bounds
from store import gallery_queries as gq
from store import tags
from store.coco_import import import_coco
from store.queries import ProjectReader
from store.report import issue_counts
from tests.conftest import shared, write_small_coco


def build_quality_project(folder: Path) -> Path:
    """Two small datasets with one of each problem: a missing file, an exact duplicate, a tiny and a
    degenerate object, and (in ``b``) a class with a single object."""
    root = folder / "project"
    for name, seed in (("a", 0), ("b", 1)):
        images_dir, ann = write_small_coco(folder / name, n_images=6, seed=seed)
        coco = json.loads(ann.read_text())
        shutil.copy(images_dir / "img_0.jpg", images_dir / "img_dup.jpg")
        coco["images"] += [
            {"id": 100, "file_name": "img_dup.jpg", "width": 160, "height": 120},
            {"id": 101, "file_name": "gone.jpg", "width": 160, "height": 120},
        ]
        extra = [
            (100, 1, [[10, 10, 40, 10, 40, 40, 10, 40]], [10, 10, 30, 30]),  # on the duplicate
            (101, 2, [[20, 20, 60, 20, 60, 60, 20, 60]], [20, 20, 40, 40]),  # on the missing image
            (1, 1, [[50, 50, 51, 50, 51, 51, 50, 51]], [50, 50, 1, 1]),  # tiny: 1 px of 19,200
            (2, 2, [[5, 5, 30, 30]], [5, 5, 25, 25]),  # degenerate polygon: 2 points
        ]
        if name == "b":
            coco["categories"].append({"id": 3, "name": "rare"})
            extra.append((3, 3, [[60, 60, 90, 60, 90, 90, 60, 90]], [60, 60, 30, 30]))
        for offset, (image_id, category_id, seg, bbox) in enumerate(extra):
            coco["annotations"].append(
                {
                    "id": 1000 + offset,
                    "image_id": image_id,
                    "category_id": category_id,
                    "bbox": bbox,
                    "area": float(bbox[2] * bbox[3]),
                    "iscrowd": 0,
                    "segmentation": seg,
                }
            )
        ann.write_text(json.dumps(coco))
        import_coco(images_dir, ann, root, dataset=name, workers=1)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_quality_project(tmp_path_factory.mktemp("gallery"))


@pytest.fixture(scope="module")
def reader(project: Path) -> ProjectReader:
    return ProjectReader(project)


def _metric_file(project: Path, dataset: str, level: str, metric: str) -> pd.DataFrame:
    return pd.read_parquet(project / "datasets" / dataset / "metrics" / f"{level}__{metric}.parquet")


def test_range_filter_counts_match_the_metric_files(project, reader):
    values = pd.concat([_metric_file(project, d, "image", "brightness") for d in ("a", "b")])
    low, high = values["value"].quantile([0.2, 0.7]).tolist()
    f = gq.GalleryFilter(level="image", datasets=["a", "b"], metric="brightness", low=low, high=high)
    expected = int(((values["value"] >= low) & (values["value"] <= high)).sum())
    assert 0 < expected < len(values)
    assert gq.count_items(reader, f) == expected
    assert gq.count_items(reader, gq.GalleryFilter(level="image", datasets=["a"])) == 8
    assert gq.count_items(reader, gq.GalleryFilter(level="object", datasets=["a", "b"])) == 2 * (12 + 4) + 1


def test_sorting_both_directions_and_pages_cover_everything_once(project, reader):
    values = _metric_file(project, "a", "image", "contrast").dropna(subset=["value"])
    f = gq.GalleryFilter(level="image", datasets=["a"])
    ascending = pd.concat([gq.page_items(reader, f, "contrast", False, page, 3) for page in range(3)])
    assert len(ascending) == 8 and ascending["image_id"].is_unique
    finite = ascending["sort_value"].dropna().to_numpy()
    assert np.all(np.diff(finite) >= 0)
    assert np.allclose(finite, np.sort(values["value"].to_numpy()))
    assert ascending["sort_value"].isna().to_numpy()[-1]  # the missing image has no contrast: last
    descending = gq.page_items(reader, f, "contrast", True, 0, 8)
    assert np.all(np.diff(descending["sort_value"].dropna().to_numpy()) <= 0)
    assert pd.isna(descending["sort_value"].iloc[-1])  # nulls last in either direction
    assert descending.iloc[0]["sort_value"] == pytest.approx(values["value"].max())


@pytest.mark.parametrize(
    "issue",
    [
        "missing_images",
        "exact_duplicate_images",
        "dark_images",
        "light_images",
        "blurry_images",
        "low_information_images",
        "unreadable_images",
        "tiny_objects",
        "invalid_geometry_objects",
    ],
)
def test_each_issue_gallery_has_as_many_items_as_the_report_counts(reader, issue):
    expected = issue_counts(reader, ["a", "b"])[issue]
    f = gq.GalleryFilter(level=gq.issue_level(issue), datasets=["a", "b"], issue=issue)
    assert gq.count_items(reader, f) == expected


def test_issue_galleries_show_exactly_the_problem_items(project, reader):
    def keys(issue: str) -> set[tuple]:
        f = gq.GalleryFilter(level=gq.issue_level(issue), datasets=["a", "b"], issue=issue)
        rows = gq.page_items(reader, f, None, False, 0, 100)
        return {
            (r.dataset, int(r.image_id)) if pd.isna(r.object_id) else (r.dataset, int(r.object_id))
            for r in rows.itertuples()
        }

    assert keys("missing_images") == {("a", 101), ("b", 101)}
    assert keys("exact_duplicate_images") == {("a", 0), ("a", 100), ("b", 0), ("b", 100)}
    assert keys("tiny_objects") == {("a", 1002), ("b", 1002)}
    assert keys("invalid_geometry_objects") >= {("a", 1003), ("b", 1003)}
    objects = pd.concat([pd.read_parquet(project / "datasets" / d / "objects.parquet") for d in ("a", "b")])
    sizes = objects.groupby(["dataset", "category_id"])["object_id"].transform("size")
    small = objects[sizes < 10]
    assert keys("classes_under_10_objects") == set(
        zip(small["dataset"], small["object_id"].astype(int), strict=True)
    )
    assert ("b", 1004) in keys("classes_under_10_objects")  # the single "rare" object


def test_duplicates_come_grouped(reader):
    f = gq.GalleryFilter(level="image", datasets=["a", "b"], issue="exact_duplicate_images")
    rows = gq.page_items(reader, f, "brightness", True, 0, 10)
    groups = list(zip(rows["dataset"], rows["duplicate_group"], strict=True))
    assert groups == sorted(groups)  # members of a group are adjacent
    assert rows.groupby(["dataset", "duplicate_group"]).size().tolist() == [2, 2]


def test_histogram_counts_every_value_and_bounds_match_the_outlier_module(project, reader):
    for level, metric in (("image", "brightness"), ("object", "object_area_relative")):
        hist = gq.metric_histogram(reader, metric, level, ["a", "b"], bins=7)
        for dataset in ("a", "b"):
            values = _metric_file(project, dataset, level, metric)["value"].dropna()
            assert hist[hist["dataset"] == dataset]["count"].sum() == len(values)
        both = pd.concat([_metric_file(project, d, level, metric) for d in ("a", "b")])["value"]
        bounds = gq.metric_bounds(reader, metric, level, ["a", "b"])
        reference = iqr_bounds(both.to_numpy())
        for key in ("q1", "q3", "moderate_low", "moderate_high", "severe_low", "severe_high"):
            assert bounds[key] == pytest.approx(reference[key])
        assert hist["bin_low"].min() == pytest.approx(both.min())
        assert hist["bin_high"].max() == pytest.approx(both.max())


def test_metric_names_from_files_equal_the_view(reader):
    for level in ("image", "object"):
        assert gq.stored_metric_names(reader, level) == reader.metric_names(level)


def test_tag_filter_and_filter_keys(project, reader):
    tags.add_tags(project, "a", [2, 3], None, "look")
    tags.add_tags(project, "b", [100], [1000], "look")
    keys = tags.tagged(project, "look")
    images = gq.GalleryFilter(level="image", datasets=["a", "b"], tag_keys=keys)
    assert set(
        gq.filter_keys(reader, images)[["dataset", "image_id"]].itertuples(index=False, name=None)
    ) == {
        ("a", 2),
        ("a", 3),
        ("b", 100),
    }
    objects = gq.GalleryFilter(level="object", datasets=["b"], tag_keys=keys)
    assert gq.filter_keys(reader, objects)["object_id"].tolist() == [1000]
    tags.remove_tags(project, "a", [2, 3], None, "look")
    tags.remove_tags(project, "b", [100], [1000], "look")


def test_class_distribution_imbalance_and_dataset_means(project, reader):
    dist = gq.class_distribution(reader, ["a", "b"])
    summary = gq.imbalance_summary(dist)
    b_counts = dist[dist["dataset"] == "b"].set_index("category")["objects"]
    assert b_counts["rare"] == 1
    assert summary["b"]["classes_under_10"] == 3 and summary["b"]["smallest_class"] == "rare"
    assert summary["b"]["largest_smallest_ratio"] == pytest.approx(b_counts.max() / 1)
    means = gq.dataset_metric_means(reader, ["a", "b"], "object").set_index("dataset")
    expected = _metric_file(project, "a", "object", "object_area")["value"].mean()
    assert means.loc["a", "object_area"] == pytest.approx(expected)


def test_detail_queries(reader):
    metrics = gq.item_metrics(reader, "a", 0)
    assert {"brightness", "width"} <= set(metrics["metric"])
    objects = gq.image_object_metrics(reader, "a", 0)
    assert len(objects) == 2 and "object_area" in objects.columns
    partners = gq.duplicate_partners(reader, "a", 0)
    assert 100 in set(partners[partners["kind"] == "exact"]["image_id"])
    assert gq.image_record(reader, "a", 424242) is None


def test_fruits_nuts_gallery_queries(tmp_path):
    fruits = shared("fruits_nuts")
    root = tmp_path / "p"
    import_coco(fruits / "images", fruits / "annotations.json", root, dataset="fruits", workers=2)
    reader = ProjectReader(root)
    dist = gq.class_distribution(reader, ["fruits"])
    assert dist["objects"].sum() == 165 and set(dist["category"]) == {"date", "fig", "hazelnut"}
    f = gq.GalleryFilter(level="object", datasets=["fruits"])
    smallest = gq.page_items(reader, f, "object_area_relative", False, 0, 5)
    values = _metric_file(root, "fruits", "object", "object_area_relative")["value"]
    assert smallest["sort_value"].tolist() == pytest.approx(sorted(values)[:5])
    assert smallest["category"].notna().all()
    assert gq.count_items(reader, gq.GalleryFilter(level="image", datasets=["fruits"])) == 18
