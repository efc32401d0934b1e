"""Issue 17: the faster import computes exactly what the import before it computed.

The references under ``tests/data/import_reference/`` (per-table digests for the shared sets, so none
of their data enters the repository) were written by the code before the speed
work (commit 846cc10, see ``tests/store/import_reference.py``). Every table an import writes for the
real ``fruits_nuts`` and ``blood_cells`` sets (images with all pixel metrics, hashes and pHash,
objects, duplicates, every label metric) must equal them bit for bit, and so must every table metric
and invalid-geometry reason on the hostile label tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.store.import_reference import (
    REAL_SETS,
    REFERENCE_DIR,
    SHARED,
    hostile_tables,
    label_values,
    snapshot,
    table_digest,
)


def test_label_metrics_on_hostile_tables_equal_the_reference():
    expected = pd.read_parquet(REFERENCE_DIR / "hostile_label_values.parquet")
    actual = label_values(*hostile_tables())
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)


@pytest.mark.parametrize("name", sorted(REAL_SETS))
def test_every_table_of_a_real_import_equals_the_reference(tmp_path: Path, name: str):
    images, annotations = REAL_SETS[name]
    if not (SHARED / annotations).is_file():
        pytest.skip(f"shared data {SHARED / annotations} is absent")
    from store.coco_import import import_coco

    import_coco(SHARED / images, SHARED / annotations, tmp_path / "p", dataset=name, prewarm=False)
    actual = snapshot(tmp_path / "p" / "datasets" / name, SHARED.resolve())
    expected = json.loads((REFERENCE_DIR / "real_sets_digests.json").read_text())[name]
    assert sorted(actual) == sorted(expected)
    differing = [key for key in expected if table_digest(actual[key]) != expected[key]]
    assert not differing, f"tables whose values changed: {differing}"


def test_images_known_missing_from_a_listing_get_the_rows_the_per_file_path_gives(
    tmp_path: Path, monkeypatch
):
    """Missing files found by one listing per folder (no stat, no worker) equal the per-file results."""
    import json

    from PIL import Image

    from store import coco_import

    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    (images / "elsewhere").mkdir()
    (images / "link").symlink_to(images / "elsewhere")
    (tmp_path / "outside").mkdir()
    (images / "escape").symlink_to(tmp_path / "outside")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(images / "sub" / "here.jpg")
    Image.new("RGB", (40, 30), (10, 200, 10)).save(images / "café.jpg")  # NFC on disk
    names = [
        "sub/here.jpg",
        "sub/gone.jpg",
        "nofolder/gone.jpg",
        "gone.jpg",
        "cafe\u0301.jpg",
        "link/gone.jpg",
    ]
    names += ["escape/gone.jpg", "./sub/gone2.jpg", "sub//gone3.jpg"]
    records = [{"id": i, "file_name": n, "width": 40 + i, "height": 30} for i, n in enumerate(names)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5]} for i in range(len(names))]
    ann = tmp_path / "ann.json"
    ann.write_text(
        json.dumps({"images": records, "annotations": anns, "categories": [{"id": 1, "name": "x"}]})
    )

    coco_import.import_coco(images, ann, tmp_path / "fast", dataset="d", workers=2, prewarm=False)
    fast = snapshot(tmp_path / "fast" / "datasets" / "d", tmp_path)

    def per_file(root: Path, file_names: list[str]):
        import numpy as np

        from store.image_paths import resolve_image_path

        return [resolve_image_path(root, n) for n in file_names], np.zeros(len(file_names), bool)

    monkeypatch.setattr(coco_import, "resolve_image_paths", per_file)
    coco_import.import_coco(images, ann, tmp_path / "slow", dataset="d", workers=2, prewarm=False)
    slow = snapshot(tmp_path / "slow" / "datasets" / "d", tmp_path)
    assert sorted(fast) == sorted(slow)
    for key in slow:
        pd.testing.assert_frame_equal(fast[key], slow[key], check_exact=True, obj=key)
    table = fast["images.parquet"].set_index("file_name")
    assert table.loc["sub/here.jpg", "status"] == "ok" and table.loc["cafe\u0301.jpg", "status"] == "ok"
    assert table.loc["escape/gone.jpg", "status"] == "unreadable"
    assert (table["status"] == "missing").sum() == 6
