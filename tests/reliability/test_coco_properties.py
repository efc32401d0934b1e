"""Property tests of the COCO parser through the CLI.

* Any valid COCO document imported and exported again (``cocolens export coco``) gives back the
  same image ids, annotation ids, boxes and segmentations (polygons, RLE counts list or string).
* Any single-field corruption of a valid document is refused: exit 2, one line, project unchanged.

Example counts stay small (each example is a whole import): the suite has to stay fast.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.hostile import run_cli, snapshot

COORD = st.floats(0, 500, allow_nan=False, allow_infinity=False)
SIDE = st.floats(0, 300, allow_nan=False, allow_infinity=False)


@st.composite
def segmentations(draw, width: int, height: int):
    kind = draw(st.sampled_from(["none", "empty", "polygon", "rle", "rle_compressed"]))
    if kind == "none":
        return None
    if kind == "empty":
        return []
    if kind == "polygon":
        ring = st.lists(st.tuples(COORD, COORD), min_size=3, max_size=8).map(
            lambda pts: [v for p in pts for v in p]
        )
        return draw(st.lists(ring, min_size=1, max_size=2))
    mask = np.zeros((height, width), np.uint8)
    for _ in range(draw(st.integers(0, 3))):
        x, y = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
        mask[y : y + draw(st.integers(1, 20)), x : x + draw(st.integers(1, 20))] = 1
    from metrics.geometry import mask_to_rle, mask_to_uncompressed_rle, rle_to_json

    return mask_to_uncompressed_rle(mask) if kind == "rle" else rle_to_json(mask_to_rle(mask))


@st.composite
def coco_documents(draw):
    image_ids = draw(st.lists(st.integers(0, 10**9), min_size=1, max_size=3, unique=True))
    category_ids = draw(st.lists(st.integers(-5, 10**6), min_size=1, max_size=3, unique=True))
    images = [
        {
            "id": i,
            "file_name": f"dir {k}/img_{k}.jpg",
            "width": draw(st.integers(1, 64)),
            "height": draw(st.integers(1, 64)),
        }
        for k, i in enumerate(image_ids)
    ]
    annotations = []
    ann_ids = draw(st.lists(st.integers(0, 10**9), min_size=1, max_size=6, unique=True))
    for ann_id in ann_ids:
        image = draw(st.sampled_from(images))
        record = {
            "id": ann_id,
            "image_id": image["id"],
            "category_id": draw(st.sampled_from(category_ids)),
            "bbox": [draw(COORD), draw(COORD), draw(SIDE), draw(SIDE)],
            "iscrowd": draw(st.sampled_from([0, 1])),
            "area": draw(SIDE),
        }
        seg = draw(segmentations(image["width"], image["height"]))
        if seg is not None:
            record["segmentation"] = seg
        annotations.append(record)
    categories = [{"id": c, "name": f"class {c} é", "supercategory": "thing"} for c in category_ids]
    return {"images": images, "annotations": annotations, "categories": categories}


def _import_argv(images: Path, ann: Path, project: Path, dataset: str) -> list[str]:
    return [
        "import", "coco", "--images", str(images), "--annotations", str(ann),
        "--project", str(project), "--dataset", dataset, "--quiet", "--workers", "1",
    ]  # fmt: skip


@pytest.mark.slow
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(coco=coco_documents())
def test_valid_coco_round_trips_through_import_and_export(coco, capsys):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "images").mkdir()
        ann = root / "in.json"
        ann.write_text(json.dumps(coco))
        code, _, err = run_cli(capsys, _import_argv(root / "images", ann, root / "p", "d"))
        assert code == 0, err
        out = root / "out.json"
        code, _, err = run_cli(capsys, ["export", "coco", "--project", str(root / "p"), "--out", str(out)])
        assert code == 0, err
        exported = json.loads(out.read_text())
    key = lambda a: (a["image_id"], a["id"])  # noqa: E731
    assert sorted(i["id"] for i in exported["images"]) == sorted(i["id"] for i in coco["images"])
    assert {i["id"]: (i["file_name"], i["width"], i["height"]) for i in exported["images"]} == {
        i["id"]: (i["file_name"], i["width"], i["height"]) for i in coco["images"]
    }
    assert sorted(c["id"] for c in exported["categories"]) == sorted(c["id"] for c in coco["categories"])
    ours = {key(a): a for a in exported["annotations"]}
    assert sorted(ours) == sorted(key(a) for a in coco["annotations"])
    for original in coco["annotations"]:
        got = ours[key(original)]
        assert got["bbox"] == original["bbox"]
        assert got["category_id"] == original["category_id"] and got["iscrowd"] == original["iscrowd"]
        assert got["area"] == original["area"]
        assert got["segmentation"] == (original.get("segmentation") or [])


# (description, section, field, bad value or DELETE); applied to the first record of the section
class _Delete:
    """The field is removed; a stable repr keeps the test ids equal across pytest-xdist workers
    (a bare object() printed its address, and the workers collected different ids)."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()
