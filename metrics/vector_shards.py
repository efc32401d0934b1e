"""Embedding vectors on disk as ``.npy`` shards, so no process holds a whole matrix of millions of rows.

Two forms. A *shard folder* is what a distributed job streams out, in completion order:
``vectors-000000.npy`` (float32, n_i × d) beside ``rows-000000.npy`` (int64, the row each vector
belongs to). :func:`assemble_in_row_order` turns it into one row-ordered ``.npy`` written shard by
shard through a memory map. :class:`Shards` reads row blocks of a row-ordered matrix (files or an
array) one at a time, which is how the large-scale kNN (:mod:`metrics.sharded_knn`) walks it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARD_ROWS = 65_536  # rows per shard file: 320 MB at 1280-d, 32 MB at 128-d


class ShardWriter:
    """Buffers (rows, vectors) batches and writes a shard whenever ``rows_per_shard`` rows are held."""

    def __init__(self, folder: str | Path, rows_per_shard: int | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows_per_shard = max(1, int(rows_per_shard or SHARD_ROWS))
        self._rows: list[np.ndarray] = []
        self._vectors: list[np.ndarray] = []
        self._held = 0
        self.shards = 0
        self.written = 0

    def append(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(rows):
            raise ValueError(f"{len(rows)} rows for vectors of shape {vectors.shape}")
        if not len(rows):
            return
        self._rows.append(rows)
        self._vectors.append(vectors)
        self._held += len(rows)
        if self._held >= self.rows_per_shard:
            self.flush()

    def flush(self) -> None:
        if not self._held:
            return
        name = f"{self.shards:06d}.npy"
        np.save(self.folder / f"vectors-{name}", np.concatenate(self._vectors), allow_pickle=False)
        np.save(self.folder / f"rows-{name}", np.concatenate(self._rows), allow_pickle=False)
        self.written += self._held
        self.shards += 1
        self._rows, self._vectors, self._held = [], [], 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()


def shard_files(folder: str | Path) -> list[tuple[Path, Path]]:
    """(rows file, vectors file) of every shard in a folder, in shard order."""
    folder = Path(folder)
    return [
        (folder / path.name.replace("vectors-", "rows-"), path)
        for path in sorted(folder.glob("vectors-*.npy"))
    ]


def assemble_in_row_order(folder: str | Path, out: str | Path, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Write the folder's vectors to ``out`` (one .npy) sorted by row, one shard in memory at a time.

    Returns (the rows present, ascending; the vectors as a read-only memory map). Rows that no
    shard holds (an item that failed) are simply absent.
    """
    files = shard_files(folder)
    rows = np.sort(
        np.concatenate([np.load(r, allow_pickle=False) for r, _ in files] or [np.empty(0, np.int64)])
    )
    if len(np.unique(rows)) != len(rows):
        raise ValueError(f"{folder}: a row was written twice")
    matrix = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(len(rows), dim))
    for rows_file, vectors_file in files:
        positions = np.searchsorted(rows, np.load(rows_file, allow_pickle=False))
        matrix[positions] = np.load(vectors_file, allow_pickle=False)
    matrix.flush()
    del matrix
    return rows, np.load(out, mmap_mode="r", allow_pickle=False)


@dataclass(frozen=True)
class Shards:
    """A row-ordered (n, d) float32 matrix as consecutive row blocks, each read only when used.

    Blocks are arrays or ``.npy`` files (memory-mapped on reading: the pages are the kernel's page
    cache, dropped under memory pressure, not the process' own memory).
    """

    blocks: tuple[np.ndarray | Path, ...]
    offsets: tuple[int, ...]  # first row of each block, then the total
    dim: int

    @classmethod
    def from_array(cls, vectors: np.ndarray, rows_per_shard: int = SHARD_ROWS) -> Shards:
        step = max(1, int(rows_per_shard))
        blocks = tuple(vectors[start : start + step] for start in range(0, len(vectors), step))
        offsets = tuple(range(0, len(vectors), step)) + (len(vectors),)
        return cls(blocks, offsets, int(vectors.shape[1]) if vectors.ndim == 2 else 0)

    @classmethod
    def from_files(cls, paths: Sequence[str | Path]) -> Shards:
        """Row-ordered shard files (each a 2-D float32 .npy), in the order given."""
        blocks, offsets, dim = [], [0], 0
        for path in paths:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            blocks.append(Path(path))
            offsets.append(offsets[-1] + shape[0])
            dim = shape[1]
        return cls(tuple(blocks), tuple(offsets), dim)

    def __len__(self) -> int:
        return self.offsets[-1]

    def block(self, index: int) -> np.ndarray:
        item = self.blocks[index]
        return np.load(item, mmap_mode="r", allow_pickle=False) if isinstance(item, Path) else item

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, block) for every block in row order."""
        for index in range(len(self.blocks)):
            yield self.offsets[index], self.block(index)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` (ascending global row ids), float32, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        bounds = np.searchsorted(rows, self.offsets)
        for index in range(len(self.blocks)):
            lo, hi = bounds[index], bounds[index + 1]
            if hi > lo:
                out[lo:hi] = self.block(index)[rows[lo:hi] - self.offsets[index]]
        return out
