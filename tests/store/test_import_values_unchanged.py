"""Issue 17: the faster import computes exactly what the import before it computed.

The reference files under ``tests/data/import_reference/`` were written by the code before the speed
work (commit 846cc10, see ``tests/store/import_reference.py``). Every table an import writes for the
real ``fruits_nuts`` and ``blood_cells`` sets (images with all pixel metrics, hashes and pHash,
objects, duplicates, every label metric) must equal them bit for bit, and so must every table metric
and invalid-geometry reason on the hostile label tables.
"""

from __future__ import annotations

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
    expected_dir = REFERENCE_DIR / name
    expected = {p.relative_to(expected_dir).as_posix(): p for p in expected_dir.rglob("*.parquet")}
    assert sorted(actual) == sorted(expected)
    for key, path in expected.items():
        pd.testing.assert_frame_equal(actual[key], pd.read_parquet(path), check_exact=True, obj=key)
