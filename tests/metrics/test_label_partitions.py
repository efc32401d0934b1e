"""Label metrics computed here one partition of whole images at a time equal the whole-table ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrics import label_partitions
from metrics.label_partitions import PER_IMAGE_METRICS, table_values_by_partition
from store import metric_runner
from tests.metrics.test_objects import run_all
from tests.metrics.test_ray_objects import generated_tables


@pytest.mark.parametrize("objects_per_partition", [1, 9, 10_000])
def test_values_by_partition_equal_the_whole_table_ones(objects_per_partition: int) -> None:
    objects, images = generated_tables(seed=objects_per_partition)
    names = sorted(PER_IMAGE_METRICS)
    with np.errstate(all="ignore"):
        expected = run_all(objects, images)
        got = table_values_by_partition(objects, images, names, objects_per_partition)
    for name in names:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)  # NaN where NaN
    assert (expected["invalid_geometry"] == 1).sum() > 5  # the set exercises the broken-geometry paths


def test_import_above_the_threshold_writes_the_same_metric_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects, images = generated_tables(seed=4)
    with np.errstate(all="ignore"):
        whole = metric_runner.compute_table_metrics("d", tmp_path / "whole", objects, images)
        monkeypatch.setattr(metric_runner, "PARTITION_ABOVE_OBJECTS", 10)
        monkeypatch.setattr("metrics.label_partitions.OBJECTS_PER_PARTITION", 7)
        cuts = []
        real_partitions = label_partitions.image_partitions
        monkeypatch.setattr(
            label_partitions, "image_partitions", lambda *a: cuts.append(a[2]) or real_partitions(*a)
        )
        parted = metric_runner.compute_table_metrics("d", tmp_path / "parted", objects, images)
    assert cuts == [-(-len(objects) // 7)]  # really cut, into partitions of ~7 objects
    assert whole == parted and PER_IMAGE_METRICS <= set(whole)
    for path in sorted((tmp_path / "whole" / "metrics").glob("*.parquet")):
        other = tmp_path / "parted" / "metrics" / path.name
        pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(other))


def test_empty_tables_give_empty_columns() -> None:
    objects, images = generated_tables()
    got = table_values_by_partition(objects.iloc[:0], images.iloc[:0], ["object_area", "object_count"])
    assert got["object_area"].shape == (0,) and got["object_count"].shape == (0,)
