"""Predictions at the extremes (issue 18): broken RLE, huge numbers, 10,000 classes, deep JSON.

Each import runs in a child process under a timeout and an address-space limit (guarded.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli import main
from tests.conftest import cli_import
from tests.reliability.guarded import assert_one_line, run_guarded
from tests.reliability.hostile import snapshot

WIDTH, HEIGHT = 80, 60


def _project(folder: Path, categories: int = 2) -> Path:
    """A project with one dataset 'd': 2 images (files missing), one square object each."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    coco = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": WIDTH, "height": HEIGHT} for i in (1, 2)],
        "annotations": [
            {
                "id": i,
                "image_id": i,
                "category_id": 1,
                "bbox": [10, 10, 20, 20],
                "area": 400,
                "iscrowd": 0,
                "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
            }
            for i in (1, 2)
        ],
        "categories": [{"id": c, "name": f"class{c}"} for c in range(1, categories + 1)],
    }
    ann = folder / "ann.json"
    ann.write_text(json.dumps(coco))
    project = folder / "project"
    cli_import(images, ann, project, "d", "--workers", "1")
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _project(tmp_path_factory.mktemp("extreme_predictions"))


def _import(
    project: Path, folder: Path, results: list | str, extra: tuple[str, ...] = (), **kwargs
) -> tuple[int, str, str]:
    path = folder / "results.json"
    path.write_text(results if isinstance(results, str) else json.dumps(results))
    argv = ["import", "predictions", str(path), "--project", str(project), "--model", "m", "--quiet"]
    return run_guarded([*argv, *extra], **kwargs)


def _box(**extra) -> dict:
    return {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9, **extra}


def _compressed_square() -> str:
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(np.ones((2, 2), np.uint8)))["counts"].decode()


REFUSED = {
    # counts of a 2×2 mask declared [60, 80]: pycocotools decoded for ever, holding the write lock
    "compressed RLE not filling the frame": (
        [_box(segmentation={"size": [HEIGHT, WIDTH], "counts": _compressed_square()})],
        ["predictions[0]", "segmentation.counts", str(WIDTH * HEIGHT)],
    ),
    "compressed RLE with a negative run": (
        [_box(segmentation={"size": [HEIGHT, WIDTH], "counts": "0@"})],
        ["predictions[0]", "segmentation.counts", "negative"],
    ),
    "score 5.0": ([_box(score=5.0)], ["predictions[0]", "score", "5.0"]),
    "score 1e308": ([_box(score=1e308)], ["predictions[0]", "score"]),
    "box 1e308": ([_box(bbox=[0, 0, 1e308, 1e308])], ["predictions[0]", "bbox"]),
    "image_id 2^63": ([_box(image_id=2**63)], ["predictions[0]", "image_id"]),
    "category_id -2^63-1": ([_box(category_id=-(2**63) - 1)], ["predictions[0]", "category_id"]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_extreme_prediction_is_one_line_and_changes_nothing(project: Path, tmp_path: Path, case: str):
    results, fragments = REFUSED[case]
    before = snapshot(project)
    code, _, err = _import(project, tmp_path, results, timeout=90)
    assert_one_line(code, err, ["results.json", *fragments])
    assert snapshot(project) == before


def test_predictions_nested_100000_deep_are_one_line(project: Path, tmp_path: Path):
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps([_box()])[:-2] + f', "segmentation": {deep}}}]'
    before = snapshot(project)
    code, _, err = _import(project, tmp_path, text, timeout=90)
    assert_one_line(code, err, ["results.json", "nested"])
    assert snapshot(project) == before


@pytest.mark.slow
def test_10000_class_predictions_import_in_bounded_memory(tmp_path: Path):
    """A 10,000-class dataset: the stored confusion matrices grew to 10⁸ cells each (6 GB, then a crash)."""
    project = _project(tmp_path / "big", categories=10_000)
    results = [
        {"image_id": 1 + i % 2, "category_id": 1 + i, "bbox": [10, 10, 20, 20], "score": 0.5}
        for i in range(10_000)
    ]
    # the label-error pass that follows an import is left out: this is about matching and its tables
    code, out, err = _import(project, tmp_path, results, extra=("--no-label-issues",), timeout=400)
    assert code == 0, (code, err[-2000:])
    evaluation = json.loads((project / "models" / "m" / "eval.json").read_text())
    labels = evaluation["bbox"]["confusion"]["50"]["labels"]
    assert len(labels) <= 102 and "background" in labels and "class1" in labels


def test_predictions_on_a_frame_too_large_for_masks(tmp_path: Path):
    """A 100000² record holds no RLE: mask-only results get the polygon's box; segm says why it is skipped."""
    images = tmp_path / "images"
    images.mkdir()
    x = y = 60000
    ring = [x, y, x + 10, y, x + 10, y + 10, x, y + 10]
    coco = {
        "images": [{"id": 1, "file_name": "missing.jpg", "width": 100000, "height": 100000}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [x, y, 10, 10], "segmentation": [ring]}
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    project = tmp_path / "project"
    argv = ["import", "coco", "--images", str(images), "--annotations", str(tmp_path / "ann.json")]
    assert main([*argv, "--project", str(project), "--dataset", "d", "--quiet", "--workers", "1"]) == 0
    results = [
        {"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": [ring]},
        {"image_id": 1, "category_id": 1, "score": 0.8, "bbox": [x, y, 10, 10], "segmentation": [ring]},
    ]
    code, out, err = _import(project, tmp_path, results, timeout=120)
    assert code == 0, (code, err[-2000:])
    summary = json.loads(out)
    assert summary["bbox"]["AP"] > 0.99
    assert "segm" not in summary and "2^32 pixels" in summary["notes"][0]


def test_a_100000_category_dataset_evaluates_only_the_categories_taking_part(tmp_path: Path):
    """COCOeval's arrays have a column per category: 10⁵ unused categories meant ~10 GB before."""
    project = _project(tmp_path / "many", categories=100_000)
    results = [{"image_id": i, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9} for i in (1, 2)]
    code, out, err = _import(project, tmp_path, results, timeout=300)
    assert code == 0, (code, err[-2000:])
    assert json.loads(out)["bbox"]["AP"] == pytest.approx(1.0)


def test_a_prediction_polygon_too_long_to_trace_is_refused(project: Path, tmp_path: Path):
    ring: list[float] = []
    for i in range(200_000):
        ring += [0.0 if i % 2 == 0 else float(WIDTH - 1), i * HEIGHT / 200_000]
    before = snapshot(project)
    code, _, err = _import(project, tmp_path, [_box(segmentation=[ring])], timeout=120)
    assert_one_line(code, err, ["predictions[0]", "segmentation", "too long"])
    assert snapshot(project) == before
