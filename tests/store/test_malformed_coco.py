"""Bad COCO input: one line naming file, record and field; exit code 2; project byte-identical."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from cli import main
from tests.conftest import cli_import, import_argv, write_small_coco


def snapshot(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("base")
    images_dir, ann = write_small_coco(folder)
    project = folder / "project"
    cli_import(images_dir, ann, project, "good")
    return {"images": images_dir, "coco": json.loads(ann.read_text()), "project": project}


def _set(path: list, value):
    def mutate(coco: dict) -> None:
        target = coco
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list):
    def mutate(coco: dict) -> None:
        target = coco
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _append(section: str, index: int, changes: dict):
    def mutate(coco: dict) -> None:
        record = copy.deepcopy(coco[section][index])
        record.update(changes)
        coco[section].append(record)

    return mutate


# (case id, mutation of the valid COCO dict, fragments the one-line error must contain)
CASES = [
    ("images-not-list", _set(["images"], {}), ["top level", "'images'", "expected a list"]),
    ("images-missing", _delete(["images"]), ["'images'", "missing"]),
    ("categories-missing", _delete(["categories"]), ["'categories'", "missing"]),
    ("annotations-not-list", _set(["annotations"], "x"), ["'annotations'", "expected a list"]),
    ("image-not-object", _set(["images", 1], 7), ["images[1]", "expected an object"]),
    ("image-id-missing", _delete(["images", 0, "id"]), ["images[0]", "'id'", "missing"]),
    ("image-id-string", _set(["images", 0, "id"], "a"), ["images[0]", "'id'", "integer"]),
    ("image-id-negative", _set(["images", 0, "id"], -3), ["(id=-3)", "'id'", "≥ 0"]),
    ("image-id-bool", _set(["images", 0, "id"], True), ["images[0]", "'id'", "integer"]),
    ("image-id-duplicate", _set(["images", 1, "id"], 0), ["images[1] (id=0)", "duplicate image id"]),
    ("image-width-missing", _delete(["images", 2, "width"]), ["images[2] (id=2)", "'width'", "missing"]),
    ("image-width-zero", _set(["images", 2, "width"], 0), ["(id=2)", "'width'", "≥ 1"]),
    ("image-height-float", _set(["images", 2, "height"], 12.5), ["(id=2)", "'height'", "integer"]),
    ("image-height-nan-string", _set(["images", 2, "height"], "NaN"), ["'height'", "integer"]),
    ("file-name-missing", _delete(["images", 3, "file_name"]), ["images[3] (id=3)", "'file_name'"]),
    ("file-name-empty", _set(["images", 3, "file_name"], ""), ["'file_name'", "non-empty"]),
    (
        "file-name-escape",
        _set(["images", 3, "file_name"], "../../etc/passwd"),
        ["'file_name'", "leaves the images folder"],
    ),
    (
        "file-name-absolute",
        _set(["images", 3, "file_name"], "/etc/passwd"),
        ["'file_name'", "leaves the images folder"],
    ),
    (
        "category-id-duplicate",
        _append("categories", 0, {}),
        ["categories[2] (id=1)", "duplicate category id"],
    ),
    ("category-name-missing", _delete(["categories", 1, "name"]), ["categories[1] (id=2)", "'name'"]),
    ("ann-not-object", _set(["annotations", 0], [1, 2]), ["annotations[0]", "expected an object"]),
    ("ann-id-missing", _delete(["annotations", 1, "id"]), ["annotations[1]", "'id'", "missing"]),
    (
        "ann-id-duplicate",
        _set(["annotations", 1, "id"], 1),
        ["annotations[1] (id=1)", "duplicate annotation id"],
    ),
    (
        "ann-image-dangling",
        _set(["annotations", 2, "image_id"], 999),
        ["annotations[2] (id=3)", "'image_id'", "no image has id 999"],
    ),
    (
        "ann-category-dangling",
        _set(["annotations", 2, "category_id"], 42),
        ["'category_id'", "no category has id 42"],
    ),
    ("ann-image-id-missing", _delete(["annotations", 2, "image_id"]), ["'image_id'", "missing"]),
    ("bbox-missing", _delete(["annotations", 3, "bbox"]), ["annotations[3] (id=4)", "'bbox'", "missing"]),
    ("bbox-short", _set(["annotations", 3, "bbox"], [1, 2, 3]), ["'bbox'", "expected [x, y, width, height]"]),
    ("bbox-string", _set(["annotations", 3, "bbox"], [1, "a", 3, 4]), ["'bbox'", "not a finite number"]),
    (
        "bbox-negative",
        _set(["annotations", 3, "bbox"], [1, 2, -3, 4]),
        ["'bbox'", "negative width or height"],
    ),
    ("bbox-null", _set(["annotations", 3, "bbox"], None), ["'bbox'", "expected [x, y, width, height]"]),
    ("iscrowd-two", _set(["annotations", 0, "iscrowd"], 2), ["'iscrowd'", "expected 0 or 1"]),
    ("area-negative", _set(["annotations", 0, "area"], -5), ["'area'", "non-negative"]),
    ("area-string", _set(["annotations", 0, "area"], "big"), ["'area'", "non-negative"]),
    (
        "poly-odd",
        _set(["annotations", 0, "segmentation"], [[1, 2, 3, 4, 5]]),
        ["'segmentation'", "odd number of coordinates"],
    ),
    (
        "poly-string-value",
        _set(["annotations", 0, "segmentation"], [[1, 2, "x", 4, 5, 6]]),
        ["'segmentation'", "not a finite number"],
    ),
    (
        "poly-not-list",
        _set(["annotations", 0, "segmentation"], [5]),
        ["'segmentation'", "polygon 0 is not a list"],
    ),
    (
        "seg-wrong-type",
        _set(["annotations", 0, "segmentation"], "polygon"),
        ["'segmentation'", "expected polygons"],
    ),
    (
        "rle-size-mismatch",
        _set(["annotations", 0, "segmentation"], {"size": [10, 10], "counts": [100]}),
        ["'segmentation.size'", "differs from the image"],
    ),
    (
        "rle-size-missing",
        _set(["annotations", 0, "segmentation"], {"counts": [100]}),
        ["'segmentation.size'"],
    ),
    (
        "rle-counts-sum",
        _set(["annotations", 0, "segmentation"], {"size": [120, 160], "counts": [5, 5]}),
        ["'segmentation.counts'", "sum to 10"],
    ),
    (
        "rle-counts-bad-chars",
        _set(["annotations", 0, "segmentation"], {"size": [120, 160], "counts": "~~~ "}),
        ["'segmentation.counts'", "RLE alphabet"],
    ),
    (
        "rle-counts-number",
        _set(["annotations", 0, "segmentation"], {"size": [120, 160], "counts": 7}),
        ["'segmentation.counts'", "expected a list or a string"],
    ),
]


@pytest.mark.parametrize("case_id, mutate, fragments", CASES, ids=[c[0] for c in CASES])
def test_malformed_annotations_leave_project_unchanged(base, tmp_path, capsys, case_id, mutate, fragments):
    coco = copy.deepcopy(base["coco"])
    mutate(coco)
    bad = tmp_path / f"{case_id}.json"
    bad.write_text(json.dumps(coco))
    before = snapshot(base["project"])
    code = main(import_argv(base["images"], bad, base["project"], "bad", "--quiet"))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert str(bad) in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert snapshot(base["project"]) == before


RAW_CASES = [
    ("empty-file", b"", "file is empty"),
    ("truncated-json", b'{"images": [{"id": 1, "file_na', "invalid JSON at line 1"),
    ("not-utf8", b'{"images": [], "categories": [], "x": "\xff\xfe"}', "not UTF-8"),
    (
        "nan-literal",
        b'{"images": [{"id": 0, "file_name": "a.jpg", "width": NaN, "height": 2}], "categories": []}',
        "'width': expected an integer, got NaN",
    ),
    (
        "infinite-area",
        b'{"images": [{"id": 0, "file_name": "a.jpg", "width": 4, "height": 2}], "categories": [{"id": 1, "name": "a"}],'
        b' "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [0, 0, 1, 1], "area": Infinity}]}',
        "'area': expected a non-negative finite number",
    ),
    ("top-level-list", b"[1, 2, 3]", "expected a JSON object"),
]


@pytest.mark.parametrize("case_id, raw, fragment", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_unparseable_files(base, tmp_path, capsys, case_id, raw, fragment):
    bad = tmp_path / f"{case_id}.json"
    bad.write_bytes(raw)
    before = snapshot(base["project"])
    code = main(import_argv(base["images"], bad, base["project"], None, "--quiet"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and fragment in err and str(bad) in err, err
    assert snapshot(base["project"]) == before


def test_missing_annotations_file_and_images_dir(base, tmp_path, capsys):
    before = snapshot(base["project"])
    assert main(import_argv(base["images"], tmp_path / "nope.json", base["project"], None, "--quiet")) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(import_argv(tmp_path / "no_dir", tmp_path / "x.json", base["project"], None, "--quiet")) == 2
    assert "images folder not found" in capsys.readouterr().err
    assert snapshot(base["project"]) == before


def test_bad_dataset_name_is_refused(base, tmp_path, capsys):
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps(base["coco"]))
    before = snapshot(base["project"])
    assert main(import_argv(base["images"], ann, base["project"], "../evil", "--quiet")) == 2
    assert "not a valid dataset name" in capsys.readouterr().err
    assert snapshot(base["project"]) == before


def test_new_project_is_not_created_on_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    images = tmp_path / "imgs"
    images.mkdir()
    project = tmp_path / "fresh"
    assert main(import_argv(images, bad, project, None, "--quiet")) == 2
    assert not project.exists()
