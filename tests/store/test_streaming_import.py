"""The streaming COCO reader (ijson, two passes) gives the tables and the errors json.load gave.

Large files take the streaming path (store.coco_reader.STREAM_ABOVE_BYTES); here the threshold
is set to 0 or to infinity so the two paths read the same files side by side.
"""

from __future__ import annotations

import copy
import json
import sys
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from store import coco_reader
from store.errors import InputError
from tests.conftest import REPO, shared
from tests.store.test_malformed_coco import CASES, RAW_CASES

STREAMED, LOADED = 0, 10**15


def _read(path: Path, threshold: int, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(coco_reader, "STREAM_ABOVE_BYTES", threshold)
    try:
        return coco_reader.read_coco(path, "d")
    except InputError as exc:
        return str(exc)


def _assert_same(a, b) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    for name in ("images", "objects", "categories"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert (a.info, a.warnings) == (b.info, b.warnings)


@pytest.mark.parametrize("case_id, mutate, fragments", CASES, ids=[c[0] for c in CASES])
def test_every_malformed_case_gives_the_same_one_line_error(
    small_coco_document, tmp_path, monkeypatch, case_id, mutate, fragments
):
    coco = copy.deepcopy(small_coco_document)
    mutate(coco)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(coco))
    streamed, loaded = _read(path, STREAMED, monkeypatch), _read(path, LOADED, monkeypatch)
    assert isinstance(streamed, str), "the streaming reader accepted a malformed file"
    assert streamed == loaded
    assert all(fragment in streamed for fragment in fragments)


@pytest.mark.parametrize("case_id, raw, fragment", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_unparseable_files_give_the_same_error(tmp_path, monkeypatch, case_id, raw, fragment):
    path = tmp_path / "raw.json"
    path.write_bytes(raw)
    streamed = _read(path, STREAMED, monkeypatch)
    assert streamed == _read(path, LOADED, monkeypatch)
    assert fragment in streamed


def test_first_error_follows_section_order_not_file_order(small_coco_document, tmp_path, monkeypatch):
    """Categories are validated before images whatever their place in the file (COCO puts them last)."""
    coco = copy.deepcopy(small_coco_document)
    coco["images"][1]["width"] = -1
    coco["categories"][1]["name"] = ""
    reordered = {
        "annotations": coco["annotations"],
        "images": coco["images"],
        "categories": coco["categories"],
    }
    path = tmp_path / "reordered.json"
    path.write_text(json.dumps(reordered))
    streamed = _read(path, STREAMED, monkeypatch)
    assert streamed == _read(path, LOADED, monkeypatch)
    assert "categories[1] (id=2): field 'name'" in streamed
    # invalid JSON at the very end wins over a record error at the start, as with json.load
    path.write_text(json.dumps(reordered)[:-1])
    streamed = _read(path, STREAMED, monkeypatch)
    assert streamed == _read(path, LOADED, monkeypatch)
    assert "invalid JSON" in streamed


def test_valid_variants_give_equal_tables(small_coco_document, tmp_path, monkeypatch):
    variants = {
        "keys-reordered-with-info": {
            "categories": small_coco_document["categories"],
            "info": {"year": 2024, "nested": {"a": [1, 2]}},
            "annotations": small_coco_document["annotations"],
            "images": small_coco_document["images"],
        },
        "no-annotations": {k: v for k, v in small_coco_document.items() if k != "annotations"},
        "info-not-an-object": {**small_coco_document, "info": "text"},
    }
    rle = copy.deepcopy(small_coco_document)
    rle["annotations"][0]["segmentation"] = {"size": [120, 160], "counts": [19200]}
    rle["annotations"][1].update(bbox=[1.5, 2.0, 3, 4e0], area=2.5)
    variants["rle-and-floats"] = rle
    for name, coco in variants.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(coco))
        streamed = _read(path, STREAMED, monkeypatch)
        assert not isinstance(streamed, str), (name, streamed)
        if name == "no-annotations":  # empty object tables: float64 boxes streamed, as the schema says
            assert streamed.objects.empty and str(streamed.objects["bbox_x"].dtype) == "float64"
            continue
        _assert_same(streamed, _read(path, LOADED, monkeypatch))
    assert streamed.info == {}


@pytest.mark.parametrize(
    "relative", ["fruits_nuts/annotations.json", "blood_cells/annotations.json", "taco/annotations.json"]
)
def test_real_datasets_read_identically(monkeypatch, relative):
    path = shared(*relative.split("/"))
    streamed = _read(path, STREAMED, monkeypatch)
    loaded = _read(path, LOADED, monkeypatch)
    _assert_same(streamed, loaded)
    assert len(streamed.objects) > 100


def test_streaming_needs_far_less_memory_than_json_load(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from scale_bench import write_coco
    finally:
        sys.path.remove(str(REPO / "bench"))
    path = tmp_path / "big.json"
    objects = write_coco(path, 400, 10)
    peaks = {}
    for name, threshold in (("streamed", STREAMED), ("loaded", LOADED)):
        runs = []
        for _ in range(2):  # tracemalloc also counts what other threads of this worker allocate
            tracemalloc.start()  # meanwhile (a full suite leaves some): the smaller peak is the read's
            tables = _read(path, threshold, monkeypatch)
            runs.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            assert len(tables.objects) == objects == 4000
        peaks[name] = min(runs)
    # json.load holds every annotation as dicts at once (~8x the file); streaming holds one
    # annotation at a time plus the columnar tables (measured 0.47x of json.load's peak).
    assert peaks["streamed"] < 0.65 * peaks["loaded"], peaks
