"""Page summaries kept on disk in the project, keyed by exactly the data and code they came from.

Why: at 100k images / 1M objects the Summary page's quartiles and outlier counts scan 11M metric
values (~2 CPU-s), and Streamlit's in-memory cache starts empty in every fresh server process.
The few small results the pages open with (metric summary, issue counts, histograms, class
counts, per-dataset means, the Compare ranking) are written here as small Parquet/JSON files;
``cocolens import`` and ``cocolens metrics`` pre-compute the all-datasets view (:func:`prewarm`),
so even the first render after an import reads a few kilobytes instead of rescanning.

Never stale: the key is a hash of the summary's name and arguments, a fingerprint of the code that
computes it, and the name, size, mtime and inode of every file of the datasets it reads. Any
import, recomputed metric, embedding run or deleted dataset changes that list, so the old entry is
simply never asked for again (old entries are pruned by count). An entry is stored only when the
files did not change while it was computed, and written as ``tmp → os.replace`` like the rest of the
store, so a reader never opens a half-written one; an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from store.project import Project, write_bytes_atomic

FORMAT = 1
MAX_ENTRIES = 512  # entries are a few KB; the oldest beyond this are removed after a write
FOLDER = "summaries"
# The modules whose code decides a summary's numbers: a change to any of them changes every key.
CODE_MODULES = (
    "store/queries.py",
    "store/gallery_queries.py",
    "store/report.py",
    "store/dataset_compare.py",
    "store/summary_cache.py",
    "metrics/distribution_compare.py",
)
_REPO = Path(__file__).resolve().parents[1]
_code_fingerprint: str | None = None


def code_fingerprint() -> str:
    """sha1 of the source of the modules that compute summaries (read once per process)."""
    global _code_fingerprint
    if _code_fingerprint is None:
        digest = hashlib.sha1()
        for name in CODE_MODULES:
            path = _REPO / name
            digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
        _code_fingerprint = digest.hexdigest()
    return _code_fingerprint


def cache_dir(project: Project) -> Path:
    """Where entries live: a cache folder beside ``thumbs/`` (safe to delete at any time)."""
    return project.root / "cache" / FOLDER


def data_signature(project: Project, datasets: list[str] | None = None) -> list[list[Any]]:
    """Name, size, mtime_ns and inode of every file of these datasets (all datasets when None).

    Every store write replaces a file (new inode, new mtime) or a whole dataset folder, so any
    change to the data a summary reads changes this list.
    """
    root = project.datasets_dir
    names = sorted(set(datasets)) if datasets else project.datasets()
    out: list[list[Any]] = [["datasets", names]]
    for name in names:
        folder = root / name
        files = sorted([*folder.glob("*.parquet"), *folder.glob("*.json"), *folder.glob("metrics/*.parquet")])
        for path in files:
            try:
                stat = path.stat()
            except FileNotFoundError:  # replaced while listing: the signature differs from the next one
                out.append([str(path.relative_to(root)), None])
                continue
            out.append([str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns, stat.st_ino])
    return out


def entry_key(project: Project, name: str, args: Any, datasets: list[str] | None) -> tuple[str, list]:
    """(hex key, the signature it was made from) for one summary of the current data."""
    signature = data_signature(project, datasets)
    payload = json.dumps([FORMAT, code_fingerprint(), name, args, signature], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:40], signature


def _paths(project: Project, name: str, key: str) -> tuple[Path, Path]:
    stem = cache_dir(project) / f"{name}-{key}"
    return stem.with_suffix(".parquet"), stem.with_suffix(".json")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not stored in the summary cache")


def _encode(value: Any) -> tuple[str, bytes]:
    if isinstance(value, pd.DataFrame):
        buffer = io.BytesIO()
        value.to_parquet(buffer, index=False)
        return "parquet", buffer.getvalue()
    return "json", json.dumps(value, default=_json_default, allow_nan=True).encode()


def read_entry(project: Project, name: str, key: str) -> tuple[bool, Any]:
    """(found, value) of a stored entry; a missing or unreadable one is (False, None)."""
    parquet, js = _paths(project, name, key)
    try:
        if parquet.is_file():
            return True, pd.read_parquet(parquet)
        if js.is_file():
            return True, json.loads(js.read_text())
    except (OSError, ValueError):  # removed by pruning meanwhile, or damaged: compute again
        pass
    return False, None


def write_entry(project: Project, name: str, key: str, value: Any) -> bool:
    """Store one entry atomically; False when the project is not writable (the value still serves)."""
    kind, data = _encode(value)
    parquet, js = _paths(project, name, key)
    try:
        write_bytes_atomic(parquet if kind == "parquet" else js, data)
    except OSError:
        return False
    _prune(cache_dir(project), MAX_ENTRIES)
    return True


def _prune(folder: Path, keep: int) -> None:
    """Keep the newest ``keep`` entries; drop temporaries a killed writer left (older than an hour)."""
    entries = []
    for path in folder.iterdir():
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            continue
        if path.name.startswith("."):  # a temporary: another writer's, in flight, unless it is old
            if time.time_ns() - mtime > 3600 * 10**9:
                path.unlink(missing_ok=True)
            continue
        entries.append((mtime, path))
    for _, path in sorted(entries, reverse=True)[keep:]:
        path.unlink(missing_ok=True)


def cached(
    project: Project, name: str, args: Any, datasets: list[str] | None, compute: Callable[[], Any]
) -> Any:
    """The stored value of ``compute()`` for the current data, computing and storing it on a miss.

    ``datasets`` names the datasets the value reads (None: all of them); ``args`` must be
    JSON-able and, with ``name``, identify the computation. Values are DataFrames or JSON-able.
    """
    key, before = entry_key(project, name, args, datasets)
    found, value = read_entry(project, name, key)
    if found:
        return value
    value = compute()
    if data_signature(project, datasets) == before:  # nothing committed meanwhile: the value is of `key`
        write_entry(project, name, key, value)
    return value


def entries(project: Project) -> list[Path]:
    """Stored entries (for tests and `du`)."""
    folder = cache_dir(project)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
