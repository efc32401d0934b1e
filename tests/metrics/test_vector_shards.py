"""Shard folders written in completion order come back in row order; row blocks gather any rows."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.vector_shards import Shards, ShardWriter, assemble_in_row_order, shard_files


def test_writer_cuts_shards_and_assembly_restores_row_order(tmp_path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 6)).astype(np.float32)
    order = rng.permutation(50)
    order = order[order != 17]  # one item failed: no vector for row 17
    with ShardWriter(tmp_path / "shards", rows_per_shard=12) as writer:
        for start in range(0, len(order), 5):  # batches arrive in completion order
            rows = order[start : start + 5]
            writer.append(rows, vectors[rows])
    assert writer.written == 49 and len(shard_files(tmp_path / "shards")) == writer.shards == 4
    rows, matrix = assemble_in_row_order(tmp_path / "shards", tmp_path / "all.npy", dim=6)
    np.testing.assert_array_equal(rows, np.delete(np.arange(50), 17))
    np.testing.assert_array_equal(matrix, vectors[rows])
    assert isinstance(matrix, np.memmap)


def test_a_row_written_twice_is_refused(tmp_path) -> None:
    with ShardWriter(tmp_path, rows_per_shard=2) as writer:
        writer.append(np.array([0, 1]), np.zeros((2, 3)))
        writer.append(np.array([1]), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="written twice"):
        assemble_in_row_order(tmp_path, tmp_path / "all.npy", dim=3)


def test_blocks_from_files_and_from_an_array_gather_the_same_rows(tmp_path) -> None:
    x = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    paths = []
    for number, start in enumerate(range(0, 40, 15)):
        paths.append(tmp_path / f"{number}.npy")
        np.save(paths[-1], x[start : start + 15])
    on_disk, in_memory = Shards.from_files(paths), Shards.from_array(x, rows_per_shard=7)
    assert len(on_disk) == len(in_memory) == 40 and on_disk.dim == 3
    wanted = np.array([0, 14, 15, 16, 29, 30, 39])
    np.testing.assert_array_equal(on_disk.gather(wanted), x[wanted])
    np.testing.assert_array_equal(in_memory.gather(wanted), x[wanted])
    np.testing.assert_array_equal(np.concatenate([block for _, block in on_disk]), x)
    assert [first for first, _ in in_memory] == list(range(0, 40, 7))
