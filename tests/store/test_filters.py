"""Filters: every kind of condition gives exactly the images/objects computed independently in pandas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from store.coco_import import import_coco
from store.errors import InputError
from store.filters import Filter, match_counts, matching_images, matching_objects, validate_where
from store.queries import ProjectReader
from store.tags import add_tags
from tests.conftest import write_small_coco


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two datasets of 4 images / 8 objects each; dataset 'b' has one extra image with no objects."""
    root = tmp_path_factory.mktemp("filters") / "project"
    for name, seed in (("a", 0), ("b", 1)):
        images_dir, ann = write_small_coco(root.parent / f"src_{name}", n_images=4, seed=seed)
        if name == "b":
            coco = json.loads(ann.read_text())
            coco["images"].append({"id": 99, "file_name": "img_0.jpg", "width": 160, "height": 120})
            ann.write_text(json.dumps(coco))
        import_coco(images_dir, ann, root, dataset=name, workers=1)
    return root


def _ids(frame: pd.DataFrame, *columns: str) -> set[tuple]:
    return set(map(tuple, frame[list(columns)].to_numpy().tolist()))


def _wide(reader: ProjectReader, level: str) -> pd.DataFrame:
    key = "object_id IS NULL" if level == "image" else "object_id IS NOT NULL"
    frame = reader.df(f"SELECT dataset, image_id, object_id, metric, value FROM metric_values WHERE {key}")
    index = ["dataset", "image_id"] if level == "image" else ["dataset", "image_id", "object_id"]
    return frame.pivot_table(index=index, columns="metric", values="value").reset_index()


def test_no_condition_matches_everything(project: Path) -> None:
    reader = ProjectReader(project)
    assert match_counts(reader, Filter()) == {"images": 9, "objects": 16}
    assert match_counts(reader, Filter(datasets=["b"])) == {"images": 5, "objects": 8}


def test_class_condition_keeps_images_with_that_class(project: Path) -> None:
    reader = ProjectReader(project)
    objects = matching_objects(reader, Filter(classes=["orange"]))
    assert len(objects) == 8  # write_small_coco puts one 'orange' (category 2) square in every image
    assert len(matching_images(reader, Filter(classes=["orange"]))) == 8  # not the object-less image 99


def test_metric_range_and_outliers_match_pandas(project: Path) -> None:
    reader = ProjectReader(project)
    images = _wide(reader, "image")
    low = float(images["brightness"].median())
    expected = _ids(images[images["brightness"] <= low], "dataset", "image_id")
    got = _ids(matching_images(reader, Filter(ranges={"brightness": (None, low)})), "dataset", "image_id")
    assert got == expected and 0 < len(got) < 9
    objects = _wide(reader, "object")
    lo, hi = objects["object_area"].quantile([0.25, 0.75]).tolist()
    expected = _ids(objects[objects["object_area"].between(lo, hi)], "dataset", "image_id", "object_id")
    got = _ids(
        matching_objects(reader, Filter(ranges={"object_area": (lo, hi)})), "dataset", "image_id", "object_id"
    )
    assert got == expected and len(got) >= 4
    # outliers: make the fences by hand over both datasets
    values = objects["object_area"].to_numpy()
    q1, q3 = np.quantile(values, [0.25, 0.75])
    outside = (values < q1 - 1.5 * (q3 - q1)) | (values > q3 + 1.5 * (q3 - q1))
    got = matching_objects(reader, Filter(outliers={"object_area": "any"}))
    assert len(got) == int(outside.sum()) > 0  # the fixture has outliers: 0 == 0 would prove nothing
    expected = _ids(objects[outside], "dataset", "image_id", "object_id")
    assert _ids(got, "dataset", "image_id", "object_id") == expected


def test_tags_match_through_image_or_object(project: Path) -> None:
    reader = ProjectReader(project)
    objects = reader.df("SELECT dataset, image_id, object_id FROM objects ORDER BY 1, 2, 3")
    first = objects.iloc[0]
    add_tags(project, first["dataset"], [int(first["image_id"])], [int(first["object_id"])], "check")
    add_tags(project, "b", [2], None, "check")
    counts = match_counts(reader, Filter(tags=["check"]))
    per_image = int((objects["dataset"].eq("b") & objects["image_id"].eq(2)).sum())
    assert counts == {"images": 2, "objects": 1 + per_image}
    assert match_counts(reader, Filter(tags=["check"], classes=["red"]))["images"] <= 2
    assert match_counts(reader, Filter(tags=["nothing"])) == {"images": 0, "objects": 0}


