"""Give freed memory back to the operating system between the phases of a long write.

pandas/numpy frames freed by ``del`` go back to glibc's heap, which keeps much of it mapped; the
next phase (DuckDB for the page-summary prewarm) then adds its own memory on top, and the process's
peak is the sum. ``malloc_trim`` returns the free heap pages, so the peak is the larger phase only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def release_freed_memory() -> None:
    """Collect garbage and trim glibc's heap (a no-op where libc has no ``malloc_trim``)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # musl, macOS: nothing to trim
        return
    trim(0)
