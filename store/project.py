"""A cocolens project on disk: layout, atomic writes and the single-writer lock.

Bulk data is immutable Parquet (replaced atomically), so readers never lock and never see a
half-written file; a whole dataset becomes visible in one directory rename. See
docs/ARCHITECTURE.md for why this beats one DuckDB file when the app and a job run at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from store.errors import InputError, ProjectBusyError

PROJECT_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_name(kind: str, name: str) -> str:
    """Dataset and model names become folder names: keep them safe (no path escapes)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in {".", ".."}:
        raise InputError(
            f"--{kind}", f"{name!r} is not a valid {kind} name (letters, digits, '_', '-', '.'; max 100)"
        )
    return name


class _InRoot:
    """A fixed path inside the project folder, read like an attribute: ``project.models_dir``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, project: Project, owner: type | None = None) -> Path:
        return project.root / self.name


def _folders_with(parent: Path, marker: str) -> list[str]:
    """Sorted names of the folders in ``parent`` that hold ``marker`` (a dataset's or a model's JSON)."""
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if (p / marker).is_file())


class Project:
    """Paths and safe writes inside one project folder."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()

    # ----- layout -------------------------------------------------------------------------
    datasets_dir = _InRoot("datasets")
    models_dir = _InRoot("models")
    staging_dir = _InRoot(".staging")
    jobs_dir = _InRoot("jobs")
    thumbs_dir = _InRoot("thumbs")
    tags_db = _InRoot("tags.sqlite")
    meta_path = _InRoot("project.json")

    def dataset_dir(self, name: str) -> Path:
        return self.datasets_dir / check_name("dataset", name)

    def model_dir(self, name: str) -> Path:
        return self.models_dir / check_name("model", name)

    def exists(self) -> bool:
        return self.meta_path.is_file()

    def datasets(self) -> list[str]:
        return _folders_with(self.datasets_dir, "dataset.json")

    def models(self) -> list[str]:
        return _folders_with(self.models_dir, "model.json")

    # ----- metadata -----------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        if not self.meta_path.is_file():
            return {"version": PROJECT_VERSION, "plugins": [], "settings": {}}
        try:
            meta = json.loads(self.meta_path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InputError(str(self.meta_path), f"damaged ({_first_line(exc)}); {_META_RECOVERY}") from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("plugins", []), list):
            raise InputError(
                str(self.meta_path), f"damaged (not a project settings object); {_META_RECOVERY}"
            )
        return meta

    def check_folder(self) -> None:
        """One line when ``--project`` names something that cannot be a project folder."""
        if self.root.exists() and not self.root.is_dir():
            raise InputError(str(self.root), "is a file, not a project folder", field="--project")

    def ensure(self) -> None:
        """Create the project folder on first write (readers never create anything)."""
        self.check_folder()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not self.meta_path.is_file():
                write_json_atomic(self.meta_path, {"version": PROJECT_VERSION, "plugins": [], "settings": {}})
        except OSError as exc:
            raise _unwritable(self.root, exc) from exc

    def update_meta(self, **changes: Any) -> None:
        meta = self.meta()
        meta.update(changes)
        write_json_atomic(self.meta_path, meta)

    def dataset_meta(self, name: str) -> dict[str, Any]:
        return read_json_file(self.dataset_dir(name) / "dataset.json")

    def model_meta(self, name: str) -> dict[str, Any]:
        return read_json_file(self.model_dir(name) / "model.json")

    # ----- the one-writer lock --------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, wait: bool = True) -> Iterator[Project]:
        """Hold the project's write lock (fcntl, released by the OS if the process dies)."""
        self.ensure()
        lock_path = self.root / ".write.lock"
        try:
            handle = open(lock_path, "a+")  # noqa: SIM115 - closed below, after the lock is released
        except OSError as exc:
            raise _unwritable(self.root, exc) from exc
        with handle:
            flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
            try:
                fcntl.flock(handle, flags)
            except BlockingIOError as exc:
                raise ProjectBusyError(f"{self.root}: another cocolens process is writing") from exc
            try:
                from store.commit_journal import roll_forward  # imports this module

                roll_forward(self.root, self.staging_dir)  # a killed writer's renames, finished
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_META_RECOVERY = (
    "it holds only the custom metric list and settings: restore it from a backup, or delete it and "
    "cocolens writes a fresh one (datasets and models are kept; add custom metrics again with "
    "`cocolens metrics --add`)"
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _unwritable(root: Path, exc: OSError) -> InputError:
    if exc.errno == errno.EROFS:
        reason = "the project is on a read-only file system"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        reason = "no permission to write in the project folder"
    elif exc.errno == errno.ENOSPC:
        reason = "the disk is full"
    else:
        reason = f"cannot write in the project folder ({exc.strerror or _first_line(exc)})"
    where = exc.filename if isinstance(exc.filename, str) else str(root)
    return InputError(str(root), f"{reason}: {where}; nothing was changed", field="--project")


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one of the project's Parquet tables; a damaged file is one line saying how to recover."""
    try:
        return pd.read_parquet(path, columns=columns)
    except FileNotFoundError as exc:
        raise InputError(str(path), f"missing from the project; {damaged_recovery(path)}") from exc
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise InputError(str(path), f"damaged ({_first_line(exc)}); {damaged_recovery(path)}") from exc


def read_json_file(path: Path) -> Any:
    """Read one of the project's JSON files; a damaged one is one line saying how to rebuild it."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise InputError(str(path), f"missing from the project; {damaged_recovery(path)}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(str(path), f"damaged ({_first_line(exc)}); {damaged_recovery(path)}") from exc


def damaged_recovery(path: Path) -> str:
    """What to run to rebuild a damaged file of a project (from where it lies)."""
    parts = Path(path).parts
    if len(parts) >= 4 and parts[-2] == "metrics" and parts[-4] == "datasets":
        return "delete it and run `cocolens metrics --project DIR` to compute it again"
    for kind, advice in (
        ("datasets", "import the dataset again (`cocolens import coco ... --dataset {name}`) to rebuild it"),
        ("models", "import the model's predictions again (`cocolens import predictions ... --model {name}`)"),
    ):
        if kind in parts[:-1]:
            index = len(parts) - 1 - parts[::-1].index(kind)
            if index + 1 < len(parts) - 1:
                return advice.format(name=parts[index + 1])
    return "restore it from a backup or import the data again"


def check_export_file(project_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """The ``--out`` of ``export csv|coco``: a new path or a regular file, outside the project.

    Exports replace their target atomically (``os.replace``): aimed at ``datasets/D/images.parquet``
    or ``project.json`` they corrupted the project, aimed at a character device (``/dev/null``) they
    replaced it with a regular file, aimed at a FIFO they would wait for ever.
    """
    root = Project(project_dir).root
    path = Path(out).expanduser()
    resolved = path.resolve()
    if resolved == root or resolved.is_relative_to(root):
        raise InputError(
            str(out),
            "is inside the project: choose a file outside it (exports never write there)",
            field="--out",
        )
    if os.path.lexists(path) and not resolved.is_file():
        raise InputError(
            str(out),
            "exists and is not a regular file (a folder, device or FIFO): choose a file path",
            field="--out",
        )
    return path


# ----- atomic file helpers ----------------------------------------------------------------------


def _umask() -> int:
    """The process umask, read without changing it (os.umask sets it, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _tmp_beside(path: Path) -> Path:
    """A temporary file next to ``path`` with the mode a plain ``open(path, "w")`` would give it
    (0644 under the usual umask): mkstemp makes it 0600, and the rename would keep that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(tmp)


def _fsync_path(path: Path) -> None:
    """fsync a file or a folder by path (a folder's fsync makes its entries durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Paths written while fsyncs_at_end() is open (None when it is not): their fsyncs are owed.
_owed_fsyncs: set[Path] | None = None
_owed_lock = threading.Lock()

# fsyncs in flight at once when the owed ones are paid: the filesystem folds concurrent fsyncs
# into a few journal commits (30 files: ~15 ms together, ~200 ms one after another here).
_FSYNC_THREADS = 16


@contextlib.contextmanager
def fsyncs_at_end() -> Iterator[None]:
    """Within the block, atomic writes skip their two fsyncs each and owe them until the block ends.

    For a staging folder that is published by one rename after the block: every file and folder
    written in it is made durable before that rename, as with per-file fsyncs, but all at once
    (an import writes ~30 files; their 60 serial fsyncs were ~0.2–0.5 s of its wall time). Files
    are still replaced atomically, so readers see whole files throughout. Process-wide: writes
    from other threads inside the block (the import's label-metrics thread) owe theirs too.
    A block opened inside another joins it (the outer one pays). On an exception nothing is
    synced (nothing will be published).
    """
    global _owed_fsyncs
    with _owed_lock:
        outermost = _owed_fsyncs is None
        if outermost:
            _owed_fsyncs = set()
    if not outermost:
        yield
        return
    try:
        yield
        with _owed_lock:
            owed = sorted(_owed_fsyncs)
        _fsync_all([p for p in owed if p.is_file()])
        _fsync_all(sorted({p.parent for p in owed}))
    finally:
        with _owed_lock:
            _owed_fsyncs = None


def _fsync_all(paths: list[Path]) -> None:
    if not paths:
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(_FSYNC_THREADS, len(paths))) as pool:
        list(pool.map(_fsync_path, paths))


def _owe_fsync(path: Path) -> bool:
    """Record ``path`` as owing its fsyncs when fsyncs_at_end() is open; False when it is not."""
    with _owed_lock:
        if _owed_fsyncs is None:
            return False
        _owed_fsyncs.add(path)
        return True


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` for the caller to write; then it is made durable (now, or owed
    to :func:`fsyncs_at_end`) and renamed over ``path``: readers see the old file or the new one, never
    a torn one. On an error the temporary file is removed and ``path`` is left as it was."""
    tmp = _tmp_beside(path)
    try:
        yield tmp
        deferred = _owe_fsync(path)
        if not deferred:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if not deferred:
            _fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with _replacing(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def write_parquet_atomic(path: Path, frame: pd.DataFrame) -> None:
    """Readers see the old file or the new one, never a torn one."""
    with _replacing(path) as tmp:
        frame.to_parquet(tmp, index=False)


def replace_dir_atomic(staged: Path, final: Path) -> None:
    """Swap a fully written directory into place; the old one (if any) disappears after."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        trash = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, trash)
        os.replace(staged, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staged, final)
    _fsync_path(final.parent)
