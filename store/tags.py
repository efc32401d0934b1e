"""Tags on images and objects, in ``PROJECT/tags.sqlite``.

Tags are the one piece of state users change while the app runs, possibly from two browser
sessions (two server threads or processes) at once. SQLite in WAL mode lets readers go on while a
writer commits; writers take the lock up front (``BEGIN IMMEDIATE``), wait up to ``BUSY_TIMEOUT_MS``
and are retried with back-off, so a concurrent tag is never lost and the user never sees
"database is locked".

An image-level tag has ``object_id`` NULL; an object tag names its object.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import pandas as pd

from store.errors import InputError

BUSY_TIMEOUT_MS = 10_000  # SQLite waits this long for the write lock before reporting "busy"
RETRIES = 8  # then we back off and try again: two sessions tagging thousands of rows both succeed
_NO_OBJECT = -(2**63)  # stands for "image-level" inside the unique index (NULLs never collide)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tags (
    dataset   TEXT    NOT NULL,
    image_id  INTEGER NOT NULL,
    object_id INTEGER,
    tag       TEXT    NOT NULL,
    created   REAL    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tags_key
    ON tags (dataset, image_id, ifnull(object_id, {_NO_OBJECT}), tag);
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags (tag);
"""

T = TypeVar("T")


def _db_path(project_root: str | Path) -> Path:
    return Path(project_root).expanduser().resolve() / "tags.sqlite"


@contextlib.contextmanager
def _connect(project_root: str | Path) -> Iterator[sqlite3.Connection]:
    path = _db_path(project_root)
    if not path.parent.is_dir():
        raise InputError(str(path.parent), "project folder not found")
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _with_retry(lambda: con.execute("PRAGMA journal_mode = WAL").fetchone())
        con.execute("PRAGMA synchronous = NORMAL")
        _with_retry(lambda: con.executescript(_SCHEMA))
        yield con
    finally:
        con.close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _with_retry(action: Callable[[], T]) -> T:
    for attempt in range(RETRIES):
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or attempt == RETRIES - 1:
                raise
            time.sleep(0.05 * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _write(project_root: str | Path, sql: str, rows: list[tuple]) -> int:
    """Run one statement for many rows in one IMMEDIATE transaction; return rows changed."""

    def transaction() -> int:
        with _connect(project_root) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                before = con.total_changes
                con.executemany(sql, rows)
                changed = con.total_changes - before
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return changed

    return _with_retry(transaction)


def _check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not tag.strip() or len(tag) > 100:
        raise InputError("tag", f"{tag!r} is not a valid tag (1–100 characters, not blank)")
    return tag.strip()


def _rows(dataset: str, image_ids: Iterable[int], object_ids: Iterable[int | None] | None) -> list[tuple]:
    images = [int(i) for i in image_ids]
    if object_ids is None:
        return [(dataset, i, None) for i in images]
    objects = [None if o is None or pd.isna(o) else int(o) for o in object_ids]
    if len(objects) != len(images):
        raise InputError("tag", f"{len(images)} image ids but {len(objects)} object ids")
    return [(dataset, i, o) for i, o in zip(images, objects, strict=True)]


def add_tags(
    project_root: str | Path,
    dataset: str,
    image_ids: Iterable[int],
    object_ids: Iterable[int | None] | None,
    tag: str,
) -> int:
    """Tag images (``object_ids`` None) or objects (one object id per image id); return tags added."""
    tag = _check_tag(tag)
    now = time.time()
    rows = [(*row, tag, now) for row in _rows(dataset, image_ids, object_ids)]
    if not rows:
        return 0
    return _write(
        project_root,
        "INSERT OR IGNORE INTO tags (dataset, image_id, object_id, tag, created) VALUES (?, ?, ?, ?, ?)",
        rows,
    )


def remove_tags(
    project_root: str | Path,
    dataset: str,
    image_ids: Iterable[int],
    object_ids: Iterable[int | None] | None,
    tag: str,
) -> int:
    """Remove a tag from images or objects (same arguments as :func:`add_tags`); return tags removed."""
    tag = _check_tag(tag)
    rows = [(d, i, o, _NO_OBJECT, tag) for d, i, o in _rows(dataset, image_ids, object_ids)]
    if not rows:
        return 0
    return _write(
        project_root,
        f"DELETE FROM tags WHERE dataset = ? AND image_id = ? AND ifnull(object_id, {_NO_OBJECT}) = ifnull(?, ?)"
        " AND tag = ?",
        rows,
    )


def _read(project_root: str | Path, sql: str, params: tuple = ()) -> list[tuple]:
    if not _db_path(project_root).is_file():
        return []

    def query() -> list[tuple]:
        with _connect(project_root) as con:
            return con.execute(sql, params).fetchall()

    return _with_retry(query)


def tags_of(project_root: str | Path, dataset: str, image_id: int, object_id: int | None = None) -> list[str]:
    """Tags on one image (``object_id`` None: image-level tags only) or one object, sorted."""
    rows = _read(
        project_root,
        f"SELECT tag FROM tags WHERE dataset = ? AND image_id = ? AND ifnull(object_id, {_NO_OBJECT}) = ifnull(?, ?)"
        " ORDER BY tag",
        (dataset, int(image_id), None if object_id is None else int(object_id), _NO_OBJECT),
    )
    return [r[0] for r in rows]


def all_tags(project_root: str | Path) -> list[str]:
    """Every tag in use, sorted."""
    return [r[0] for r in _read(project_root, "SELECT DISTINCT tag FROM tags ORDER BY tag")]


def tag_counts(project_root: str | Path) -> pd.DataFrame:
    """tag, images (image-level tags), objects (object tags)."""
    rows = _read(
        project_root,
        "SELECT tag, count(*) FILTER (WHERE object_id IS NULL), count(*) FILTER (WHERE object_id IS NOT NULL)"
        " FROM tags GROUP BY tag ORDER BY tag",
    )
    return pd.DataFrame(rows, columns=["tag", "images", "objects"])


def tagged(project_root: str | Path, tag: str | None = None) -> pd.DataFrame:
    """dataset, image_id, object_id (nullable: image-level) of everything carrying ``tag`` (all tags if None)."""
    if tag is None:
        rows = _read(project_root, "SELECT dataset, image_id, object_id, tag FROM tags ORDER BY 1, 2, 3")
        frame = pd.DataFrame(rows, columns=["dataset", "image_id", "object_id", "tag"])
    else:
        rows = _read(
            project_root,
            "SELECT dataset, image_id, object_id FROM tags WHERE tag = ? ORDER BY 1, 2, 3",
            (tag,),
        )
        frame = pd.DataFrame(rows, columns=["dataset", "image_id", "object_id"])
    return frame.astype({"dataset": "string", "image_id": "int64", "object_id": "Int64"})
