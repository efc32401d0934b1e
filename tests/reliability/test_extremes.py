"""Numeric extremes, broken RLE, deep JSON and odd files: no segfault, hang or traceback (issue 18).

Every import here runs in a child process under a timeout and an address-space limit
(tests/reliability/guarded.py): before the fixes these inputs segfaulted (huge coordinates and
frames), spun forever (RLE counts that do not fill the frame) or died with a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.reliability.guarded import assert_one_line, run_guarded
from tests.reliability.hostile import jpeg_bytes, snapshot

SQUARE = [10, 10, 20, 10, 20, 20, 10, 20]


def _coco(images: list[dict], annotations: list[dict], categories: list[dict] | None = None) -> dict:
    return {
        "images": images,
        "annotations": annotations,
        "categories": categories or [{"id": 1, "name": "thing"}],
    }


def _ann(aid: int, image_id: int, bbox: list, **extra) -> dict:
    return {"id": aid, "image_id": image_id, "category_id": 1, "bbox": bbox, "iscrowd": 0, **extra}


def _import(tmp_path: Path, coco: dict | str, project: Path | None = None, **kwargs) -> tuple[int, str, str]:
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    ann = tmp_path / "ann.json"
    ann.write_text(coco if isinstance(coco, str) else json.dumps(coco))
    project = project or tmp_path / "project"
    argv = ["import", "coco", "--images", str(images), "--annotations", str(ann)]
    argv += ["--project", str(project), "--dataset", "d", "--quiet", "--workers", "1"]
    return run_guarded(argv, **kwargs)


def _imported(tmp_path: Path, coco: dict | str, **kwargs) -> Path:
    """Import ``coco`` as :func:`_import` does and require it to succeed; the project folder."""
    code, _, err = _import(tmp_path, coco, **kwargs)
    assert code == 0, (code, err[-2000:])
    return tmp_path / "project"


def _metric(project: Path, level: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(project / "datasets" / "d" / "metrics" / f"{level}__{name}.parquet")


# ----- 1. huge coordinates and frames ---------------------------------------------------------

HUGE_GEOMETRY = {
    "polygon at 1e9": (
        [{"id": 1, "file_name": "a.jpg", "width": 800, "height": 600}],
        [_ann(1, 1, [0, 0, 1e9, 1e9], segmentation=[[0, 0, 1e9, 0, 1e9, 1e9]], area=5e17)],
    ),
    "polygon at 1e300": (
        [{"id": 1, "file_name": "a.jpg", "width": 800, "height": 600}],
        [_ann(1, 1, [0, 0, 1e300, 1e300], segmentation=[[0, 0, 1e300, 0, 1e300, 1e300]], area=1.0)],
    ),
    "box 1e200 without area": (
        [{"id": 1, "file_name": "a.jpg", "width": 800, "height": 600}],
        [_ann(1, 1, [1e200, 1e200, 1e200, 1e200])],
    ),
}


@pytest.mark.parametrize("case", list(HUGE_GEOMETRY))
def test_huge_coordinates_are_flagged_not_rasterised(tmp_path: Path, case: str):
    images, annotations = HUGE_GEOMETRY[case]
    _imported(tmp_path, _coco(images, annotations))
    flags = _metric(tmp_path / "project", "object", "invalid_geometry")
    assert flags["value"].tolist() == [1.0]
    code, out, err = run_guarded(["report", "--project", str(tmp_path / "project"), "--json"])
    assert code == 0, err[-2000:]
    json.loads(out)  # strict JSON: no Infinity/NaN from the huge values


def test_small_object_on_a_100000_square_record_keeps_its_area(tmp_path: Path):
    """pycocotools' runs are 32-bit: a 10×10 square at (60000, 60000) on 100000² measured 295,927,206 px²."""
    x = y = 60000
    ring = [x, y, x + 10, y, x + 10, y + 10, x, y + 10]
    coco = _coco(
        [{"id": 1, "file_name": "missing.jpg", "width": 100000, "height": 100000}],
        [_ann(1, 1, [x, y, 10, 10], segmentation=[ring], area=100)],
    )
    _imported(tmp_path, coco)
    assert _metric(tmp_path / "project", "object", "object_area")["value"].tolist() == [100.0]
    assert _metric(tmp_path / "project", "object", "invalid_geometry")["value"].tolist() == [0.0]


