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
from typing import Literal, TypeVar

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


def _apply(project_root: str | Path, keys: pd.DataFrame, tag: str, add: bool) -> int:
    """Add or remove ``tag`` on every key (dataset, image_id, object_id: NULL = the image); one
    transaction per dataset. Returns how many tags were added or removed."""
    change = add_tags if add else remove_tags
    changed = 0
    for dataset, rows in keys.groupby("dataset", sort=True):
        if "object_id" in rows.columns and rows["object_id"].notna().any():
            object_ids: list[int | None] | None = [None if pd.isna(o) else int(o) for o in rows["object_id"]]
        else:
            object_ids = None
        changed += change(project_root, str(dataset), rows["image_id"].astype(int).tolist(), object_ids, tag)
    return changed


def add_keys(project_root: str | Path, keys: pd.DataFrame, tag: str) -> int:
    """Tag every (dataset, image_id[, object_id]) row of ``keys``; returns tags added (not already there)."""
    return _apply(project_root, keys, tag, add=True)


def remove_keys(project_root: str | Path, keys: pd.DataFrame, tag: str) -> int:
    """Untag every (dataset, image_id[, object_id]) row of ``keys``; returns tags removed."""
    return _apply(project_root, keys, tag, add=False)


def apply_keys(
    project_root: str | Path, keys: pd.DataFrame, tag: str, action: Literal["add", "remove"]
) -> int:
    """The pages' "tag all" / "untag all": :func:`add_keys` or :func:`remove_keys` by ``action``."""
    if action not in ("add", "remove"):
        raise ValueError(f"action must be 'add' or 'remove', got {action!r}")
    return _apply(project_root, keys, tag, add=action == "add")


Key = tuple[str, int, int | None]  # dataset, image_id, object_id (None: the image itself)


def tagged_keys(project_root: str | Path, tag: str) -> set[Key]:
    """Everything carrying ``tag`` as (dataset, image_id, object_id or None): what a page of cards looks
    up once to draw each card's tag button pressed or not."""
    return {
        (str(r.dataset), int(r.image_id), None if pd.isna(r.object_id) else int(r.object_id))
        for r in tagged(project_root, tag).itertuples(index=False)
    }


def toggle(project_root: str | Path, key: Key, tag: str, present: bool) -> int:
    """A card's tag button: remove ``tag`` from the image or object ``key`` when ``present``, else add
    it. Returns 1 when it changed, 0 when another session had already done the same."""
    dataset, image_id, object_id = key
    objects = None if object_id is None else [object_id]
    change = remove_tags if present else add_tags
    return change(project_root, dataset, [image_id], objects, tag)


def rename_tag(project_root: str | Path, old: str, new: str) -> int:
    """Rename a tag everywhere (merging into ``new`` where an item carries both); returns items renamed."""
    old, new = _check_tag(old), _check_tag(new)
    if old == new:
        return 0

    def transaction() -> int:
        with _connect(project_root) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                count = con.execute("SELECT count(*) FROM tags WHERE tag = ?", (old,)).fetchone()[0]
                con.execute(
                    "INSERT OR IGNORE INTO tags (dataset, image_id, object_id, tag, created)"
                    " SELECT dataset, image_id, object_id, ?, created FROM tags WHERE tag = ?",
                    (new, old),
                )
                con.execute("DELETE FROM tags WHERE tag = ?", (old,))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return int(count)

    return _with_retry(transaction)


def delete_tag(project_root: str | Path, tag: str) -> int:
    """Remove a tag from every image and object; returns how many items carried it."""
    tag = _check_tag(tag)
    if not _db_path(project_root).is_file():
        return 0
    return _write(project_root, "DELETE FROM tags WHERE tag = ?", [(tag,)])


def tag_where(
    project_root: str | Path,
    tag: str,
    where: str,
    datasets: list[str] | None = None,
    level: str = "image",
    add: bool = True,
) -> tuple[int, int]:
    """``cocolens tag`` / ``untag``: add (or remove) ``tag`` on the images, or the objects, on whose rows
    the ``--where`` expression holds; returns (items changed, items matched)."""
    from store.filters import project_reader, where_rows_sql

    if level not in ("image", "object"):
        raise InputError("--level", f"expected image or object, got {level!r}")
    tag = _check_tag(tag)
    reader = project_reader(project_root)
    known = reader.datasets()
    for name in datasets or []:
        if name not in known:
            raise InputError(
                str(project_root), f"no dataset {name!r} (have: {', '.join(known)})", field="--dataset"
            )
    rows = where_rows_sql(reader, where, datasets or None)
    if level == "image":
        keys = reader.df(f"SELECT DISTINCT dataset, image_id FROM ({rows}) ORDER BY 1, 2")
    else:
        keys = reader.df(
            f"SELECT DISTINCT dataset, image_id, object_id FROM ({rows}) WHERE object_id IS NOT NULL ORDER BY 1, 2, 3"
        )
    changed = add_keys(project_root, keys, tag) if add else remove_keys(project_root, keys, tag)
    return changed, len(keys)
