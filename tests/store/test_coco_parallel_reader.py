"""The parallel COCO reader (store/coco_parallel_reader.py) gives the streaming reader's tables and errors.

Thresholds and chunk sizes are lowered so that small files are read in many chunks; most reads run
the chunks in this process (``workers=1``, the same code as a worker's), one runs a real pool.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrics import geometry
from store import coco_parallel_reader, coco_reader
from store.errors import InputError
from tests.store.test_malformed_coco import CASES, RAW_CASES

STRANGE = 'brace } bracket ] quote " comma , colon : backslash \\ open { [ \u00e9\u65e5\U0001f600 \\u'


def rich_document(seed: int = 0, images: int = 12, per_image: int = 6) -> dict:
    """Polygons, RLEs (compressed counts hold \\ [ ] and other JSON-escaped characters), crowd regions,
    box-only objects, ids reused across images, unicode and escaped strings with brackets inside."""
    rng = np.random.default_rng(seed)
    records, annotations = [], []
    for image_id in range(images):
        w, h = int(rng.integers(30, 90)), int(rng.integers(20, 60))
        records.append(
            {"id": image_id, "file_name": f"d\u00e9j\u00e0/{image_id} {{x}}.jpg", "width": w, "height": h}
        )
        for k in range(per_image):
            x, y = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
            bw, bh = int(rng.integers(2, w - x)), int(rng.integers(2, h - y))
            record = {
                "id": k if image_id % 3 == 0 else image_id * 100 + k,  # reused across images
                "image_id": image_id,
                "category_id": int(rng.integers(1, 4)),
                "bbox": [x, y, bw, bh] if k % 2 else [x + 0.25, y + 0.5, bw * 1.0, bh - 0.125],
                "iscrowd": 0,
            }
            kind = (image_id + k) % 5
            if kind == 1:
                record["segmentation"] = [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]
            elif kind in (2, 3):
                mask = np.zeros((h, w), np.uint8)
                mask[y : y + bh, x : x + bw] = 1
                mask[y + bh // 2 :, x : x + 3] = 1
                rle = geometry.rle_to_json(geometry.mask_to_rle(mask))
                record["segmentation"] = rle if kind == 2 else geometry.mask_to_uncompressed_rle(mask)
                record["iscrowd"] = int(kind == 3)
            elif kind == 4:
                record["segmentation"] = []
            if k % 3:
                record["area"] = float(bw * bh) if k % 2 else bw * bh
            if k == 2:
                record["note"] = {"text": STRANGE, "list": [STRANGE, {"}": "]"}]}
            annotations.append(record)
    mask = np.zeros((50, 50), np.uint8)
    mask[8:15, 3:40] = 1  # its compressed counts hold a backslash and a bracket
    records.append({"id": images, "file_name": 'sub\\escaped".jpg', "width": 50, "height": 50})
    annotations.append(
        {
            "id": 0,
            "image_id": images,
            "category_id": 1,
            "bbox": [3, 8, 37, 7],
            "segmentation": geometry.rle_to_json(geometry.mask_to_rle(mask)),
        }
    )
    return {
        "info": {"description": STRANGE, "nested": [[{"a": "]}"}]]},
        "licenses": [{"id": 1, "name": STRANGE}],
        "images": records,
        "annotations": annotations,
        "categories": [{"id": c, "name": f"c{c} {STRANGE}", "supercategory": "s"} for c in (1, 2, 3)],
    }


def _read(path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool, chunk: int = 256, workers: int = 1):
    """(tables or the error's text, whether the parallel reader answered itself)."""
    answered = []
    original = coco_parallel_reader.read_parallel

    def spy(*args, **kwargs):
        try:
            tables = original(*args, **kwargs)
        except InputError:
            answered.append(True)
            raise
        answered.append(tables is not None)
        return tables

    with monkeypatch.context() as patch:
        patch.setattr(coco_reader, "PARALLEL_ABOVE_BYTES", 0 if parallel else 1 << 60)
        patch.setattr(coco_reader, "STREAM_ABOVE_BYTES", 0)
        patch.setattr(coco_parallel_reader, "CHUNK_BYTES", chunk)
        patch.setattr(coco_parallel_reader, "read_parallel", spy)
        try:
            result = coco_reader.read_coco(path, "d", workers=workers)
        except InputError as exc:
            result = str(exc)
    return result, bool(answered and answered[0])


def _assert_same(a, b) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    for name in ("images", "objects", "categories"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert (a.info, a.warnings) == (b.info, b.warnings)


def _write(path: Path, document: dict, indent: int | None = None) -> Path:
    path.write_text(json.dumps(document, indent=indent, ensure_ascii=indent is None))
    return path


@pytest.mark.parametrize("chunk", [1, 97, 256, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
def test_tables_equal_the_streaming_reader_s(tmp_path, monkeypatch, chunk, indent):
    path = _write(tmp_path / "ann.json", rich_document(seed=chunk), indent)
    parallel, answered = _read(path, monkeypatch, parallel=True, chunk=chunk)
    streamed, _ = _read(path, monkeypatch, parallel=False)
    assert answered, "the parallel reader left a plain file to the streaming reader"
    _assert_same(parallel, streamed)
    assert len(parallel.objects) == 73 and parallel.warnings == {"annotation_ids_reused_across_images": 19}
    assert set(parallel.objects["seg_type"]) == {"polygon", "rle", "rle_compressed", "none"}
    assert parallel.objects["segmentation"].iloc[-1].endswith('0\\\\?"}')  # RLE counts with \\ escaped
    assert parallel.info["description"] == STRANGE


def test_worker_processes_give_the_same_tables(tmp_path, monkeypatch):
    path = _write(tmp_path / "ann.json", rich_document(seed=3, images=40))
    parallel, answered = _read(path, monkeypatch, parallel=True, chunk=2048, workers=2)
    assert answered
    _assert_same(parallel, _read(path, monkeypatch, parallel=False)[0])


def test_valid_variants(tmp_path, monkeypatch):
    base = rich_document(seed=1)
    variants = {
        "categories-first": {k: base[k] for k in ("categories", "annotations", "info", "images")},
        "no-annotations": {k: v for k, v in base.items() if k != "annotations"},
        "empty-annotations": {**base, "annotations": []},
        "info-not-an-object": {**base, "info": ["x"]},
        "nan-box": {**base},  # json.dumps writes NaN: not JSON, the old readers decide
    }
    variants["nan-box"]["annotations"] = copy.deepcopy(base["annotations"])
    variants["nan-box"]["annotations"][3]["bbox"] = [float("nan"), 1, 2, 3]
    for name, document in variants.items():
        path = _write(tmp_path / f"{name}.json", document)
        parallel, answered = _read(path, monkeypatch, parallel=True)
        assert answered == (name != "nan-box"), name
        _assert_same(parallel, _read(path, monkeypatch, parallel=False)[0])


@pytest.mark.parametrize("case_id, mutate, fragments", CASES, ids=[c[0] for c in CASES])
def test_every_malformed_case_gives_the_same_one_line_error(
    small_coco_document, tmp_path, monkeypatch, case_id, mutate, fragments
):
    document = copy.deepcopy(small_coco_document)
    mutate(document)
    path = _write(tmp_path / "bad.json", document)
    parallel, _ = _read(path, monkeypatch, parallel=True, chunk=64)
    streamed, _ = _read(path, monkeypatch, parallel=False)
    assert isinstance(streamed, str) and isinstance(parallel, str), (case_id, parallel)
    assert parallel == streamed


@pytest.mark.parametrize("case_id, raw, fragment", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_unparseable_files_give_the_same_error(tmp_path, monkeypatch, case_id, raw, fragment):
    path = tmp_path / "raw.json"
    path.write_bytes(raw)
    parallel, answered = _read(path, monkeypatch, parallel=True, chunk=8)
    assert parallel == _read(path, monkeypatch, parallel=False)[0] and fragment in parallel
    assert not answered


ANNOTATION_ERRORS = {
    "late-bad-box": lambda a: a[60].update(bbox=[1, 2, -3, 4]),
    "two-errors-keep-the-first": lambda a: (a[61].update(category_id=77), a[40].update(iscrowd=3)),
    "repeated-id-across-chunks": lambda a: a[65].update(id=a[1]["id"], image_id=a[1]["image_id"]),
    "repeat-before-a-later-error": lambda a: (
        a[30].update(id=a[2]["id"], image_id=a[2]["image_id"]),
        a[50].update(area=-1),
    ),
    "repeat-with-a-bad-category": lambda a: a[62].update(
        id=a[0]["id"], image_id=a[0]["image_id"], category_id=9
    ),
    "bad-rle": lambda a: a[44].update(segmentation={"size": [1, 1], "counts": "0"}),
    "not-an-object": lambda a: a.__setitem__(55, "x"),
}


@pytest.mark.parametrize("case_id", sorted(ANNOTATION_ERRORS))
def test_a_bad_annotation_in_any_chunk_is_the_streaming_reader_s_error(tmp_path, monkeypatch, case_id):
    document = rich_document(seed=4)
    ANNOTATION_ERRORS[case_id](document["annotations"])
    path = _write(tmp_path / "bad.json", document)
    parallel, answered = _read(path, monkeypatch, parallel=True, chunk=300)
    streamed, _ = _read(path, monkeypatch, parallel=False)
    assert isinstance(parallel, str) and parallel == streamed
    assert answered  # worded by the parallel reader, not left to the streaming one


def test_invalid_json_after_a_bad_record_wins_as_with_json_load(tmp_path, monkeypatch):
    document = rich_document(seed=5)
    document["annotations"][3]["bbox"] = [1, 2, -3, 4]
    text = json.dumps(document)
    cut = text.rindex('"id"')
    path = tmp_path / "bad.json"
    path.write_text(text[:cut] + '"id": 1,, ' + text[cut:])
    parallel, _ = _read(path, monkeypatch, parallel=True, chunk=300)
    assert parallel == _read(path, monkeypatch, parallel=False)[0] and "invalid JSON" in parallel


@pytest.mark.parametrize("gap", [",,", ", ,", ",\n" + " " * 300 + ","])
def test_an_empty_record_between_two_cuts_is_invalid_json(tmp_path, monkeypatch, gap):
    text = json.dumps(rich_document(seed=6))
    at = text.index("}, {", text.index('"annotations"') + 2000)
    path = tmp_path / "bad.json"
    path.write_text(text[: at + 1] + gap + text[at + 2 :])
    for chunk in (1, 100):
        parallel, _ = _read(path, monkeypatch, parallel=True, chunk=chunk)
        assert parallel == _read(path, monkeypatch, parallel=False)[0] and "invalid JSON" in parallel
