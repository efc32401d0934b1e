"""One exception type for bad user input, so every entry point prints the same one-line error."""

from __future__ import annotations

import errno
import re


class InputError(Exception):
    """Bad user input: names the file, the record and the field, in one line.

    The CLI prints ``str(error)`` and exits with code 2; nothing in the project has changed.
    """

    def __init__(self, file: str, message: str, record: str | None = None, field: str | None = None):
        self.file = str(file)
        self.record = record
        self.field = field
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.file]
        if self.record:
            parts.append(self.record)
        if self.field:
            parts.append(f"field '{self.field}'")
        text = ": ".join(parts) + f": {self.message}"
        return " ".join(text.split())  # always one line, whatever the message held


class ProjectBusyError(Exception):
    """Another process is writing to this project (one writer at a time)."""


_DAMAGED_PATH = re.compile(r"""['"]([^'"]+\.(?:parquet|json|sqlite))['"]""")


def damaged_file_error(exc: BaseException) -> InputError | None:
    """A DuckDB / Arrow failure reading one of the project's files, as a one-line InputError.

    None for anything else (a bug stays a traceback). The line names the file and how to rebuild it.
    """
    module = type(exc).__module__ or ""
    if module.split(".")[0].lstrip("_") not in ("duckdb", "pyarrow"):
        return None
    text = str(exc)
    found = _DAMAGED_PATH.search(text)
    if found is None:
        return None
    from store.project import damaged_recovery

    path = found.group(1)
    if "magic bytes" in text.lower():
        reason = "not a complete Parquet file: cut short or overwritten"
    else:
        reason = " ".join(text.replace(path, "…").split())[:160]
    return InputError(path, f"damaged ({reason}); {damaged_recovery(path)}")


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(exc: BaseException) -> InputError | None:
    """A full disk (or quota) while writing, as a one-line InputError; None for anything else.

    Writes go to temporary files and staging folders that are renamed into place only when whole, so
    nothing half-written is visible; the same command resumes or starts again once there is space.
    """
    text = str(exc)
    module = (type(exc).__module__ or "").split(".")[0].lstrip("_")
    if isinstance(exc, OSError):
        if exc.errno not in _DISK_FULL and "No space left on device" not in text:
            return None
        where = exc.filename if isinstance(exc.filename, str) else "output"
    elif module in ("duckdb", "pyarrow") and "No space left on device" in text:
        found = re.search(r"""["'\\]+(/[^"'\\]+)["'\\]""", text)
        where = found.group(1) if found else "output"
    else:
        return None
    return InputError(
        where,
        "the disk is full: free some space and run the same command again (nothing half-written is visible)",
    )