CORRUPTIONS = [
    ("images", "id", v) for v in ("7", -1, 1.5, None, True, DELETE)
] + [
    ("images", "width", v) for v in (0, -3, "10", None, 2.5, DELETE)
] + [
    ("images", "file_name", v) for v in ("", None, 5, "../up.jpg", "/etc/passwd", "a\x00b.jpg", DELETE)
] + [
    ("annotations", "id", v) for v in ("x", -1, None, DELETE)
] + [
    ("annotations", "image_id", v) for v in (-77, "0", None, DELETE)
] + [
    ("annotations", "category_id", v) for v in (10**7 + 1, None, DELETE)
] + [
    ("annotations", "bbox", v) for v in ([1, 2, 3], [0, 0, -1, 5], [0, "a", 1, 1], None, "0,0,1,1", DELETE)
] + [
    ("annotations", "iscrowd", v) for v in (2, "0", True)
] + [
    ("annotations", "area", v) for v in (-1, "big")
] + [
    ("annotations", "segmentation", v)
    for v in ([[1, 2, 3, 4, 5]], "poly", [[1, 2, "x", 4, 5, 6]], {"size": [0, 0], "counts": [0]}, 7)
] + [
    ("categories", "id", v) for v in ("1", None, DELETE)
] + [
    ("categories", "name", v) for v in ("", None, 3, DELETE)
]  # fmt: skip


@pytest.fixture(scope="module")
def base_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cli import main

    folder = tmp_path_factory.mktemp("corrupt")
    (folder / "images").mkdir()
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
        "annotations": [],
        "categories": [{"id": 1, "name": "a"}],
    }
    (folder / "seed.json").write_text(json.dumps(coco))
    assert main(_import_argv(folder / "images", folder / "seed.json", folder / "project", "seed")) == 0
    return folder / "project"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(coco=coco_documents(), corruption=st.sampled_from(CORRUPTIONS))
def test_single_field_corruption_is_refused_and_changes_nothing(base_project, capsys, coco, corruption):
    _assert_refused(base_project, capsys, coco, corruption)


def _assert_refused(base_project: Path, capsys, coco: dict, corruption: tuple) -> None:
    """One field of the first record of a section corrupted: exit 2, one line naming it, nothing written."""
    section, field, value = corruption
    record = coco[section][0]
    if value is DELETE:
        record.pop(field, None)
    else:
        record[field] = value
    if section == "annotations" and field == "category_id" and value == 10**7 + 1:
        assert value not in {c["id"] for c in coco["categories"]}
    before = snapshot(base_project)
    with tempfile.TemporaryDirectory() as folder:
        ann = Path(folder) / "bad.json"
        ann.write_text(json.dumps(coco))
        code, _, err = run_cli(capsys, _import_argv(base_project.parent / "images", ann, base_project, "bad"))
    assert code == 2, (corruption, err)
    assert len(err.splitlines()) == 1 and str(ann) in err, err
    assert f"'{field}'" in err or field == "segmentation" and "'segmentation" in err, (corruption, err)
    assert snapshot(base_project) == before


@pytest.mark.parametrize("corruption", CORRUPTIONS, ids=repr)
def test_every_corruption_is_refused_on_a_plain_document(base_project, capsys, corruption):
    """The property test samples 60 of the list; here each corruption runs once, so none is left untried."""
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0,
             "segmentation": [[0, 0, 2, 0, 2, 2]]},
        ],
        "categories": [{"id": 1, "name": "a"}],
    }  # fmt: skip
    _assert_refused(base_project, capsys, coco, corruption)