def test_two_small_squares_on_a_45000_square_record(tmp_path: Path):
    """Merging two masks allocated height×width counts (8 GB) inside pycocotools: segfault."""
    second = [v + 30 for v in SQUARE]
    coco = _coco(
        [{"id": 1, "file_name": "missing.jpg", "width": 45000, "height": 45000}],
        [
            _ann(1, 1, [10, 10, 10, 10], segmentation=[SQUARE], area=100),
            _ann(2, 1, [40, 40, 10, 10], segmentation=[second], area=100),
        ],
    )
    _imported(tmp_path, coco)
    project = tmp_path / "project"
    assert _metric(project, "object", "object_area")["value"].tolist() == [100.0, 100.0]
    density = _metric(project, "image", "frame_object_density")["value"].tolist()
    assert density == pytest.approx([200 / 45000**2])


# ----- 2. RLE counts that do not fill the frame -------------------------------------------------


def _compressed_rle_not_filling(height: int, width: int) -> dict:
    from pycocotools import mask as mask_utils

    good = mask_utils.encode(np.asfortranarray(np.ones((2, 2), np.uint8)))["counts"].decode()
    return {"size": [height, width], "counts": good}  # runs for 4 pixels on a height×width frame


def test_compressed_rle_not_summing_to_the_frame_is_refused(tmp_path: Path):
    coco = _coco(
        [{"id": 1, "file_name": "a.jpg", "width": 800, "height": 600}],
        [_ann(1, 1, [0, 0, 2, 2], segmentation=_compressed_rle_not_filling(600, 800), area=4)],
    )
    code, _, err = _import(tmp_path, coco, timeout=60)
    assert_one_line(code, err, ["annotations[0] (id=1)", "segmentation.counts", "480000"])
    assert not (tmp_path / "project" / "datasets").exists()


@pytest.mark.parametrize(
    "counts", ["00", "1", "0P", "_"], ids=["two-zero-runs", "too-short", "negative", "cut"]
)
def test_compressed_rle_with_bad_runs_is_refused(tmp_path: Path, counts: str):
    coco = _coco(
        [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
        [_ann(1, 1, [0, 0, 2, 2], segmentation={"size": [3, 4], "counts": counts}, area=4)],
    )
    code, _, err = _import(tmp_path, coco, timeout=60)
    assert_one_line(code, err, ["annotations[0] (id=1)", "segmentation.counts"])


# ----- 3. ids beyond 64 bits, deep JSON --------------------------------------------------------

BIG = 2**63


@pytest.mark.parametrize("where", ["image", "annotation", "category", "annotation image_id"])
def test_ids_beyond_64_bits_are_one_line(tmp_path: Path, where: str):
    image = {"id": 1, "file_name": "a.jpg", "width": 800, "height": 600}
    ann = _ann(1, 1, [0, 0, 10, 10], area=100)
    category = {"id": 1, "name": "thing"}
    if where == "image":
        image["id"] = ann["image_id"] = BIG
    elif where == "annotation":
        ann["id"] = BIG
    elif where == "annotation image_id":
        ann["image_id"] = -BIG - 1
    else:
        category["id"] = ann["category_id"] = BIG
    code, _, err = _import(tmp_path, _coco([image], [ann], [category]), timeout=60)
    assert_one_line(code, err, ["ann.json", "64-bit"])


DEPTH = 100_000


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "streaming"])
@pytest.mark.parametrize("inside", ["info", "annotation"])
def test_json_nested_100000_deep_is_one_line(tmp_path: Path, streamed: bool, inside: str):
    deep = "[" * DEPTH + "]" * DEPTH
    images = json.dumps([{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}])
    if inside == "info":
        text = f'{{"info": {deep}, "images": {images}, "annotations": [], "categories": [{{"id": 1, "name": "t"}}]}}'
    else:
        ann = f'{{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "segmentation": {deep}}}'
        text = f'{{"images": {images}, "annotations": [{ann}], "categories": [{{"id": 1, "name": "t"}}]}}'
    code, _, err = _import(tmp_path, text, timeout=90, stream_above=0 if streamed else None)
    assert_one_line(code, err, ["ann.json", "nested"])
    assert not (tmp_path / "project" / "datasets").exists()


# ----- odd files in the images folder -----------------------------------------------------------


def test_symlink_loop_in_the_images_folder_is_flagged(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "good.jpg").write_bytes(jpeg_bytes(80, 60))
    os.symlink("loop.jpg", images / "loop.jpg")
    os.symlink("b.jpg", images / "a.jpg")
    os.symlink("a.jpg", images / "b.jpg")
    coco = _coco(
        [
            {"id": 1, "file_name": "good.jpg", "width": 80, "height": 60},
            {"id": 2, "file_name": "loop.jpg", "width": 80, "height": 60},
            {"id": 3, "file_name": "a.jpg", "width": 80, "height": 60},
            {"id": 4, "file_name": "loop.jpg/x.jpg", "width": 80, "height": 60},
        ],
        [],
    )
    _imported(tmp_path, coco)
    table = pd.read_parquet(tmp_path / "project" / "datasets" / "d" / "images.parquet")
    status = dict(zip(table["image_id"], table["status"], strict=True))
    assert status[1] == "ok"
    assert {status[2], status[3], status[4]} == {"unreadable"}
    errors = dict(zip(table["image_id"], table["error"], strict=True))
    assert "symlink loop" in errors[2] and "\n" not in errors[2]


