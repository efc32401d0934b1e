"""Saved views: a name for a page and its URL state (filter, ranges, classes, tags, sort), kept in
``PROJECT/views.json`` so every browser session and every user of the project sees them.

Every page keeps its whole view in the URL's query parameters, so a view is that page path plus those
parameters; reopening it is following the link. Read-modify-write is serialised by an fcntl lock on
``PROJECT/.views.lock`` and the file replaced atomically: two sessions saving at once both keep theirs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from store.errors import InputError
from store.project import write_json_atomic

VIEWS_FILE = "views.json"
LOCK_FILE = ".views.lock"
# URL parameters that are not part of a view: which project (a view lives in it) and an open sample.
NOT_SAVED = {"project", "detail", "object"}


@contextlib.contextmanager
def _locked(project_root: str | Path) -> Iterator[Path]:
    root = Path(project_root).expanduser().resolve()
    if not root.is_dir():
        raise InputError(str(root), "project folder not found")
    with open(root / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield root / VIEWS_FILE
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        views = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [v for v in views if isinstance(v, dict) and {"name", "page", "query"} <= set(v)]


def list_views(project_root: str | Path) -> list[dict[str, Any]]:
    """Every saved view (name, page, query {key: [values]}, saved), by name."""
    path = Path(project_root).expanduser().resolve() / VIEWS_FILE
    return sorted(_read(path), key=lambda v: str(v["name"]).lower())


def save_view(project_root: str | Path, name: str, page: str, query: Mapping[str, Any]) -> dict[str, Any]:
    """Save (or replace) view ``name``: ``page`` (e.g. ``pages/data_quality.py``) with these URL parameters."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InputError("view", f"{name!r} is not a valid view name (1–100 characters)")
    kept = {
        str(k): [str(v) for v in (values if isinstance(values, list | tuple) else [values])]
        for k, values in query.items()
        if k not in NOT_SAVED
    }
    view = {"name": name, "page": page, "query": kept, "saved": time.time()}
    with _locked(project_root) as path:
        views = [v for v in _read(path) if v["name"] != name]
        write_json_atomic(path, [*views, view])
    return view


def delete_view(project_root: str | Path, name: str) -> bool:
    """Forget view ``name``; whether it existed."""
    with _locked(project_root) as path:
        views = _read(path)
        kept = [v for v in views if v["name"] != name]
        if len(kept) == len(views):
            return False
        write_json_atomic(path, kept)
        return True