def test_issue_and_where(project: Path) -> None:
    reader = ProjectReader(project)
    # the extra image 99 in 'b' is img_0.jpg again: an exact duplicate of image 0
    assert _ids(matching_images(reader, Filter(issue="exact_duplicate_images")), "dataset", "image_id") == {
        ("b", 0),
        ("b", 99),
    }
    got = matching_objects(reader, Filter(where="category = 'red' AND object_area > 0 AND dataset = 'a'"))
    assert len(got) == 4 and set(got["dataset"]) == {"a"}
    # an image-level condition matches the object-less image too
    assert match_counts(reader, Filter(where="image_width = 160 AND width >= 160")) == {
        "images": 9,
        "objects": 16,
    }
    assert match_counts(reader, Filter(where="object_id IS NULL")) == {"images": 1, "objects": 0}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("brightness < 0.3; DROP TABLE images", "';' is not allowed"),
        ("read_csv('/etc/passwd') IS NULL", "function read_csv() is not allowed"),
        ("image_id IN (SELECT image_id FROM images)", "subquery is not allowed"),
        ("no_such_column > 1", "unknown column 'no_such_column'"),
        ("brightness <", "cannot parse"),
        ("category > 1", "Cannot compare"),
        ("brightness::INT > 0", "cast is not allowed"),
        ("brightness > 0 -- comment", "comments are not allowed"),
    ],
)
def test_where_rejects_everything_outside_the_allow_list(
    project: Path, expression: str, message: str
) -> None:
    with pytest.raises(InputError) as info:
        validate_where(ProjectReader(project), expression)
    text = str(info.value)
    assert text.startswith("--where: ") and message in text and "\n" not in text


def test_url_round_trip() -> None:
    flt = Filter(
        datasets=["a"],
        classes=["x y"],
        ranges={"brightness": (0.1, None)},
        tags=["t"],
        outliers={"object_area": "severe"},
        issue="dark_images",
        where="width > 3",
    )
    params = {k: v for k, v in flt.to_query().items() if v}
    assert Filter.from_query(params) == flt
    assert Filter.from_query({"f_range": ["bad", "m:x:1"], "f_out": ["m:huge"]}) == Filter()


def test_has_tag_in_where_matches_the_tagged_image_or_object(project: Path, tmp_path: Path) -> None:
    """`--where "has_tag('x')"`: true on an image's rows when the image carries x, and on an object row
    when the object does; usable with the rest of the expression, in the filter and in `export coco`."""
    from cli import main
    from store.coco_export import export_coco

    reader = ProjectReader(project)
    objects = reader.df("SELECT dataset, image_id, object_id FROM objects ORDER BY 1, 2, 3")
    one = objects[(objects["dataset"] == "a") & (objects["image_id"] == 1)].iloc[0]
    add_tags(project, "a", [1], [int(one["object_id"])], "it's blurry")  # one object, quote in the name
    add_tags(project, "a", [3], None, "it's blurry")  # a whole image
    add_tags(project, "b", [99], None, "empty")  # the image without objects
    where = "has_tag('it''s blurry')"
    got = matching_objects(reader, Filter(where=where))
    a3 = objects[(objects["dataset"] == "a") & (objects["image_id"] == 3)]
    assert _ids(got, "image_id", "object_id") == {(1, int(one["object_id"]))} | _ids(
        a3, "image_id", "object_id"
    )
    assert _ids(matching_images(reader, Filter(where=where)), "dataset", "image_id") == {("a", 1), ("a", 3)}
    assert match_counts(reader, Filter(where="HAS_TAG ( 'empty' ) AND object_id IS NULL")) == {
        "images": 1, "objects": 0,
    }  # fmt: skip
    assert match_counts(reader, Filter(where="has_tag('no such tag') OR category = 'red'"))["objects"] == 8
    assert match_counts(reader, Filter(where="NOT has_tag('it''s blurry') AND dataset = 'a'"))["objects"] == (
        8 - 1 - len(a3)
    )
    # text that only looks like a call is left alone
    assert match_counts(reader, Filter(where="file_name = 'has_tag(''x'')'")) == {"images": 0, "objects": 0}
    with pytest.raises(InputError, match="has_tag\\(\\) takes one quoted tag name"):
        validate_where(reader, "has_tag(category)")

    result = export_coco(project, tmp_path / "a.json", dataset="a", where=where)
    assert (result["images"], result["objects"]) == (2, 1 + len(a3))
    out = tmp_path / "cli.json"
    argv = [
        "export",
        "coco",
        "--project",
        str(project),
        "--dataset",
        "a",
        "--out",
        str(out),
        "--where",
        where,
    ]
    assert main(argv) == 0
    assert sorted(image["id"] for image in json.loads(out.read_text())["images"]) == [1, 3]