def test_a_100_gb_sparse_image_file_is_flagged_without_reading_it(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "good.jpg").write_bytes(jpeg_bytes(80, 60))
    with open(images / "huge.jpg", "wb") as handle:
        handle.truncate(100 * 1024**3)  # sparse: no disk used
    coco = _coco(
        [
            {"id": 1, "file_name": "good.jpg", "width": 80, "height": 60},
            {"id": 2, "file_name": "huge.jpg", "width": 80, "height": 60},
        ],
        [],
    )
    _imported(tmp_path, coco, timeout=90)
    table = pd.read_parquet(tmp_path / "project" / "datasets" / "d" / "images.parquet")
    row = table.set_index("image_id").loc[2]
    assert row["status"] == "unreadable"
    assert "GB" in row["error"] and "limit" in row["error"]
    assert table.set_index("image_id").loc[1, "status"] == "ok"


def test_guarded_run_reports_the_project_unchanged_after_a_refusal(tmp_path: Path):
    """The child-process harness sees the same contract as the in-process one."""
    project = tmp_path / "project"
    good = _coco([{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}], [_ann(1, 1, [0, 0, 1, 1])])
    assert _import(tmp_path, good)[0] == 0
    before = snapshot(project)
    bad = _coco([{"id": BIG, "file_name": "a.jpg", "width": 8, "height": 6}], [])
    code, _, err = _import(tmp_path, bad, timeout=60)
    assert_one_line(code, err, ["images[0]", "field 'id'"])
    assert snapshot(project) == before


# ----- property fuzz of numeric fields ----------------------------------------------------------


@pytest.mark.slow
def test_numeric_fuzz_ends_in_exit_0_or_one_line():
    """tests/reliability/numeric_fuzz.py: 60 annotation + 60 prediction draws, in one guarded child."""
    import subprocess
    import sys

    from tests.reliability.guarded import MEMORY_LIMIT_BYTES, REPO

    runner = (
        "import resource, runpy, sys; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT_BYTES}, {MEMORY_LIMIT_BYTES})); "
        "sys.argv = ['numeric_fuzz', '60']; "
        "runpy.run_module('tests.reliability.numeric_fuzz', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", runner], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["annotations"] == seen["predictions"] == 60
    assert seen["imported"] > 10 and seen["refused"] > 10  # both outcomes are exercised


def _zigzag(vertices: int, width: int, height: int) -> list[float]:
    ring: list[float] = []
    for i in range(vertices):
        ring += [0.0 if i % 2 == 0 else float(width - 1), i * height / vertices]
    return ring


def test_a_200000_vertex_zigzag_polygon_is_flagged_not_traced(tmp_path: Path):
    """Each edge crosses the frame: pycocotools traced ~6e8 points and segfaulted."""
    ring = _zigzag(200_000, 800, 600)
    coco = _coco(
        [{"id": 1, "file_name": "a.jpg", "width": 800, "height": 600}],
        [
            _ann(1, 1, [0, 0, 799, 600], segmentation=[ring], area=1000),
            _ann(2, 1, [10, 10, 10, 10], segmentation=[SQUARE], area=100),
        ],
    )
    _imported(tmp_path, coco)
    flags = _metric(tmp_path / "project", "object", "invalid_geometry").sort_values("object_id")
    assert flags["value"].tolist() == [1.0, 0.0]


def test_export_with_max_side_of_a_45000_square_rle_stays_in_memory(tmp_path: Path):
    """Scaling decoded the mask densely (2 GB as bool, more as uint8): a segfault under a 3 GB limit."""
    side = 45000
    full = {"size": [side, side], "counts": [0, side * side]}
    coco = _coco(
        [{"id": 1, "file_name": "missing.jpg", "width": side, "height": side}],
        [_ann(1, 1, [0, 0, side, side], segmentation=full, iscrowd=1, area=float(side * side))],
    )
    assert _import(tmp_path, coco)[0] == 0
    out = tmp_path / "out.json"
    argv = ["export", "coco", "--project", str(tmp_path / "project"), "--out", str(out), "--max-side", "1000"]
    code, _, err = run_guarded(argv, memory=3 * 1024**3)
    assert code == 0, (code, err[-2000:])
    exported = json.loads(out.read_text())
    assert exported["annotations"][0]["segmentation"] == {"size": [1000, 1000], "counts": [0, 1_000_000]}
