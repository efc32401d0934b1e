"""The column-wise annotation check (store/coco_fast_annotations.py) agrees with the per-record one.

For plain files and for files with one odd or broken record, reading with the fast path allowed and
with it switched off gives the same tables and warnings, or the very same one-line error.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from store import coco_fast_annotations, coco_reader
from store.errors import InputError


def _document(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in range(20)]
    annotations = []
    for k in range(120):
        x, y, w, h = (float(v) for v in rng.uniform(0, 30, 4))
        image_id = int(rng.integers(0, 20))
        if k and k % 17 == 0:  # an id reused on another image: kept, and counted in the warnings
            image_id = (annotations[-1]["image_id"] + 1) % 20
        rec = {
            "id": k - 1 if k and k % 17 == 0 else k,
            "image_id": image_id,
            "category_id": int(rng.integers(1, 4)),
        }
        rec["bbox"] = [x, y, w, h] if k % 5 else [int(x), int(y), int(w), int(h)]
        if k % 3 == 0:
            rec["segmentation"] = [[x, y, x + w, y, x + w, y + h]]
        elif k % 3 == 1:
            rec["segmentation"] = [[x, y, x + w, y, x + w, y + h], [], [1, 2, 3, 4, 5.5, 6]]
        if k % 4:
            rec["area"] = w * h if k % 8 else int(w * h)
        if k % 6 == 0:
            rec["iscrowd"] = k % 12 == 0 and 1 or 0
        annotations.append(rec)
    annotations[7]["segmentation"] = [[], []]
    annotations[8]["segmentation"] = {"size": [48, 64], "counts": [48 * 64]}
    annotations[9]["segmentation"] = None
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)],
    }


MUTATIONS = {
    "plain": lambda a: None,
    "bool id": lambda a: a[5].update(id=True),
    "float id": lambda a: a[5].update(id=5.0),
    "negative id": lambda a: a[5].update(id=-1),
    "huge id": lambda a: a[5].update(id=2**64),
    "unknown image": lambda a: a[5].update(image_id=999),
    "unknown category": lambda a: a[50].update(category_id=9),
    "duplicate id in image": lambda a: a[6].update(id=a[5]["id"], image_id=a[5]["image_id"]),
    "nan box": lambda a: a[5].update(bbox=[math.nan, 1.0, 2.0, 3.0]),
    "short box": lambda a: a[5].update(bbox=[1, 2, 3]),
    "negative width": lambda a: a[5].update(bbox=[1, 2, -3, 4]),
    "string in box": lambda a: a[5].update(bbox=[1, 2, "3", 4]),
    "bool in box": lambda a: a[5].update(bbox=[1, 2, True, 4]),
    "huge int in box": lambda a: a[5].update(bbox=[1, 2, 2**60, 4]),
    "iscrowd 2": lambda a: a[5].update(iscrowd=2),
    "iscrowd float": lambda a: a[5].update(iscrowd=1.0),
    "negative area": lambda a: a[5].update(area=-1),
    "area none": lambda a: a[5].update(area=None),
    "odd polygon": lambda a: a[5].update(segmentation=[[1, 2, 3, 4, 5]]),
    "flat polygon": lambda a: a[5].update(segmentation=[1, 2, 3, 4, 5, 6]),
    "text in polygon": lambda a: a[5].update(segmentation=[[1, 2, 3, 4, 5, "6"]]),
    "inf in polygon": lambda a: a[5].update(segmentation=[[1, 2, 3, 4, 5, math.inf]]),
    "bad rle then bad area": lambda a: (
        a[20].update(segmentation={"size": [1, 1], "counts": [1]}),
        a[30].update(area=-1),
    ),
    "bad rle": lambda a: a[20].update(segmentation={"size": [48, 64], "counts": [5]}),
    "segmentation text": lambda a: a[5].update(segmentation="x"),
    "missing bbox": lambda a: a[5].pop("bbox"),
    "not an object": lambda a: a.__setitem__(5, [1]),
    "no annotations": lambda a: a.clear(),
}


def _read(path: Path, fast: bool, monkeypatch) -> tuple:
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(coco_reader, "append_plain_annotations", lambda *args: False)
        try:
            tables = coco_reader.read_coco(path, "d")
        except InputError as exc:
            return ("error", str(exc))
    return ("ok", tables.objects, tables.images, tables.warnings)


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_fast_and_per_record_reads_agree(tmp_path, monkeypatch, mutation):
    document = copy.deepcopy(_document(seed=len(mutation)))
    MUTATIONS[mutation](document["annotations"])
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(document))
    fast, slow = _read(path, True, monkeypatch), _read(path, False, monkeypatch)
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "error":
        assert fast[1] == slow[1]
        return
    pd.testing.assert_frame_equal(fast[1], slow[1], check_exact=True)
    pd.testing.assert_frame_equal(fast[2], slow[2], check_exact=True)
    assert fast[3] == slow[3]


def test_a_plain_file_takes_the_column_path(tmp_path, monkeypatch):
    calls = []
    original = coco_fast_annotations.append_plain_annotations

    def spy(*args):
        calls.append(original(*args))
        return calls[-1]

    monkeypatch.setattr(coco_reader, "append_plain_annotations", spy)
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(_document(seed=0)))
    tables = coco_reader.read_coco(path, "d")
    assert calls == [True] and len(tables.objects) == 120
    assert tables.warnings == {"annotation_ids_reused_across_images": 7}
